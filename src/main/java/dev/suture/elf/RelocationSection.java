package dev.suture.elf;

import static dev.suture.elf.ElfConstants.*;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

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

    /** Decodes every SHT_RELA, SHT_REL and SHT_RELR section of {@code elf}. */
    static List<RelocationSection> readAll(ElfFile elf) {
        var out = new ArrayList<RelocationSection>();
        Map<Integer, List<Symbol>> tables = new HashMap<>();
        // Overlapping tables could otherwise multiply the work: all sections together get what the file can hold.
        long budget = elf.size() / REL_SIZE + 1;
        for (var s : elf.sections()) {
            if (s.sh_type() == SHT_RELR) {
                var relr = readRelr(elf, s);
                budget -= relr.size() / 4;
                if (budget < 0) {
                    throw elf.error("the relocation sections overlap: together they hold more entries than the file has room for");
                }
                out.add(new RelocationSection(s, null, relr));
                continue;
            }
            boolean rela = s.sh_type() == SHT_RELA;
            if (!rela && s.sh_type() != SHT_REL) {
                continue;
            }
            int entsize = rela ? RELA_SIZE : REL_SIZE;
            if (s.sh_entsize() != entsize) {
                throw elf.error(elf.describe(s) + ": sh_entsize is " + s.sh_entsize() + ", expected " + entsize);
            }
            int base = elf.checkRange(s.sh_offset(), s.sh_size(), elf.describe(s));
            int count = (int) (s.sh_size() / entsize);
            budget -= count;
            if (budget < 0) {
                throw elf.error("the relocation sections overlap: together they hold more entries than the file has room for");
            }
            List<Symbol> syms = List.of();
            if (s.sh_link() != 0) {
                int link = s.sh_link();
                if (link < 0 || link >= elf.sections().size()) {
                    throw elf.error(elf.describe(s) + ": sh_link " + Integer.toUnsignedString(link)
                            + " is outside the section header table");
                }
                var symtab = elf.sections().get(link);
                if (symtab.sh_type() != SHT_SYMTAB && symtab.sh_type() != SHT_DYNSYM) {
                    throw elf.error(elf.describe(s) + ": sh_link names " + elf.describe(symtab) + ", which is "
                            + symtab.typeName() + ", not a symbol table");
                }
                syms = tables.computeIfAbsent(link, k -> elf.symbolsOf(symtab));
            }
            Section target = null;
            int info = s.sh_info();
            if (info != 0) {
                if (info < 0 || info >= elf.sections().size()) {
                    throw elf.error(elf.describe(s) + ": sh_info " + Integer.toUnsignedString(info)
                            + " (the section it relocates) is outside the section header table");
                }
                target = elf.sections().get(info);
            }
            var relocs = new ArrayList<Relocation>(count);
            for (int i = 0; i < count; i++) {
                int o = base + i * entsize;
                long rInfo = elf.data().getLong(o + 8);
                int symIndex = (int) (rInfo >>> 32);
                int type = (int) rInfo;
                Symbol sym = null;
                if (symIndex != 0) {
                    if (symIndex < 0 || symIndex >= syms.size()) {
                        throw elf.error(elf.describe(s) + ": relocation " + i + " refers to symbol "
                                + Integer.toUnsignedString(symIndex) + ", but its symbol table has " + syms.size()
                                + " entries");
                    }
                    sym = syms.get(symIndex);
                }
                relocs.add(new Relocation(elf.data().getLong(o), type, sym, rela ? elf.data().getLong(o + 16) : 0, symIndex));
            }
            out.add(new RelocationSection(s, target, relocs));
        }
        return Collections.unmodifiableList(out);
    }

    /**
     * Expands a SHT_RELR section (packed relative relocations) into R_X86_64_RELATIVE entries with their addend in
     * place: an even entry is an address, an odd one a bitmap of the 63 words that follow the previous ones.
     */
    private static List<Relocation> readRelr(ElfFile elf, Section s) {
        if (s.sh_entsize() != 8) {
            throw elf.error(elf.describe(s) + ": sh_entsize is " + s.sh_entsize() + ", expected 8");
        }
        int base = elf.checkRange(s.sh_offset(), s.sh_size(), elf.describe(s));
        int count = (int) (s.sh_size() / 8);
        var out = new ArrayList<Relocation>();
        long where = 0;
        for (int i = 0; i < count; i++) {
            long e = elf.data().getLong(base + i * 8);
            if ((e & 1) == 0) {
                out.add(new Relocation(e, R_X86_64_RELATIVE, null, 0, 0));
                where = e + 8;
            } else {
                if (i == 0) {
                    throw elf.error(elf.describe(s) + ": the first entry is a bitmap, which must follow an address");
                }
                if (out.size() > elf.size() / 8 + 64) {
                    throw elf.error(elf.describe(s) + ": expands to more relocations than the file has words");
                }
                for (int bit = 0; bit < 63; bit++) {
                    if ((e >>> (bit + 1) & 1) != 0) {
                        out.add(new Relocation(where + bit * 8L, R_X86_64_RELATIVE, null, 0, 0));
                    }
                }
                where += 63 * 8;
            }
        }
        return out;
    }

}
