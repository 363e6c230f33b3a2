package dev.suture.unwind;

import dev.suture.SutureException;

/**
 * A frame could not be unwound: malformed or hostile CFI, an expression that runs away, a read outside the
 * stack copy and the live process. The unwinder catches it per frame and ends that backtrace with its message.
 */
public final class UnwindException extends SutureException {
    public UnwindException(String message) {
        super(Kind.BAD_INPUT, message);
    }
}
