package dev.suture.x86;

import dev.suture.SutureException;

/**
 * A value that the instruction or relocation field cannot hold: a jump or call beyond ±2 GiB, an address above
 * 4 GiB in a 32-bit field. The message names the field and the distance so a person can see why.
 */
public final class DoesNotFitException extends SutureException {
    public DoesNotFitException(String message) {
        super(Kind.DOES_NOT_FIT, message);
    }
}
