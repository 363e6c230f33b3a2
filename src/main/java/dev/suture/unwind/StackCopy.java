package dev.suture.unwind;

import dev.suture.proc.RemoteMemory;

/**
 * The memory the unwinder reads: a copy of a thread's stack taken with one bulk read while the thread is stopped.
 * Reads outside the copy go to an optional live fallback (the stopped process), else fail.
 */
public final class StackCopy {
    private long base;
    private byte[] bytes;
    private int offset;
    private int length;
    private final RemoteMemory fallback;
    private final byte[] word = new byte[8];

    public StackCopy(RemoteMemory fallback) {
        this.fallback = fallback;
        this.bytes = new byte[0];
    }

    /** The copy now holds {@code length} bytes of {@code bytes}, which were at {@code base} in the thread. */
    public StackCopy reset(long base, byte[] bytes, int length) {
        return reset(base, bytes, 0, length);
    }

    /** The copy now holds the {@code length} bytes of {@code bytes} from {@code offset}, which were at {@code base}. */
    public StackCopy reset(long base, byte[] bytes, int offset, int length) {
        this.base = base;
        this.bytes = bytes;
        this.offset = offset;
        this.length = Math.max(0, Math.min(length, bytes.length - offset));
        return this;
    }

    public long base() {
        return base;
    }

    public int length() {
        return length;
    }

    /**
     * The {@code size}-byte (1..8) little-endian value at {@code address}, zero-extended. Throws
     * {@link UnwindException} when the address cannot be read.
     */
    public long read(long address, int size) {
        long offset = address - base;
        if (offset >= 0 && offset <= length - size) {
            return littleEndian(bytes, this.offset + (int) offset, size);
        }
        if (fallback != null) {
            if (fallback.read(address, word, 0, size) != size) {
                throw new UnwindException("address 0x" + Long.toHexString(address) + " is not readable");
            }
            return littleEndian(word, 0, size);
        }
        throw new UnwindException("address 0x" + Long.toHexString(address) + " is outside the stack copy [0x"
                + Long.toHexString(base) + ", 0x" + Long.toHexString(base + length) + ")");
    }

    private static long littleEndian(byte[] b, int at, int size) {
        long v = 0;
        for (int i = size - 1; i >= 0; i--) {
            v = v << 8 | (b[at + i] & 0xffL);
        }
        return v;
    }
}
