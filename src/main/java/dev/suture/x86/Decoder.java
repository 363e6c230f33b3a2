package dev.suture.x86;

/**
 * An instruction-length decoder for x86-64 (64-bit mode): prefixes, REX, VEX, EVEX, the one-byte, 0F, 0F38 and 0F3A
 * opcode maps, ModRM, SIB, displacement and immediate, after the Intel SDM volume 2, appendix A ("Opcode Map"). It
 * finds where an instruction's parts are, not what it does; what it cannot decode (an opcode invalid in 64-bit mode,
 * 3DNow!, XOP, code that runs off its end) is an {@link UndecodableException}, never a guess.
 */
public final class Decoder {
    private static final int MAX_LENGTH = 15;

    /**
     * One-byte map: bit 0 = has ModRM; bits 1-3 = immediate kind (see IMM_*); bit 4 = invalid in 64-bit mode.
     * Built once from the ranges below.
     */
    private static final byte[] ONE = new byte[256];
    private static final byte[] TWO = new byte[256];
    private static final int MODRM = 1;
    private static final int IMM_NONE = 0;
    private static final int IMM_8 = 1 << 1;
    private static final int IMM_16 = 2 << 1;
    /** 4 bytes, or 2 with a 0x66 prefix (Intel's "z"). */
    private static final int IMM_Z = 3 << 1;
    /** 4 bytes always: rel32 of call, jmp and jcc. */
    private static final int IMM_32 = 4 << 1;
    /** enter: imm16 then imm8. */
    private static final int IMM_24 = 5 << 1;
    /** mov moffs: an 8-byte address (4 with 0x67). */
    private static final int IMM_MOFFS = 6 << 1;
    /** mov r, imm: z, or 8 bytes with REX.W. */
    private static final int IMM_ZV = 7 << 1;
    private static final int IMM_MASK = 7 << 1;
    private static final int INVALID = 1 << 4;

    static {
        for (int x = 0; x < 0x40; x += 8) {
            for (int i = 0; i < 4; i++) {
                ONE[x + i] = MODRM;
            }
            ONE[x + 4] = IMM_8;
            ONE[x + 5] = IMM_Z;
            ONE[x + 6] = INVALID;
            ONE[x + 7] = INVALID;
        }
        ONE[0x0f] = INVALID; // handled as an escape before the table is read
        ONE[0xc4] = ONE[0xc5] = INVALID; // VEX in 64-bit mode, handled before the table is read
        ONE[0x63] = MODRM;
        ONE[0x60] = ONE[0x61] = ONE[0x62] = INVALID;
        ONE[0x68] = IMM_Z;
        ONE[0x69] = MODRM | IMM_Z;
        ONE[0x6a] = IMM_8;
        ONE[0x6b] = MODRM | IMM_8;
        for (int i = 0x70; i <= 0x7f; i++) {
            ONE[i] = IMM_8;
        }
        ONE[0x80] = MODRM | IMM_8;
        ONE[0x81] = MODRM | IMM_Z;
        ONE[0x82] = INVALID;
        ONE[0x83] = MODRM | IMM_8;
        for (int i = 0x84; i <= 0x8f; i++) {
            ONE[i] = MODRM;
        }
        ONE[0x9a] = INVALID;
        ONE[0xa0] = ONE[0xa1] = ONE[0xa2] = ONE[0xa3] = IMM_MOFFS;
        ONE[0xa8] = IMM_8;
        ONE[0xa9] = IMM_Z;
        for (int i = 0xb0; i <= 0xb7; i++) {
            ONE[i] = IMM_8;
        }
        for (int i = 0xb8; i <= 0xbf; i++) {
            ONE[i] = IMM_ZV;
        }
        ONE[0xc0] = ONE[0xc1] = MODRM | IMM_8;
        ONE[0xc2] = IMM_16;
        ONE[0xc6] = MODRM | IMM_8;
        ONE[0xc7] = MODRM | IMM_Z;
        ONE[0xc8] = IMM_24;
        ONE[0xca] = IMM_16;
        ONE[0xcd] = IMM_8;
        ONE[0xce] = INVALID;
        ONE[0xd0] = ONE[0xd1] = ONE[0xd2] = ONE[0xd3] = MODRM;
        ONE[0xd4] = ONE[0xd5] = ONE[0xd6] = INVALID;
        for (int i = 0xd8; i <= 0xdf; i++) {
            ONE[i] = MODRM;
        }
        for (int i = 0xe0; i <= 0xe7; i++) {
            ONE[i] = IMM_8;
        }
        ONE[0xe8] = ONE[0xe9] = IMM_32;
        ONE[0xea] = INVALID;
        ONE[0xeb] = IMM_8;
        ONE[0xf6] = ONE[0xf7] = MODRM; // test's immediate depends on ModRM.reg
        ONE[0xfe] = ONE[0xff] = MODRM;

        // 0F map: most instructions have a ModRM byte; the exceptions and invalid ones are listed
        for (int i = 0; i < 256; i++) {
            TWO[i] = MODRM;
        }
        for (int i : new int[] {0x05, 0x06, 0x07, 0x08, 0x09, 0x0b, 0x0e, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x37,
                0x77, 0xa0, 0xa1, 0xa2, 0xa8, 0xa9, 0xaa}) {
            TWO[i] = IMM_NONE;
        }
        for (int i = 0xc8; i <= 0xcf; i++) {
            TWO[i] = IMM_NONE;
        }
        for (int i : new int[] {0x04, 0x0a, 0x0c, 0x0f, 0x24, 0x25, 0x26, 0x27, 0x36, 0x39, 0x3b, 0x3c, 0x3d, 0x3e,
                0x3f, 0x7a, 0x7b}) {
            TWO[i] = INVALID;
        }
        for (int i = 0x80; i <= 0x8f; i++) {
            TWO[i] = IMM_32;
        }
        for (int i : new int[] {0x70, 0x71, 0x72, 0x73, 0xa4, 0xac, 0xba, 0xc2, 0xc4, 0xc5, 0xc6}) {
            TWO[i] = MODRM | IMM_8;
        }
    }

