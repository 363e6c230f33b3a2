package dev.suture.elf;

/**
 * The ELF file header. {@code e_shnum}, {@code e_shstrndx} and {@code e_phnum} are the real values: when the file
 * uses extended numbering (too many sections) they are taken from section header 0, as the gABI says.
 */
public record ElfHeader(int ei_class, int ei_data, int ei_osabi, int ei_abiversion, int e_type, int e_machine,
                        long e_version, long e_entry, long e_phoff, long e_shoff, long e_flags, int e_ehsize,
                        int e_phentsize, int e_phnum, int e_shentsize, int e_shnum, int e_shstrndx) {

    /** The type as readelf names it: REL, EXEC, DYN, CORE, NONE or a number. */
    public String typeName() {
        return switch (e_type) {
            case ElfConstants.ET_NONE -> "NONE";
            case ElfConstants.ET_REL -> "REL";
            case ElfConstants.ET_EXEC -> "EXEC";
            case ElfConstants.ET_DYN -> "DYN";
            case ElfConstants.ET_CORE -> "CORE";
            default -> "0x" + Integer.toHexString(e_type);
        };
    }

    /** The machine, by its short name for the few that matter here. */
    public String machineName() {
        return switch (e_machine) {
            case ElfConstants.EM_X86_64 -> "x86-64";
            case 3 -> "i386";
            case 183 -> "aarch64";
            case 243 -> "riscv";
            case 0 -> "none";
            default -> "machine " + e_machine;
        };
    }
}
