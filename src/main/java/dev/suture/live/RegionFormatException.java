package dev.suture.live;

import dev.suture.SutureException;

/** A suture region in a target whose header cannot be read: corrupt, truncated, or from another format version. */
public final class RegionFormatException extends SutureException {
    public RegionFormatException(String message) {
        super(Kind.BAD_INPUT, message);
    }
}