    private Decoder() {}

    /** The instruction at {@code at} in {@code code}, which must end at or before {@code limit}. */
    public static Instruction decode(byte[] code, int at, int limit) {
        limit = Math.min(limit, code.length);
        var c = new Cursor(code, at, Math.min(limit, at + MAX_LENGTH));
        boolean opsize = false;
        boolean addrsize = false;
        int rex = -1;
        // legacy prefixes, in any order; a REX counts only right before the opcode
        for (;;) {
            int b = c.peek();
            if (b == 0x66) {
                opsize = true;
            } else if (b == 0x67) {
                addrsize = true;
            } else if (b == 0xf0 || b == 0xf2 || b == 0xf3 || b == 0x2e || b == 0x36 || b == 0x3e || b == 0x26
                    || b == 0x64 || b == 0x65) {
                // lock, rep, segment and branch-hint prefixes: they change no length
            } else {
                break;
            }
            c.next();
            rex = -1;
        }
        if ((c.peek() & 0xf0) == 0x40) {
            rex = c.pos;
            c.next();
        }
        boolean rexW = rex >= 0 && (code[rex] & 0x08) != 0;
        int first = c.peek();
        if (rex < 0 && (first == 0xc4 || first == 0xc5 || first == 0x62)) {
            return vex(code, at, c, opsize, addrsize);
        }
        if (first == 0x8f && (c.peekAt(1) & 0x38) != 0) {
            throw new UndecodableException(at, "an AMD XOP instruction");
        }
        int opcode = c.pos;
        int op = c.next();
        int map = 0;
        int flags;
        if (op == 0x0f) {
            int second = c.next();
            if (second == 0x38 || second == 0x3a) {
                map = second == 0x38 ? 2 : 3;
                opcode = c.pos;
                c.next();
                flags = MODRM | (map == 3 ? IMM_8 : IMM_NONE);
            } else {
                map = 1;
                opcode = c.pos - 1;
                flags = TWO[second];
                if (second == 0x0f) {
                    throw new UndecodableException(at, "a 3DNow! instruction");
                }
            }
        } else {
            flags = ONE[op];
        }
        if ((flags & INVALID) != 0) {
            throw new UndecodableException(at, String.format("opcode %s%02x is not valid in 64-bit mode",
                    map == 1 ? "0f " : "", code[opcode] & 0xff));
        }
        int immKind = flags & IMM_MASK;
        var m = (flags & MODRM) != 0 ? modrm(c, addrsize) : ModRm.NONE;
        if (map == 0 && (op == 0xf6 || op == 0xf7) && ((code[m.modrm] >>> 3) & 7) <= 1) {
            immKind = op == 0xf6 ? IMM_8 : IMM_Z;
        }
        int immSize = switch (immKind) {
            case IMM_NONE -> 0;
            case IMM_8 -> 1;
            case IMM_16 -> 2;
            case IMM_Z -> opsize && !rexW ? 2 : 4;
            case IMM_32 -> 4;
            case IMM_24 -> 3;
            case IMM_MOFFS -> addrsize ? 4 : 8;
            case IMM_ZV -> rexW ? 8 : opsize ? 2 : 4;
            default -> throw new IllegalStateException();
        };
        int imm = immSize == 0 ? -1 : c.pos;
        c.skip(immSize);
        return new Instruction(at, c.pos - at, Instruction.Encoding.LEGACY, rex, opsize, addrsize, -1, map, opcode,
                m.modrm, m.sib, m.disp, m.dispSize, imm, immSize);
    }

