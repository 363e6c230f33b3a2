package dev.suture.patch;

import dev.suture.SutureException;

/** A patch refused for its signature: unsigned where one is required, signed by an untrusted key, or altered. */
public final class PatchTrustException extends SutureException {
    public PatchTrustException(String message) {
        super(Kind.BAD_INPUT, message);
    }
}
