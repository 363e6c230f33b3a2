package dev.suture.build;

import dev.suture.SutureException;

/** The change cannot be made into a safe live patch (exit 3); the message names the function or data and why. */
public final class DiffRefusedException extends SutureException {
    public DiffRefusedException(String message) {
        super(Kind.DOES_NOT_FIT, message);
    }
}
