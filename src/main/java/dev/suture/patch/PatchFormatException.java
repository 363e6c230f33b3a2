package dev.suture.patch;

import dev.suture.SutureException;

/** A patch file that is not what docs/patch-format.md specifies; the message names the file and the problem. */
public final class PatchFormatException extends SutureException {
    public PatchFormatException(String file, String problem) {
        super(Kind.BAD_INPUT, file + ": not a valid suture patch: " + problem);
    }
}
