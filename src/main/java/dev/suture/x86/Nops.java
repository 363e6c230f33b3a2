package dev.suture.x86;

/** The multi-byte NOPs the Intel SDM recommends (volume 2, "NOP"), to fill the rest of a rewritten instruction. */
final class Nops {
    private static final byte[][] NOP = {
        {},
        {(byte) 0x90},
        {0x66, (byte) 0x90},
        {0x0f, 0x1f, 0x00},
        {0x0f, 0x1f, 0x40, 0x00},
        {0x0f, 0x1f, 0x44, 0x00, 0x00},
        {0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00},
        {0x0f, 0x1f, (byte) 0x80, 0x00, 0x00, 0x00, 0x00},
        {0x0f, 0x1f, (byte) 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},
        {0x66, 0x0f, 0x1f, (byte) 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},
    };

    private Nops() {}

    /** Fills {@code b[from, to)} with as few NOP instructions as the table allows. */
    static void fill(byte[] b, int from, int to) {
        while (from < to) {
            byte[] nop = NOP[Math.min(to - from, NOP.length - 1)];
            System.arraycopy(nop, 0, b, from, nop.length);
            from += nop.length;
        }
    }
}
