package dev.suture.x86;

import java.io.ByteArrayOutputStream;
import java.util.Arrays;

/**
 * Rewrites one instruction that reaches a variable of another module with a 32-bit field (gcc's {@code
 * mov stderr(%rip),%rax}, {@code mov $environ,%edi}, {@code mov tbl(,%rax,4),%eax}: code compiled for a copy
 * relocation, or for the low 2 GiB, that the running program never got) into a jump to an out-of-line thunk that
 * takes the variable's address from a GOT slot and does the same thing with it.
 *
 * <p>The instruction's bytes become {@code jmp thunk} (or {@code call thunk}, for {@code call *var}) and NOPs, so
 * nothing else in the function moves. A memory operand is rewritten to {@code disp32(%scratch)}, where the scratch
 * register is one of rbx, rsi, rdi the instruction does not use, saved below the red zone and restored; the thunk
 * uses only {@code lea}, {@code push}, {@code pop}, {@code mov} and {@code jmp}, so the flags are the instruction's
 * alone. What it cannot rewrite safely is a {@link DoesNotFitException} naming the instruction.
 */
public final class FarAccess {
    /** rbx, rsi, rdi: encodable without REX.B, and implied by no instruction with a memory operand gcc emits. */
    private static final int[] SCRATCH = {3, 6, 7};
    private static final int RSP = 4;
    private static final int R11 = 11;

    private FarAccess() {}

    /**
     * The rewrite of one instruction.
     *
     * @param site        bytes that replace the instruction, as long as it
     * @param siteField   offset in {@code site} of the rel32 that must reach the thunk's start (addend -4)
     * @param thunk       the thunk's bytes
     * @param gotField    offset in {@code thunk} of the rel32 that must reach the variable's GOT slot (addend -4)
     * @param backField   offset in {@code thunk} of the rel32 that must reach the instruction's end (addend -4), or
     *                    -1 when the thunk does not come back (it jumps where the instruction would)
     * @param copy        offset in {@code thunk} of the rewritten instruction, whose fields keep their offsets from
     *                    its start (other relocations of the instruction move there), or -1 when it is not copied
     */
    public record Rewrite(byte[] site, int siteField, byte[] thunk, int gotField, int backField, int copy) {}

    /**
     * Rewrites {@code insn} of {@code code}, whose field at {@code field} is relocated against the variable with
     * {@code addend}: PC-relative ({@code R_X86_64_PC32}) or absolute ({@code R_X86_64_32}, {@code _32S}).
     */
    public static Rewrite rewrite(byte[] code, Instruction insn, int field, long addend, boolean pcRelative) {
        if (insn.length() < Jumps.REL32_LENGTH) {
            throw refuse(code, insn, "it is shorter than a jump");
        }
        if (insn.encoding() == Instruction.Encoding.EVEX) {
            throw refuse(code, insn, "it is EVEX-encoded (AVX-512)");
        }
        if (insn.addressSize()) {
            throw refuse(code, insn, "it has a 32-bit address-size prefix");
        }
        if (field == insn.disp() && insn.dispSize() == 4) {
            if (pcRelative != insn.ripRelative(code) || !pcRelative && !insn.absoluteSib(code)) {
                throw refuse(code, insn, "its relocation does not match its addressing mode");
            }
            long offset = pcRelative ? addend + (insn.end() - field) : addend;
            return memory(code, insn, offset);
        }
        if (field == insn.imm() && insn.immSize() == 4 && !pcRelative) {
            return immediate(code, insn, addend);
        }
        throw refuse(code, insn, "the relocated field is neither its displacement nor a 32-bit immediate");
    }

