package dev.suture.unwind;

/**
 * A copy of a thread's stack taken with one bulk read while the thread is stopped. Reads outside the copy go to an
 * optional live fallback (the stopped process), else fail.
 */
public final class StackCopy implements Memory {
    private long base;
    private byte[] bytes;
    private int offset;
    private int length;
    private final Memory fallback;

    public StackCopy(Memory fallback) {
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

    @Override
    public long read(long address, int size) {
        long offset = address - base;
        if (offset >= 0 && offset <= length - size) {
            int o = this.offset + (int) offset;
            long v = 0;
            for (int i = size - 1; i >= 0; i--) {
                v = v << 8 | (bytes[o + i] & 0xffL);
            }
            return v;
        }
        if (fallback != null) {
            return fallback.read(address, size);
        }
        throw new UnwindException("address 0x" + Long.toHexString(address) + " is outside the stack copy [0x"
                + Long.toHexString(base) + ", 0x" + Long.toHexString(base + length) + ")");
    }
}
