package dev.suture.unwind;

/** Memory of the unwound thread: usually a copy of its stack, perhaps backed by live reads of the process. */
public interface Memory {
    /**
     * The {@code size}-byte (1..8) little-endian value at {@code address}, zero-extended. Throws
     * {@link UnwindException} when the address cannot be read.
     */
    long read(long address, int size);
}