    private static Rewrite memory(byte[] code, Instruction insn, long offset) {
        if (offset != (int) offset) {
            throw refuse(code, insn, "the offset into the variable does not fit 32 bits");
        }
        int op = insn.opcodeByte(code);
        int reg = insn.reg(code);
        if (insn.map() == 0 && op == 0xff && (reg == 2 || reg == 4) && insn.encoding() == Instruction.Encoding.LEGACY) {
            return branch(code, insn, (int) offset, reg == 2);
        }
        if (insn.map() == 0 && (op == 0xff && reg != 0 && reg != 1 || op == 0x8f)) {
            throw refuse(code, insn, "it pushes, pops or jumps through the variable");
        }
        boolean regExtended = switch (insn.encoding()) {
            case LEGACY -> insn.rex() >= 0 && (code[insn.rex()] & 0x04) != 0;
            case VEX2, VEX3 -> (code[insn.vex() + 1] & 0x80) == 0;
            case EVEX -> throw new IllegalStateException();
        };
        if (!regExtended && reg == RSP && usesRegAsGpr(insn, code)) {
            throw refuse(code, insn, "it uses %rsp, which the thunk moves");
        }
        // the scratch register: not the reg operand, not the index, not VEX.vvvv, not rbx for cmpxchg8b/16b
        var taken = new boolean[8];
        if (!regExtended) {
            taken[reg] = true;
        }
        if (insn.sib() >= 0) {
            boolean indexExtended = insn.rex() >= 0 && (code[insn.rex()] & 0x02) != 0
                    || insn.encoding() == Instruction.Encoding.VEX3 && (code[insn.vex() + 1] & 0x40) == 0;
            if (!indexExtended) {
                taken[(code[insn.sib()] >>> 3) & 7] = true;
            }
        }
        if (insn.encoding() != Instruction.Encoding.LEGACY) {
            int vvvv = insn.encoding() == Instruction.Encoding.VEX2 ? code[insn.vex() + 1] : code[insn.vex() + 2];
            int v = (~vvvv >>> 3) & 15;
            if (v < 8) {
                taken[v] = true;
            }
        }
        if (insn.map() == 1 && op == 0xc7) {
            taken[3] = true;
        }
        int s = -1;
        for (int candidate : SCRATCH) {
            if (!taken[candidate]) {
                s = candidate;
                break;
            }
        }
        if (s < 0) {
            throw refuse(code, insn, "rbx, rsi and rdi are all its operands");
        }
        byte[] copy = Arrays.copyOfRange(code, insn.start(), insn.end());
        int base = insn.start();
        switch (insn.encoding()) {
            case LEGACY -> {
                if (insn.rex() >= 0) {
                    // REX.B would extend the new base; REX.X means nothing without a SIB byte
                    copy[insn.rex() - base] &= (byte) (insn.sib() >= 0 ? ~0x01 : ~0x03);
                }
            }
            case VEX3 -> copy[insn.vex() + 1 - base] |= (byte) (insn.sib() >= 0 ? 0x20 : 0x60);
            case VEX2, EVEX -> { }
        }
        int modrm = insn.modrm() - base;
        if (insn.sib() >= 0) {
            copy[modrm] = (byte) (0x80 | (reg << 3) | 4);
            copy[insn.sib() - base] = (byte) ((code[insn.sib()] & 0xf8) | s);
        } else {
            copy[modrm] = (byte) (0x80 | (reg << 3) | s);
        }
        Bytes.putInt(copy, insn.disp() - base, (int) offset);

        var t = new ByteArrayOutputStream();
        t.writeBytes(new byte[] {0x48, (byte) 0x8d, 0x64, 0x24, (byte) 0x80}); // lea -0x80(%rsp),%rsp
        t.write(0x50 + s); // push %s
        t.writeBytes(new byte[] {0x48, (byte) 0x8b, (byte) ((s << 3) | 5)}); // mov slot(%rip),%s
        int gotField = t.size();
        t.writeBytes(new byte[4]);
        int at = t.size();
        t.writeBytes(copy);
        t.write(0x58 + s); // pop %s
        t.writeBytes(new byte[] {0x48, (byte) 0x8d, (byte) 0xa4, 0x24, (byte) 0x80, 0, 0, 0}); // lea 0x80(%rsp),%rsp
        t.write(0xe9);
        int back = t.size();
        t.writeBytes(new byte[4]);
        return new Rewrite(site(insn, 0xe9), 1, t.toByteArray(), gotField, back, at);
    }

    /**
     * {@code call *var} and {@code jmp *var}: the site calls (or jumps to) a thunk that loads the pointer through
     * r11, which the ABI leaves to every call to clobber and no call takes an argument in, and jumps on.
     */
    private static Rewrite branch(byte[] code, Instruction insn, int offset, boolean call) {
        var t = new ByteArrayOutputStream();
        t.writeBytes(new byte[] {0x4c, (byte) 0x8b, 0x1d}); // mov slot(%rip),%r11
        int gotField = t.size();
        t.writeBytes(new byte[4]);
        boolean sib = insn.sib() >= 0;
        int x = sib && insn.rex() >= 0 ? code[insn.rex()] & 0x02 : 0;
        t.write(0x41 | x);
        t.write(0xff);
        t.write(0x80 | (4 << 3) | (sib ? 4 : R11 & 7)); // jmp *disp32(%r11[,index,scale])
        if (sib) {
            t.write((code[insn.sib()] & 0xf8) | (R11 & 7));
        }
        byte[] disp = new byte[4];
        Bytes.putInt(disp, 0, offset);
        t.writeBytes(disp);
        return new Rewrite(site(insn, call ? 0xe8 : 0xe9), 1, t.toByteArray(), gotField, -1, -1);
    }

