package dev.suture.elf;

/**
 * One REL or RELA entry. {@code symbol} is the entry of the symbol table named by the relocation section's
 * {@code sh_link} (null for symbol index 0); REL entries have {@code r_addend} 0 (their addend is in place).
 */
public record Relocation(long r_offset, int type, Symbol symbol, long r_addend, int symbolIndex) {

    /** The psABI name of the type, e.g. R_X86_64_PC32. */
    public String typeName() {
        return RelocationTypes.name(type);
    }
}
