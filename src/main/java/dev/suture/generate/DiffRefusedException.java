package dev.suture.generate;

import dev.suture.SutureException;

/** The change cannot be made into a safe live patch (exit 3); the message names the function or data and why. */
public final class DiffRefusedException extends SutureException {
    /** Why the diff made no patch, for callers that decide on it (the message is for people). */
    public enum Reason {
        /** The objects differ, but in no function or data a patch carries: there is nothing to patch. */
        NOTHING_CHANGED,
        /** Something changed that a live patch cannot carry safely. */
        CANNOT_PATCH
    }

    private final Reason reason;

    public DiffRefusedException(String message) {
        this(Reason.CANNOT_PATCH, message);
    }

    public DiffRefusedException(Reason reason, String message) {
        super(Kind.DOES_NOT_FIT, message);
        this.reason = reason;
    }

    public Reason reason() {
        return reason;
    }
}
