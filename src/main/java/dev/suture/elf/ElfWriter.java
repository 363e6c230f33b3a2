package dev.suture.elf;

import static dev.suture.elf.ElfConstants.*;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Builds an x86-64 ELF64 relocatable object (ET_REL) that readelf, objdump and ld accept: sections with their
 * bytes, a symbol table (locals first, as the gABI requires, with sh_info naming the first non-local), the string
 * tables, and one {@code .rela<name>} section per section that has relocations.
 *
 * <p>Sections and symbols are referred to by the handles this class returns; their final indices are assigned
 * when the file is written.
 */
public final class ElfWriter {

    /** A section added to the writer. */
    public static final class SectionRef {
        private final String name;
        private final int type;
        private final long flags;
        private final long align;
        private final long entsize;
        private final byte[] bytes; // null for SHT_NOBITS
        private final long size;
        private SectionRef link;
        private int info;
        private final List<Rela> relocations = new ArrayList<>();
        private SymbolRef sectionSymbol;
        private int index;
        private ElfWriter owner;

        private SectionRef(String name, int type, long flags, long align, long entsize, byte[] bytes, long size) {
            this.name = name;
            this.type = type;
            this.flags = flags;
            this.align = align;
            this.entsize = entsize;
            this.bytes = bytes;
            this.size = size;
        }

        public String name() {
            return name;
        }

        public long size() {
            return size;
        }
    }

    /** A symbol added to the writer. */
    public static final class SymbolRef {
        private final String name;
        private final long value;
        private final long size;
        private final int type;
        private final int bind;
        private final int visibility;
        private final SectionRef section; // null: shndx holds the special index
        private final int shndx;
        private int index;
        private ElfWriter owner;

        private SymbolRef(String name, long value, long size, int type, int bind, int visibility, SectionRef section,
                          int shndx) {
            this.name = name;
            this.value = value;
            this.size = size;
            this.type = type;
            this.bind = bind;
            this.visibility = visibility;
            this.section = section;
            this.shndx = shndx;
        }

        public String name() {
            return name;
        }
    }

    private record Rela(long offset, int type, SymbolRef symbol, long addend) {}

    private final List<SectionRef> sections = new ArrayList<>();
    private final List<SymbolRef> symbols = new ArrayList<>();
    private int osabi = ELFOSABI_NONE;

    /** Sets EI_OSABI (e.g. {@link ElfConstants#ELFOSABI_GNU} when the object uses IFUNC or unique symbols). */
    public ElfWriter osabi(int value) {
        this.osabi = value;
        return this;
    }

    /** Adds a section with contents (PROGBITS, NOTE, INIT_ARRAY, ...). */
    public SectionRef addSection(String name, int type, long flags, long align, byte[] bytes) {
        return addSection(name, type, flags, align, 0, bytes);
    }

    /** Adds a section with contents and an entry size (for SHF_MERGE sections). */
    public SectionRef addSection(String name, int type, long flags, long align, long entsize, byte[] bytes) {
        if (type == SHT_NOBITS || type == SHT_SYMTAB || type == SHT_RELA || type == SHT_REL || type == SHT_NULL) {
            throw new IllegalArgumentException("section " + name + ": type " + Section.typeName(type)
                    + " is made by the writer itself (use addNobits, addSymbol, addRelocation)");
        }
        var s = new SectionRef(name, type, flags, checkAlign(name, align), entsize, bytes.clone(), bytes.length);
        s.owner = this;
        sections.add(s);
        return s;
    }

    /** Adds a SHT_NOBITS section (.bss, .tbss) of {@code size} zero bytes. */
    public SectionRef addNobits(String name, long flags, long align, long size) {
        var s = new SectionRef(name, SHT_NOBITS, flags, checkAlign(name, align), 0, null, size);
        s.owner = this;
        sections.add(s);
        return s;
    }

    /** Sets a section's sh_link to another section of this writer (e.g. SHF_LINK_ORDER sections). */
    public void setLink(SectionRef section, SectionRef link) {
        owned(section).link = owned(link);
    }

    /** Sets a section's raw sh_info. */
    public void setInfo(SectionRef section, int info) {
        owned(section).info = info;
    }

    /** Adds a symbol defined in {@code section} (or undefined when {@code section} is null). */
    public SymbolRef addSymbol(String name, long value, long size, int type, int bind, int visibility,
                               SectionRef section) {
        var s = new SymbolRef(name, value, size, type, bind, visibility, section == null ? null : owned(section),
                SHN_UNDEF);
        s.owner = this;
        symbols.add(s);
        return s;
    }

