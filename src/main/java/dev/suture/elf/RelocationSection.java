package dev.suture.elf;

import java.util.List;

/**
 * A SHT_RELA, SHT_REL or SHT_RELR section with its decoded entries; {@code target} is the section they apply to, if
 * any. SHT_RELR entries are expanded into R_X86_64_RELATIVE relocations whose addend is in place (like REL).
 */
public record RelocationSection(Section section, Section target, List<Relocation> relocations) {
    public RelocationSection {
        relocations = List.copyOf(relocations);
    }

    public boolean isRelr() {
        return section.sh_type() == ElfConstants.SHT_RELR;
    }

    public boolean isRela() {
        return section.sh_type() == ElfConstants.SHT_RELA;
    }
}