    /** {@code mov $var,%r32} and {@code mov $var,%r64}: the thunk loads the address into the register instead. */
    private static Rewrite immediate(byte[] code, Instruction insn, long offset) {
        int op = insn.opcodeByte(code);
        int rexB = insn.rex() >= 0 ? code[insn.rex()] & 0x01 : 0;
        int r;
        if (insn.map() == 0 && op >= 0xb8 && op <= 0xbf && insn.encoding() == Instruction.Encoding.LEGACY) {
            r = (op & 7) | rexB << 3;
        } else if (insn.map() == 0 && op == 0xc7 && insn.mod(code) == 3 && insn.reg(code) == 0
                && insn.encoding() == Instruction.Encoding.LEGACY) {
            r = insn.rm(code) | rexB << 3;
        } else {
            throw refuse(code, insn, "only a move of the address into a register can take it from a GOT slot");
        }
        if (insn.operandSize() || offset != (int) offset) {
            throw refuse(code, insn, "it moves a 16-bit value, or an offset beyond 32 bits");
        }
        int rex = 0x48 | (r >= 8 ? 0x04 : 0);
        var t = new ByteArrayOutputStream();
        t.writeBytes(new byte[] {(byte) rex, (byte) 0x8b, (byte) (((r & 7) << 3) | 5)}); // mov slot(%rip),%r
        int gotField = t.size();
        t.writeBytes(new byte[4]);
        if (offset != 0) {
            // lea offset(%r),%r (a SIB byte when the base is rsp or r12)
            t.writeBytes(new byte[] {(byte) (rex | (r >= 8 ? 0x01 : 0)), (byte) 0x8d,
                    (byte) (0x80 | ((r & 7) << 3) | (r & 7))});
            if ((r & 7) == RSP) {
                t.write(0x24);
            }
            byte[] disp = new byte[4];
            Bytes.putInt(disp, 0, (int) offset);
            t.writeBytes(disp);
        }
        t.write(0xe9);
        int back = t.size();
        t.writeBytes(new byte[4]);
        return new Rewrite(site(insn, 0xe9), 1, t.toByteArray(), gotField, back, -1);
    }

    /** {@code jmp rel32} or {@code call rel32} to be relocated, then NOPs up to the instruction's length. */
    private static byte[] site(Instruction insn, int opcode) {
        byte[] b = new byte[insn.length()];
        b[0] = (byte) opcode;
        Nops.fill(b, Jumps.REL32_LENGTH, b.length);
        return b;
    }

    /** Whether ModRM.reg names a general-purpose register (the opcodes gcc emits with a GPR reg operand). */
    private static boolean usesRegAsGpr(Instruction insn, byte[] code) {
        int op = insn.opcodeByte(code);
        return switch (insn.map()) {
            case 0 -> op < 0x40 && (op & 7) < 4 || op == 0x63 || op == 0x69 || op == 0x6b
                    || op >= 0x84 && op <= 0x8b || op == 0x8d;
            case 1 -> op >= 0x40 && op <= 0x4f || op == 0xa3 || op == 0xa5 || op == 0xab || op == 0xad
                    || op == 0xaf || op >= 0xb0 && op <= 0xb3 || op >= 0xb6 && op <= 0xbf || op == 0xc0 || op == 0xc1;
            case 2 -> op >= 0xf0;
            case 3 -> op == 0xf0;
            default -> false;
        };
    }

    private static DoesNotFitException refuse(byte[] code, Instruction insn, String why) {
        var hex = new StringBuilder();
        for (int i = insn.start(); i < insn.end(); i++) {
            hex.append(String.format(i == insn.start() ? "%02x" : " %02x", code[i] & 0xff));
        }
        return new DoesNotFitException("the instruction " + hex + " cannot reach its variable through a GOT slot: "
                + why);
    }
}