    /** VEX (C4, C5) and EVEX (62) instructions: the map comes from the prefix, every one has a ModRM byte. */
    private static Instruction vex(byte[] code, int at, Cursor c, boolean opsize, boolean addrsize) {
        int vex = c.pos;
        int kind = c.next();
        Instruction.Encoding encoding;
        int map;
        if (kind == 0xc5) {
            encoding = Instruction.Encoding.VEX2;
            c.next();
            map = 1;
        } else if (kind == 0xc4) {
            encoding = Instruction.Encoding.VEX3;
            map = c.next() & 0x1f;
            c.next();
        } else {
            encoding = Instruction.Encoding.EVEX;
            map = c.next() & 0x07;
            c.next();
            c.next();
        }
        if (map < 1 || map > 3 && encoding != Instruction.Encoding.EVEX || map == 4 || map == 7) {
            throw new UndecodableException(at, "a VEX/EVEX instruction in opcode map " + map);
        }
        int opcode = c.pos;
        int op = c.next();
        boolean noModrm = map == 1 && op == 0x77 && encoding != Instruction.Encoding.EVEX; // vzeroupper, vzeroall
        var m = noModrm ? ModRm.NONE : modrm(c, addrsize);
        int immSize = map == 3 || map == 1 && (TWO[op] & IMM_MASK) == IMM_8 ? 1 : 0;
        int imm = immSize == 0 ? -1 : c.pos;
        c.skip(immSize);
        return new Instruction(at, c.pos - at, encoding, -1, opsize, addrsize, vex, map, opcode, m.modrm, m.sib,
                m.disp, m.dispSize, imm, immSize);
    }

    private record ModRm(int modrm, int sib, int disp, int dispSize) {
        static final ModRm NONE = new ModRm(-1, -1, -1, 0);
    }

    private static ModRm modrm(Cursor c, boolean addrsize) {
        int at = c.pos;
        int b = c.next();
        int mod = b >>> 6;
        int rm = b & 7;
        int sib = -1;
        int dispSize = 0;
        if (mod != 3) {
            if (rm == 4) {
                sib = c.pos;
                int s = c.next();
                if (mod == 0 && (s & 7) == 5) {
                    dispSize = 4;
                }
            } else if (mod == 0 && rm == 5) {
                dispSize = 4; // rip-relative (eip-relative with 0x67)
            }
            if (mod == 1) {
                dispSize = 1;
            } else if (mod == 2) {
                dispSize = 4;
            }
        }
        int disp = dispSize == 0 ? -1 : c.pos;
        c.skip(dispSize);
        return new ModRm(at, sib, disp, dispSize);
    }

    /** Reads bytes of one instruction, refusing to run past its limit. */
    private static final class Cursor {
        final byte[] code;
        final int start;
        final int limit;
        int pos;

        Cursor(byte[] code, int start, int limit) {
            this.code = code;
            this.start = start;
            this.limit = limit;
            this.pos = start;
        }

        int peek() {
            return peekAt(0);
        }

        int peekAt(int ahead) {
            if (pos + ahead >= limit) {
                throw new UndecodableException(start, "the instruction runs past the end of its code");
            }
            return code[pos + ahead] & 0xff;
        }

        int next() {
            int b = peek();
            pos++;
            return b;
        }

        void skip(int n) {
            if (pos + n > limit) {
                throw new UndecodableException(start, "the instruction runs past the end of its code");
            }
            pos += n;
        }
    }
}
