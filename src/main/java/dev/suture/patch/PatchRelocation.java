package dev.suture.patch;

import static dev.suture.elf.ElfConstants.*;

import dev.suture.elf.RelocationTypes;

/** One RELA entry of a patch section: what to write at {@code offset} (see docs/patch-format.md, section 5). */
public record PatchRelocation(long offset, int type, PatchSymbol symbol, long addend) {
    public String typeName() {
        return RelocationTypes.name(type);
    }

    /** Whether a patch may carry relocations of this type (docs/patch-format.md, section 5). */
    public static boolean isSupported(int type) {
        return switch (type) {
            case R_X86_64_PC32, R_X86_64_PLT32, R_X86_64_64, R_X86_64_PC64, R_X86_64_32, R_X86_64_32S,
                 R_X86_64_GOTPCREL, R_X86_64_GOTPCRELX, R_X86_64_REX_GOTPCRELX, R_X86_64_TLSGD, R_X86_64_TLSLD,
                 R_X86_64_DTPOFF32, R_X86_64_DTPOFF64, R_X86_64_GOTTPOFF -> true;
            default -> false;
        };
    }

    /** Whether the type refers to a thread-local variable (its TLS offset or module), not to an address. */
    public static boolean isTls(int type) {
        return switch (type) {
            case R_X86_64_TLSGD, R_X86_64_TLSLD, R_X86_64_DTPOFF32, R_X86_64_DTPOFF64, R_X86_64_GOTTPOFF,
                 R_X86_64_TPOFF32, R_X86_64_TPOFF64, R_X86_64_DTPMOD64 -> true;
            default -> false;
        };
    }

    /** Bytes the relocation writes: 8 for the 64-bit types, 4 for the others. */
    public static int width(int type) {
        return switch (type) {
            case R_X86_64_64, R_X86_64_PC64, R_X86_64_DTPOFF64, R_X86_64_TPOFF64, R_X86_64_GOTOFF64,
                 R_X86_64_GOT64, R_X86_64_GOTPCREL64, R_X86_64_GOTPC64, R_X86_64_GOTPLT64, R_X86_64_PLTOFF64,
                 R_X86_64_SIZE64 -> 8;
            case R_X86_64_16, R_X86_64_PC16 -> 2;
            case R_X86_64_8, R_X86_64_PC8 -> 1;
            case R_X86_64_NONE, R_X86_64_TLSDESC_CALL -> 0;
            default -> 4;
        };
    }
}
