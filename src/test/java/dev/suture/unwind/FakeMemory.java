package dev.suture.unwind;

import dev.suture.proc.RemoteMemory;
import java.util.HashMap;
import java.util.Map;

/** A sparse 64-bit word memory for unwinder tests; reads of unset words fail like unmapped memory. */
final class FakeMemory implements RemoteMemory {
    final Map<Long, Long> words = new HashMap<>();

    FakeMemory put(long address, long value) {
        words.put(address, value);
        return this;
    }

    @Override
    public int read(long address, byte[] dst, int offset, int length) {
        Long v = words.get(address);
        if (v == null || length != 8) {
            return 0;
        }
        for (int i = 0; i < 8; i++) {
            dst[offset + i] = (byte) (v >>> (8 * i));
        }
        return 8;
    }

    /** The unwinder's view of these words: an empty stack copy that reads every word from here. */
    StackCopy live() {
        return new StackCopy(this);
    }

    /** The same words as a contiguous stack copy of {@code [base, base + length)}. */
    StackCopy copy(long base, int length) {
        byte[] bytes = new byte[length];
        words.forEach((a, v) -> {
            long o = a - base;
            if (o >= 0 && o + 8 <= length) {
                for (int i = 0; i < 8; i++) {
                    bytes[(int) o + i] = (byte) (v >>> (8 * i));
                }
            }
        });
        return new StackCopy(null).reset(base, bytes, length);
    }
}