    /** Adds an undefined symbol (a reference resolved by the linker or loader). */
    public SymbolRef addUndefined(String name, int type, int bind) {
        return addSymbol(name, 0, 0, type, bind, STV_DEFAULT, null);
    }

    /** Adds a symbol with a special section index: SHN_ABS, SHN_COMMON (value = alignment) or SHN_UNDEF. */
    public SymbolRef addSpecialSymbol(String name, long value, long size, int type, int bind, int visibility,
                                      int shndx) {
        if (shndx != SHN_ABS && shndx != SHN_COMMON && shndx != SHN_UNDEF) {
            throw new IllegalArgumentException("symbol " + name + ": special section index " + shndx);
        }
        var s = new SymbolRef(name, value, size, type, bind, visibility, null, shndx);
        s.owner = this;
        symbols.add(s);
        return s;
    }

    /** The STT_SECTION symbol of {@code section}, created on first use (what relocations against it refer to). */
    public SymbolRef sectionSymbol(SectionRef section) {
        owned(section);
        if (section.sectionSymbol == null) {
            section.sectionSymbol = new SymbolRef("", 0, 0, STT_SECTION, STB_LOCAL, STV_DEFAULT, section, 0);
            section.sectionSymbol.owner = this;
            symbols.add(section.sectionSymbol);
        }
        return section.sectionSymbol;
    }

    /** Adds a RELA entry to {@code target} (in the {@code .rela<target>} section); symbol null means index 0. */
    public void addRelocation(SectionRef target, long offset, int type, SymbolRef symbol, long addend) {
        owned(target);
        if (symbol != null && symbol.owner != this) {
            throw new IllegalArgumentException("relocation in " + target.name + ": symbol is not of this writer");
        }
        target.relocations.add(new Rela(offset, type, symbol, addend));
    }

