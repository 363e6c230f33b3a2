package dev.suture.x86;

/**
 * One decoded x86-64 instruction: where each of its parts lies, as offsets into the code it was decoded from (-1
 * for a part it does not have). {@link Decoder} makes them; {@link FarAccess} rewrites the ones that reach memory.
 *
 * @param start       offset of the first byte (the first prefix)
 * @param length      bytes in all
 * @param encoding    legacy (with an optional REX), VEX or EVEX
 * @param rex         offset of the REX prefix, or -1
 * @param operandSize whether a 0x66 prefix is present
 * @param addressSize whether a 0x67 prefix is present
 * @param vex         offset of the VEX or EVEX prefix's first byte, or -1
 * @param map         the opcode map: 0 one-byte, 1 0F, 2 0F38, 3 0F3A (VEX and EVEX maps as their mmmmm says)
 * @param opcode      offset of the opcode byte (the last one, after 0F, 0F38 or 0F3A)
 * @param modrm       offset of the ModRM byte, or -1
 * @param sib         offset of the SIB byte, or -1
 * @param disp        offset of the displacement, or -1
 * @param dispSize    1 or 4 (0 when there is none)
 * @param imm         offset of the immediate (or of a branch's relative target), or -1
 * @param immSize     its size: 1, 2, 4 or 8 (0 when there is none)
 */
public record Instruction(int start, int length, Encoding encoding, int rex, boolean operandSize, boolean addressSize,
                          int vex, int map, int opcode, int modrm, int sib, int disp, int dispSize, int imm,
                          int immSize) {

    /** How the instruction's prefixes extend its opcode and registers. */
    public enum Encoding { LEGACY, VEX2, VEX3, EVEX }

    public int end() {
        return start + length;
    }

    public boolean hasModrm() {
        return modrm >= 0;
    }

    /** The REX.W bit of a legacy instruction (VEX.W is not looked at here). */
    public boolean rexW(byte[] code) {
        return rex >= 0 && (code[rex] & 0x08) != 0;
    }

    /** A ModRM field: mod (bits 7-6), reg (5-3), rm (2-0). */
    public int mod(byte[] code) {
        return (code[modrm] & 0xff) >>> 6;
    }

    public int reg(byte[] code) {
        return (code[modrm] >>> 3) & 7;
    }

    public int rm(byte[] code) {
        return code[modrm] & 7;
    }

    /** The memory operand is {@code disp32(%rip)}: mod 00, rm 101, in 64-bit mode. */
    public boolean ripRelative(byte[] code) {
        return modrm >= 0 && mod(code) == 0 && rm(code) == 5;
    }

    /** The memory operand is {@code disp32(,%index,scale)} or {@code disp32}: a SIB byte with no base. */
    public boolean absoluteSib(byte[] code) {
        return sib >= 0 && mod(code) == 0 && (code[sib] & 7) == 5;
    }

    /** The opcode byte's value. */
    public int opcodeByte(byte[] code) {
        return code[opcode] & 0xff;
    }
}
