package dev.suture.elf;

import static dev.suture.elf.ElfConstants.*;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/** One program header (segment), fields as in the gABI; {@code index} is its position in the table. */
public record ProgramHeader(int index, int p_type, int p_flags, long p_offset, long p_vaddr, long p_paddr,
                            long p_filesz, long p_memsz, long p_align) {

    public boolean isLoad() {
        return p_type == ElfConstants.PT_LOAD;
    }

    /** Whether the link-time address {@code vaddr} lies in the segment's memory image. */
    public boolean containsAddress(long vaddr) {
        return Long.compareUnsigned(vaddr, p_vaddr) >= 0 && Long.compareUnsigned(vaddr - p_vaddr, p_memsz) < 0;
    }

    /** The type as readelf names it (LOAD, DYNAMIC, GNU_STACK, ...). */
    public String typeName() {
        return switch (p_type) {
            case ElfConstants.PT_NULL -> "NULL";
            case ElfConstants.PT_LOAD -> "LOAD";
            case ElfConstants.PT_DYNAMIC -> "DYNAMIC";
            case ElfConstants.PT_INTERP -> "INTERP";
            case ElfConstants.PT_NOTE -> "NOTE";
            case ElfConstants.PT_SHLIB -> "SHLIB";
            case ElfConstants.PT_PHDR -> "PHDR";
            case ElfConstants.PT_TLS -> "TLS";
            case ElfConstants.PT_GNU_EH_FRAME -> "GNU_EH_FRAME";
            case ElfConstants.PT_GNU_STACK -> "GNU_STACK";
            case ElfConstants.PT_GNU_RELRO -> "GNU_RELRO";
            case ElfConstants.PT_GNU_PROPERTY -> "GNU_PROPERTY";
            default -> "0x" + Integer.toHexString(p_type);
        };
    }

    /** The flags as readelf prints them: "R E", "RW ", ... */
    public String flagString() {
        return ((p_flags & ElfConstants.PF_R) != 0 ? "R" : " ") + ((p_flags & ElfConstants.PF_W) != 0 ? "W" : " ")
                + ((p_flags & ElfConstants.PF_X) != 0 ? "E" : " ");
    }

    /** Decodes the program header table. */
    static List<ProgramHeader> readAll(ElfFile elf) {
        int n = elf.header().e_phnum();
        if (n == 0) {
            return List.of();
        }
        int base = elf.checkRange(elf.header().e_phoff(), (long) n * PHDR_SIZE, "the program header table (" + n + " entries)");
        var out = new ArrayList<ProgramHeader>(n);
        for (int i = 0; i < n; i++) {
            int o = base + i * PHDR_SIZE;
            out.add(new ProgramHeader(i, elf.data().getInt(o), elf.data().getInt(o + 4), elf.data().getLong(o + 8), elf.data().getLong(o + 16),
                    elf.data().getLong(o + 24), elf.data().getLong(o + 32), elf.data().getLong(o + 40), elf.data().getLong(o + 48)));
        }
        return Collections.unmodifiableList(out);
    }

}
