package dev.suture.live;

import dev.suture.SutureException;

/** A function to be replaced (or removed) stayed on some thread's stack past the timeout; nothing was changed. */
public final class UnsafeException extends SutureException {
    public UnsafeException(String message) {
        super(Kind.UNSAFE, message);
    }
}
