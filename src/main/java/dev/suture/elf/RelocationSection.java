package dev.suture.elf;

import java.util.List;

/** A SHT_RELA or SHT_REL section with its decoded entries; {@code target} is the section they apply to, if any. */
public record RelocationSection(Section section, Section target, List<Relocation> relocations) {
    public RelocationSection {
        relocations = List.copyOf(relocations);
    }

    public boolean isRela() {
        return section.sh_type() == ElfConstants.SHT_RELA;
    }
}
