package dev.suture.x86;

import dev.suture.SutureException;

/** Bytes the {@link Decoder} cannot take for an instruction; the message says at which offset and why. */
public final class UndecodableException extends SutureException {
    private final int offset;

    public UndecodableException(int offset, String why) {
        super(Kind.DOES_NOT_FIT, String.format("cannot decode the instruction at offset 0x%x: %s", offset, why));
        this.offset = offset;
    }

    /** Where the instruction starts in the code it was decoded from. */
    public int offset() {
        return offset;
    }
}