    /** Writes the object to {@code path}. */
    public void write(Path path) {
        try {
            Files.write(path, toBytes());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The complete object file. */
    public byte[] toBytes() {
        // Final section order: null, the added sections, their .rela sections, .symtab, .strtab, .shstrtab.
        int next = 1;
        for (var s : sections) {
            s.index = next++;
        }
        var relaOf = new LinkedHashMap<SectionRef, Integer>();
        for (var s : sections) {
            if (!s.relocations.isEmpty()) {
                relaOf.put(s, next++);
            }
        }
        int symtabIndex = next++;
        int strtabIndex = next++;
        int shstrtabIndex = next++;
        int shnum = next;

        // Symbols: null, locals, then globals and weaks.
        var ordered = new ArrayList<SymbolRef>();
        for (var s : symbols) {
            if (s.bind == STB_LOCAL) {
                ordered.add(s);
            }
        }
        int firstGlobal = ordered.size() + 1;
        for (var s : symbols) {
            if (s.bind != STB_LOCAL) {
                ordered.add(s);
            }
        }
        var strtab = new StringTableBuilder();
        var symtab = ByteBuffer.allocate((ordered.size() + 1) * SYM_SIZE).order(ByteOrder.LITTLE_ENDIAN);
        symtab.position(SYM_SIZE);
        for (int i = 0; i < ordered.size(); i++) {
            var s = ordered.get(i);
            s.index = i + 1;
            int shndx = s.section != null ? s.section.index : s.shndx;
            symtab.putInt(s.type == STT_SECTION ? 0 : strtab.add(s.name));
            symtab.put((byte) ((s.bind << 4) | (s.type & 0xf)));
            symtab.put((byte) (s.visibility & 3));
            symtab.putShort((short) shndx);
            symtab.putLong(s.value);
            symtab.putLong(s.size);
        }

        var shstrtab = new StringTableBuilder();
        var headers = new ArrayList<long[]>(); // name, type, flags, addr, offset, size, link, info, align, entsize
        var blobs = new ArrayList<byte[]>();
        headers.add(new long[10]);
        blobs.add(null);
        for (var s : sections) {
            headers.add(new long[] {shstrtab.add(s.name), s.type, s.flags, 0, 0, s.size,
                s.link == null ? 0 : s.link.index, Integer.toUnsignedLong(s.info), s.align, s.entsize});
            blobs.add(s.bytes);
        }
        for (var e : relaOf.entrySet()) {
            var target = e.getKey();
            var b = ByteBuffer.allocate(target.relocations.size() * RELA_SIZE).order(ByteOrder.LITTLE_ENDIAN);
            for (var r : target.relocations) {
                long sym = r.symbol == null ? 0 : r.symbol.index;
                b.putLong(r.offset).putLong(sym << 32 | Integer.toUnsignedLong(r.type)).putLong(r.addend);
            }
            long flags = SHF_INFO_LINK | (target.flags & SHF_GROUP);
            headers.add(new long[] {shstrtab.add(".rela" + target.name), SHT_RELA, flags, 0, 0, b.capacity(),
                symtabIndex, target.index, 8, RELA_SIZE});
            blobs.add(b.array());
        }
        headers.add(new long[] {shstrtab.add(".symtab"), SHT_SYMTAB, 0, 0, 0, symtab.capacity(), strtabIndex,
            firstGlobal, 8, SYM_SIZE});
        blobs.add(symtab.array());
        byte[] strBytes = strtab.bytes();
        headers.add(new long[] {shstrtab.add(".strtab"), SHT_STRTAB, 0, 0, 0, strBytes.length, 0, 0, 1, 0});
        blobs.add(strBytes);
        long shstrName = shstrtab.add(".shstrtab");
        byte[] shstrBytes = shstrtab.bytes();
        headers.add(new long[] {shstrName, SHT_STRTAB, 0, 0, 0, shstrBytes.length, 0, 0, 1, 0});
        blobs.add(shstrBytes);

        // Layout: ELF header, section contents (each at its alignment), section header table.
        long offset = EHDR_SIZE;
        for (int i = 1; i < shnum; i++) {
            long[] h = headers.get(i);
            long align = Math.max(1, h[8]);
            offset = (offset + align - 1) / align * align;
            h[4] = offset;
            if (h[1] != SHT_NOBITS) {
                offset += h[5];
            }
        }
        long shoff = (offset + 7) & ~7L;
        long total = shoff + (long) shnum * SHDR_SIZE;
        if (total > Integer.MAX_VALUE - 8) {
            throw new IllegalStateException("object would be larger than 2 GiB");
        }
        var out = ByteBuffer.allocate((int) total).order(ByteOrder.LITTLE_ENDIAN);
        out.put(new byte[] {0x7f, 'E', 'L', 'F', ELFCLASS64, ELFDATA2LSB, EV_CURRENT, (byte) osabi});
        out.position(16);
        out.putShort((short) ET_REL).putShort((short) EM_X86_64).putInt(EV_CURRENT);
        out.putLong(0).putLong(0).putLong(shoff).putInt(0);
        out.putShort((short) EHDR_SIZE).putShort((short) 0).putShort((short) 0);
        out.putShort((short) SHDR_SIZE).putShort((short) shnum).putShort((short) shstrtabIndex);
        for (int i = 1; i < shnum; i++) {
            byte[] b = blobs.get(i);
            if (b != null && headers.get(i)[1] != SHT_NOBITS) {
                out.put((int) headers.get(i)[4], b);
            }
        }
        for (int i = 0; i < shnum; i++) {
            long[] h = headers.get(i);
            out.position((int) (shoff + (long) i * SHDR_SIZE));
            out.putInt((int) h[0]).putInt((int) h[1]).putLong(h[2]).putLong(h[3]).putLong(h[4]).putLong(h[5])
                    .putInt((int) h[6]).putInt((int) h[7]).putLong(h[8]).putLong(h[9]);
        }
        return out.array();
    }

    private SectionRef owned(SectionRef s) {
        if (s.owner != this) {
            throw new IllegalArgumentException("section " + s.name + " does not belong to this writer");
        }
        return s;
    }

    private static long checkAlign(String name, long align) {
        if (align < 0 || (align & (align - 1)) != 0) {
            throw new IllegalArgumentException("section " + name + ": alignment " + align + " is not a power of two");
        }
        return align;
    }

    /** A string table with the leading NUL and shared entries for repeated names. */
    private static final class StringTableBuilder {
        private final Map<String, Integer> offsets = new HashMap<>();
        private final java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();

        StringTableBuilder() {
            bytes.write(0);
            offsets.put("", 0);
        }

        int add(String s) {
            return offsets.computeIfAbsent(s, k -> {
                int off = bytes.size();
                bytes.writeBytes(k.getBytes(StandardCharsets.UTF_8));
                bytes.write(0);
                return off;
            });
        }

        byte[] bytes() {
            return bytes.toByteArray();
        }
    }
}
