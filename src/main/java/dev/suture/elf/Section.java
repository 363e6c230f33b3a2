package dev.suture.elf;

import static dev.suture.elf.ElfConstants.*;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/** One section header, fields as in the gABI, with the name already looked up in the section name table. */
public record Section(int index, String name, long sh_name, int sh_type, long sh_flags, long sh_addr, long sh_offset,
                      long sh_size, int sh_link, int sh_info, long sh_addralign, long sh_entsize) {

    public boolean isNobits() {
        return sh_type == ElfConstants.SHT_NOBITS;
    }

    public boolean isAlloc() {
        return (sh_flags & ElfConstants.SHF_ALLOC) != 0;
    }

    public boolean isExecutable() {
        return (sh_flags & ElfConstants.SHF_EXECINSTR) != 0;
    }

    public boolean isWritable() {
        return (sh_flags & ElfConstants.SHF_WRITE) != 0;
    }

    public boolean isTls() {
        return (sh_flags & ElfConstants.SHF_TLS) != 0;
    }

    /** The type as readelf -S names it (PROGBITS, NOBITS, RELA, GNU_HASH, VERSYM, ...). */
    public String typeName() {
        return typeName(sh_type);
    }

    static String typeName(int type) {
        return switch (type) {
            case ElfConstants.SHT_NULL -> "NULL";
            case ElfConstants.SHT_PROGBITS -> "PROGBITS";
            case ElfConstants.SHT_SYMTAB -> "SYMTAB";
            case ElfConstants.SHT_STRTAB -> "STRTAB";
            case ElfConstants.SHT_RELA -> "RELA";
            case ElfConstants.SHT_HASH -> "HASH";
            case ElfConstants.SHT_DYNAMIC -> "DYNAMIC";
            case ElfConstants.SHT_NOTE -> "NOTE";
            case ElfConstants.SHT_NOBITS -> "NOBITS";
            case ElfConstants.SHT_REL -> "REL";
            case ElfConstants.SHT_SHLIB -> "SHLIB";
            case ElfConstants.SHT_DYNSYM -> "DYNSYM";
            case ElfConstants.SHT_INIT_ARRAY -> "INIT_ARRAY";
            case ElfConstants.SHT_FINI_ARRAY -> "FINI_ARRAY";
            case ElfConstants.SHT_PREINIT_ARRAY -> "PREINIT_ARRAY";
            case ElfConstants.SHT_GROUP -> "GROUP";
            case ElfConstants.SHT_SYMTAB_SHNDX -> "SYMTAB SECTION INDICES";
            case ElfConstants.SHT_RELR -> "RELR";
            case ElfConstants.SHT_GNU_ATTRIBUTES -> "GNU_ATTRIBUTES";
            case ElfConstants.SHT_GNU_HASH -> "GNU_HASH";
            case ElfConstants.SHT_GNU_LIBLIST -> "GNU_LIBLIST";
            case ElfConstants.SHT_GNU_verdef -> "VERDEF";
            case ElfConstants.SHT_GNU_verneed -> "VERNEED";
            case ElfConstants.SHT_GNU_versym -> "VERSYM";
            case ElfConstants.SHT_X86_64_UNWIND -> "X86_64_UNWIND";
            default -> String.format("%08x: <unknown>", type);
        };
    }

    /** The flags as the letters readelf -S prints (W A X M S I L O G T C x o E ...). */
    public String flagString() {
        var sb = new StringBuilder();
        long f = sh_flags;
        if ((f & ElfConstants.SHF_WRITE) != 0) sb.append('W');
        if ((f & ElfConstants.SHF_ALLOC) != 0) sb.append('A');
        if ((f & ElfConstants.SHF_EXECINSTR) != 0) sb.append('X');
        if ((f & ElfConstants.SHF_MERGE) != 0) sb.append('M');
        if ((f & ElfConstants.SHF_STRINGS) != 0) sb.append('S');
        if ((f & ElfConstants.SHF_INFO_LINK) != 0) sb.append('I');
        if ((f & ElfConstants.SHF_LINK_ORDER) != 0) sb.append('L');
        if ((f & ElfConstants.SHF_OS_NONCONFORMING) != 0) sb.append('O');
        if ((f & ElfConstants.SHF_GROUP) != 0) sb.append('G');
        if ((f & ElfConstants.SHF_TLS) != 0) sb.append('T');
        if ((f & ElfConstants.SHF_COMPRESSED) != 0) sb.append('C');
        if ((f & ElfConstants.SHF_GNU_RETAIN) != 0) sb.append('R');
        if ((f & ElfConstants.SHF_EXCLUDE) != 0) sb.append('E');
        long known = 0x1 | 0x2 | 0x4 | 0x10 | 0x20 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800 | 0x200000
                | 0x80000000L;
        long rest = f & ~known;
        if ((rest & 0x0ff00000L) != 0) sb.append('o');
        if ((rest & 0xf0000000L) != 0) sb.append('p');
        if ((rest & ~0xfff00000L) != 0) sb.append('x');
        return sb.toString();
    }

    /** Decodes the section header table, with the names from its string table. */
    static List<Section> readAll(ElfFile elf) {
        int n = elf.header().e_shnum();
        if (n == 0) {
            return List.of();
        }
        int base = elf.checkRange(elf.header().e_shoff(), (long) n * SHDR_SIZE, "the section header table (" + n + " entries)");
        int strndx = elf.header().e_shstrndx();
        StringTable names = null;
        if (strndx != SHN_UNDEF) {
            if (strndx < 0 || strndx >= n) {
                throw elf.error("e_shstrndx " + Integer.toUnsignedString(strndx) + " is outside the section header table ("
                        + n + " sections)");
            }
            int o = base + strndx * SHDR_SIZE;
            long off = elf.data().getLong(o + 24);
            long sz = elf.data().getLong(o + 32);
            if (elf.data().getInt(o + 4) == SHT_NOBITS) {
                sz = 0;
            }
            int start = elf.checkRange(off, sz, "the section name table (section " + strndx + ")");
            names = new StringTable(elf.data(), start, (int) sz, elf.name(), "the section name table");
        }
        var out = new ArrayList<Section>(n);
        for (int i = 0; i < n; i++) {
            int o = base + i * SHDR_SIZE;
            long shName = elf.u32(o);
            String secName = names == null || (i == 0 && shName == 0) ? "" : names.at(shName, "section " + i);
            out.add(new Section(i, secName, shName, elf.data().getInt(o + 4), elf.data().getLong(o + 8), elf.data().getLong(o + 16),
                    elf.data().getLong(o + 24), elf.data().getLong(o + 32), elf.data().getInt(o + 40), elf.data().getInt(o + 44),
                    elf.data().getLong(o + 48), elf.data().getLong(o + 56)));
        }
        return Collections.unmodifiableList(out);
    }

}
