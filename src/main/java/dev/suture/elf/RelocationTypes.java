package dev.suture.elf;

/** Names of the x86-64 relocation types, spelled as in the psABI and as readelf prints them. */
public final class RelocationTypes {
    private RelocationTypes() {}

    private static final String[] NAMES = {
        "R_X86_64_NONE", "R_X86_64_64", "R_X86_64_PC32", "R_X86_64_GOT32", "R_X86_64_PLT32", "R_X86_64_COPY",
        "R_X86_64_GLOB_DAT", "R_X86_64_JUMP_SLOT", "R_X86_64_RELATIVE", "R_X86_64_GOTPCREL", "R_X86_64_32",
        "R_X86_64_32S", "R_X86_64_16", "R_X86_64_PC16", "R_X86_64_8", "R_X86_64_PC8", "R_X86_64_DTPMOD64",
        "R_X86_64_DTPOFF64", "R_X86_64_TPOFF64", "R_X86_64_TLSGD", "R_X86_64_TLSLD", "R_X86_64_DTPOFF32",
        "R_X86_64_GOTTPOFF", "R_X86_64_TPOFF32", "R_X86_64_PC64", "R_X86_64_GOTOFF64", "R_X86_64_GOTPC32",
        "R_X86_64_GOT64", "R_X86_64_GOTPCREL64", "R_X86_64_GOTPC64", "R_X86_64_GOTPLT64", "R_X86_64_PLTOFF64",
        "R_X86_64_SIZE32", "R_X86_64_SIZE64", "R_X86_64_GOTPC32_TLSDESC", "R_X86_64_TLSDESC_CALL",
        "R_X86_64_TLSDESC", "R_X86_64_IRELATIVE", "R_X86_64_RELATIVE64", null, null, "R_X86_64_GOTPCRELX",
        "R_X86_64_REX_GOTPCRELX",
    };

    /** The psABI name of an x86-64 relocation type, or {@code R_X86_64_<n>} for a number the psABI does not define. */
    public static String name(int type) {
        if (type >= 0 && type < NAMES.length && NAMES[type] != null) {
            return NAMES[type];
        }
        return "R_X86_64_" + Integer.toUnsignedString(type);
    }

    /** Whether {@code type} is a relocation type this class has a name for. */
    public static boolean isKnown(int type) {
        return type >= 0 && type < NAMES.length && NAMES[type] != null;
    }

    /** The type number for a psABI name, or -1. */
    public static int byName(String name) {
        for (int i = 0; i < NAMES.length; i++) {
            if (name.equals(NAMES[i])) {
                return i;
            }
        }
        return -1;
    }
}
