package dev.suture.patch;

import dev.suture.elf.ElfConstants;

import java.util.List;

/**
 * A section of the patch with its content and relocations. {@code bytes} is empty for SHT_NOBITS ({@code size}
 * says how much zeroed memory it needs). Sections with {@code SHF_ALLOC} are what the binder lays out.
 */
public record PatchSection(int index, String name, int type, long flags, long align, long entsize, long size,
                           byte[] bytes, List<PatchRelocation> relocations) {
    public PatchSection {
        relocations = List.copyOf(relocations);
    }

    public boolean isAlloc() {
        return (flags & ElfConstants.SHF_ALLOC) != 0;
    }

    public boolean isExecutable() {
        return (flags & ElfConstants.SHF_EXECINSTR) != 0;
    }

    public boolean isWritable() {
        return (flags & ElfConstants.SHF_WRITE) != 0;
    }

    public boolean isNobits() {
        return type == ElfConstants.SHT_NOBITS;
    }
}
