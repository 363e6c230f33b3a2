package dev.suture.x86;

/**
 * Encodings of the few control transfers a live patch installs: the 5-byte {@code jmp rel32} written over an old
 * function's entry, the 5-byte {@code call rel32}, and the 14-byte absolute jump used for jump-table entries
 * ({@code jmp *0(%rip)} followed by the 8-byte target), which reaches anywhere.
 */
public final class Jumps {
    /** Length of {@code jmp rel32} and {@code call rel32}. */
    public static final int REL32_LENGTH = 5;
    /** Length of an absolute jump thunk: {@code ff 25 00 00 00 00} and the 8-byte target. */
    public static final int THUNK_LENGTH = 14;

    private static final byte JMP_REL32 = (byte) 0xe9;
    private static final byte CALL_REL32 = (byte) 0xe8;

    private Jumps() {}

    /** True if an instruction of {@code length} bytes at {@code from} ending in a rel32 can reach {@code to}. */
    public static boolean reachable(long from, int length, long to) {
        long displacement = to - (from + length);
        return displacement == (int) displacement;
    }

    /** {@code jmp rel32} at {@code from} to {@code to}; DoesNotFitException when the distance exceeds ±2 GiB. */
    public static byte[] jmpRel32(long from, long to) {
        return rel32(JMP_REL32, "jmp", from, to);
    }

    /** {@code call rel32} at {@code from} to {@code to}; DoesNotFitException when the distance exceeds ±2 GiB. */
    public static byte[] callRel32(long from, long to) {
        return rel32(CALL_REL32, "call", from, to);
    }

    private static byte[] rel32(byte opcode, String mnemonic, long from, long to) {
        if (!reachable(from, REL32_LENGTH, to)) {
            throw new DoesNotFitException(String.format(
                    "%s at 0x%x cannot reach 0x%x: the distance is beyond ±2 GiB (rel32)", mnemonic, from, to));
        }
        int displacement = (int) (to - (from + REL32_LENGTH));
        byte[] b = new byte[REL32_LENGTH];
        b[0] = opcode;
        Bytes.putInt(b, 1, displacement);
        return b;
    }

    /**
     * The target of a {@code jmp rel32} that sits at {@code from}, or -1 if {@code bytes} (read at {@code from}) do not
     * start with one. Used to recognise our own jumps, e.g. when a later patch chains onto an earlier one.
     */
    public static long jmpRel32Target(byte[] bytes, long from) {
        if (bytes.length < REL32_LENGTH || bytes[0] != JMP_REL32) {
            return -1;
        }
        return from + REL32_LENGTH + Bytes.getInt(bytes, 1);
    }

    /** {@code jmp *0(%rip); .quad target}: an absolute jump that reaches any address, 14 bytes. */
    public static byte[] absoluteThunk(long target) {
        byte[] b = new byte[THUNK_LENGTH];
        b[0] = (byte) 0xff;
        b[1] = 0x25;
        // b[2..5] = 0: the 8-byte target follows the instruction immediately
        Bytes.putLong(b, 6, target);
        return b;
    }

    /** The target of an absolute thunk, or -1 if {@code bytes} do not hold one. */
    public static long absoluteThunkTarget(byte[] bytes) {
        if (bytes.length < THUNK_LENGTH || bytes[0] != (byte) 0xff || bytes[1] != 0x25 || Bytes.getInt(bytes, 2) != 0) {
            return -1;
        }
        return Bytes.getLong(bytes, 6);
    }
}
