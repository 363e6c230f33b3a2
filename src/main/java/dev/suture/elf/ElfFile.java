package dev.suture.elf;

import static dev.suture.elf.ElfConstants.*;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * An ELF64 little-endian file (ET_REL, ET_EXEC, ET_DYN), mapped read-only or held in memory, decoded lazily: each
 * table is decoded on first use and kept. Every offset, size and index read from the file is checked against the
 * file; a malformed file raises {@link ElfFormatException} naming the file and the problem.
 */
public final class ElfFile implements AutoCloseable {
    private final String name;
    private final ByteBuffer data; // whole file, little-endian, read-only; offsets are absolute
    private final int size;
    private final ElfHeader header;

    private final Lazy<List<ProgramHeader>> programHeaders = new Lazy<>() {
        @Override
        List<ProgramHeader> compute() {
            return readProgramHeaders();
        }
    };
    private final Lazy<List<Section>> sections = new Lazy<>() {
        @Override
        List<Section> compute() {
            return readSections();
        }
    };
    private final Lazy<Map<String, Section>> sectionsByName = new Lazy<>() {
        @Override
        Map<String, Section> compute() {
            return indexSections();
        }
    };
    private final Lazy<List<Symbol>> symbols = new Lazy<>() {
        @Override
        List<Symbol> compute() {
            return readSymbolTable(SHT_SYMTAB);
        }
    };
    private final Lazy<List<Symbol>> dynamicSymbols = new Lazy<>() {
        @Override
        List<Symbol> compute() {
            return readSymbolTable(SHT_DYNSYM);
        }
    };
    private final Lazy<List<RelocationSection>> relocationSections = new Lazy<>() {
        @Override
        List<RelocationSection> compute() {
            return readRelocationSections();
        }
    };
    private final Lazy<List<DynamicEntry>> dynamic = new Lazy<>() {
        @Override
        List<DynamicEntry> compute() {
            return readDynamic();
        }
    };
    private final Lazy<List<Note>> notes = new Lazy<>() {
        @Override
        List<Note> compute() {
            return readNotes();
        }
    };
    private final Lazy<SymbolVersions> versions = new Lazy<>() {
        @Override
        SymbolVersions compute() {
            return SymbolVersions.read(ElfFile.this);
        }
    };

    private ElfFile(String name, ByteBuffer data) {
        this.name = name;
        this.data = data.order(ByteOrder.LITTLE_ENDIAN);
        this.size = data.capacity();
        this.header = readHeader();
    }

    /** Maps {@code path} read-only and checks its header; tables are decoded when first asked for. */
    public static ElfFile open(Path path) {
        String name = path.toString();
        try (var ch = FileChannel.open(path, StandardOpenOption.READ)) {
            long length = ch.size();
            if (length == 0 && !Files.isRegularFile(path)) {
                // /proc and other pseudo files report size 0: read them instead of mapping.
                return parse(name, Files.readAllBytes(path));
            }
            if (length > Integer.MAX_VALUE) {
                throw new ElfFormatException(name, "the file is larger than 2 GiB, which suture does not read");
            }
            if (length == 0) {
                throw new ElfFormatException(name, "the file is empty");
            }
            var mapped = ch.map(FileChannel.MapMode.READ_ONLY, 0, length);
            return new ElfFile(name, mapped);
        } catch (NoSuchFileException e) {
            throw ElfFormatException.unreadable(name, "no such file");
        } catch (java.nio.file.AccessDeniedException e) {
            throw ElfFormatException.unreadable(name, "permission denied");
        } catch (IOException e) {
            throw ElfFormatException.unreadable(name, Files.isDirectory(path) ? "it is a directory" : String.valueOf(e.getMessage()));
        }
    }

    /** Decodes an ELF image held in memory (e.g. read from /proc/PID/map_files); {@code name} is used in errors. */
    public static ElfFile parse(String name, byte[] bytes) {
        return new ElfFile(name, ByteBuffer.wrap(bytes.clone()).asReadOnlyBuffer());
    }

    /** Whether the file at {@code path} starts with the ELF magic (reads 4 bytes; false if unreadable). */
    public static boolean hasElfMagic(Path path) {
        try (var in = Files.newInputStream(path)) {
            byte[] m = in.readNBytes(4);
            return m.length == 4 && m[0] == 0x7f && m[1] == 'E' && m[2] == 'L' && m[3] == 'F';
        } catch (IOException e) {
            return false;
        }
    }

    public String name() {
        return name;
    }

    /** Size of the file in bytes. */
    public long size() {
        return size;
    }

    public ElfHeader header() {
        return header;
    }

    public List<ProgramHeader> programHeaders() {
        return programHeaders.get();
    }

    /** Every section header, index 0 (the null section) included, so that {@code sections().get(i).index() == i}. */
    public List<Section> sections() {
        return sections.get();
    }

    /** The first section with this name. */
    public Optional<Section> section(String sectionName) {
        return Optional.ofNullable(sectionsByName.get().get(sectionName));
    }

    /** The section with header index {@code index}; an index outside the table is a format error. */
    public Section section(int index) {
        var all = sections();
        if (index < 0 || index >= all.size()) {
            throw error("section index " + index + " is outside the section header table (" + all.size()
                    + " sections)");
        }
        return all.get(index);
    }

    /** The section's bytes as a little-endian read-only view; empty for SHT_NOBITS. */
    public ByteBuffer contents(Section s) {
        if (s.sh_type() == SHT_NOBITS || s.sh_type() == SHT_NULL) {
            return ByteBuffer.allocate(0).order(ByteOrder.LITTLE_ENDIAN).asReadOnlyBuffer()
                    .order(ByteOrder.LITTLE_ENDIAN);
        }
        int off = checkRange(s.sh_offset(), s.sh_size(), describe(s));
        return slice(off, (int) s.sh_size());
    }

    /** A copy of the section's bytes; empty for SHT_NOBITS. */
    public byte[] bytes(Section s) {
        var b = contents(s);
        byte[] out = new byte[b.remaining()];
        b.get(out);
        return out;
    }

    /** A copy of {@code length} bytes at file offset {@code offset}, bound-checked. */
    public byte[] bytesAt(long offset, long length) {
        int off = checkRange(offset, length, "bytes at file offset 0x" + Long.toHexString(offset));
        byte[] out = new byte[(int) length];
        data.get(off, out);
        return out;
    }

    /** The symbols of {@code .symtab} (index 0 included), or an empty list if the file has none. */
    public List<Symbol> symbols() {
        return symbols.get();
    }

    /** The symbols of {@code .dynsym} (index 0 included) with their versions, or an empty list. */
    public List<Symbol> dynamicSymbols() {
        return dynamicSymbols.get();
    }

    /** Every SHT_RELA and SHT_REL section, in section order, with symbols from the table each one's sh_link names. */
    public List<RelocationSection> relocationSections() {
        return relocationSections.get();
    }

    /** The entries of the dynamic section up to and including DT_NULL; empty for a file without one. */
    public List<DynamicEntry> dynamic() {
        return dynamic.get();
    }

    /** The value of the first dynamic entry with this tag. */
    public Optional<Long> dynamicValue(long tag) {
        for (var d : dynamic()) {
            if (d.d_tag() == tag) {
                return Optional.of(d.d_val());
            }
        }
        return Optional.empty();
    }

    /** The program interpreter (PT_INTERP), e.g. /lib64/ld-linux-x86-64.so.2. */
    public Optional<String> interpreter() {
        for (var p : programHeaders()) {
            if (p.p_type() == PT_INTERP) {
                int off = checkRange(p.p_offset(), p.p_filesz(), "the PT_INTERP segment");
                var t = new StringTable(data, off, (int) p.p_filesz(), name, "the PT_INTERP segment");
                return Optional.of(t.at(0, "the program interpreter"));
            }
        }
        return Optional.empty();
    }

    /**
     * Whether this is a position-independent executable: ET_DYN with DF_1_PIE in DT_FLAGS_1 (current linkers mark
     * every PIE so), or, for older links, ET_DYN with a program interpreter and no DT_SONAME. The interpreter alone
     * is not enough: libc.so.6 has one so that it can be run, and is still a library.
     */
    public boolean isPie() {
        if (header().e_type() != ET_DYN) {
            return false;
        }
        return (dynamicValue(DT_FLAGS_1).orElse(0L) & DF_1_PIE) != 0
                || (interpreter().isPresent() && soname().isEmpty());
    }

    /** The DT_NEEDED libraries, in order. */
    public List<String> needed() {
        var out = new ArrayList<String>();
        for (var d : dynamic()) {
            if (d.d_tag() == DT_NEEDED) {
                out.add(dynamicString(d.d_val(), "DT_NEEDED"));
            }
        }
        return out;
    }

    /** DT_SONAME, for a shared library that has one. */
    public Optional<String> soname() {
        return dynamicValue(DT_SONAME).map(v -> dynamicString(v, "DT_SONAME"));
    }

    /** DT_RUNPATH or DT_RPATH. */
    public Optional<String> runpath() {
        return dynamicValue(DT_RUNPATH).or(() -> dynamicValue(DT_RPATH)).map(v -> dynamicString(v, "DT_RUNPATH"));
    }

    /** The notes of every SHT_NOTE section, or of every PT_NOTE segment when the file has no section headers. */
    public List<Note> notes() {
        return notes.get();
    }

    /** The GNU build-id in lowercase hex, as {@code readelf -n} prints it. */
    public Optional<String> buildId() {
        for (var n : notes()) {
            if (n.isBuildId()) {
                return Optional.of(n.descHex());
            }
        }
        return Optional.empty();
    }

    /** The properties of the GNU property note ({@code .note.gnu.property}), e.g. the x86 IBT/SHSTK feature bits. */
    public List<Note.GnuProperty> gnuProperties() {
        var out = new ArrayList<Note.GnuProperty>();
        for (var n : notes()) {
            out.addAll(n.gnuProperties());
        }
        return out;
    }

    /** The PT_TLS segment: the thread-local storage template. */
    public Optional<ProgramHeader> tls() {
        return segment(PT_TLS);
    }

    /** The first program header of this type. */
    public Optional<ProgramHeader> segment(int pType) {
        for (var p : programHeaders()) {
            if (p.p_type() == pType) {
                return Optional.of(p);
            }
        }
        return Optional.empty();
    }

    /** {@code .gnu_debuglink}: the separate debug file's name and CRC. */
    public Optional<DebugLink> debugLink() {
        var s = section(".gnu_debuglink");
        if (s.isEmpty() || s.get().isNobits()) {
            return Optional.empty();
        }
        var sec = s.get();
        int off = checkRange(sec.sh_offset(), sec.sh_size(), describe(sec));
        var t = new StringTable(data, off, (int) sec.sh_size(), name, describe(sec));
        String file = t.at(0, ".gnu_debuglink");
        long crcOff = (file.getBytes(StandardCharsets.UTF_8).length + 1 + 3) & ~3L;
        if (crcOff + 4 > sec.sh_size()) {
            throw error(describe(sec) + " is too short to hold the CRC after the file name");
        }
        return Optional.of(new DebugLink(file, data.getInt(off + (int) crcOff)));
    }

    /** The symbol versions this file defines (.gnu.version_d), in table order; empty if none. */
    public List<VersionDefinition> versionDefinitions() {
        return versions().definitions;
    }

    /** The symbol versions this file needs from its libraries (.gnu.version_r), in table order; empty if none. */
    public List<VersionRequirement> versionRequirements() {
        return versions().requirements;
    }

    /** The {@code .eh_frame} section (call frame information for unwinding), if present. */
    public Optional<Section> ehFrame() {
        return section(".eh_frame");
    }

    /** The {@code .eh_frame_hdr} section (binary search table over .eh_frame), if present. */
    public Optional<Section> ehFrameHdr() {
        return section(".eh_frame_hdr");
    }

    /**
     * The bytes at a link-time virtual address, from the PT_LOAD segment that holds all of them (zeros past the
     * segment's file size); empty if no segment holds the whole range.
     */
    public Optional<byte[]> readAt(long vaddr, int length) {
        if (length < 0) {
            return Optional.empty();
        }
        for (var p : programHeaders()) {
            if (p.p_type() != PT_LOAD || !p.containsAddress(vaddr)) {
                continue;
            }
            long rel = vaddr - p.p_vaddr();
            if (Long.compareUnsigned(rel + length, p.p_memsz()) > 0 || rel + length < rel) {
                continue;
            }
            byte[] out = new byte[length];
            long inFile = Math.max(0, Math.min(length, p.p_filesz() - rel));
            if (inFile > 0) {
                int off = checkRange(p.p_offset() + rel, inFile, "segment " + p.index() + " (" + p.typeName() + ")");
                data.get(off, out, 0, (int) inFile);
            }
            return Optional.of(out);
        }
        return Optional.empty();
    }

    /** The file offset of a link-time virtual address, through the PT_LOAD segment whose file image holds it. */
    public Optional<Long> fileOffsetOf(long vaddr) {
        for (var p : programHeaders()) {
            if (p.p_type() == PT_LOAD && Long.compareUnsigned(vaddr, p.p_vaddr()) >= 0
                    && Long.compareUnsigned(vaddr - p.p_vaddr(), p.p_filesz()) < 0) {
                return Optional.of(p.p_offset() + (vaddr - p.p_vaddr()));
            }
        }
        return Optional.empty();
    }

    /** The section that a symbol is defined in, if it is defined in a real section. */
    public Optional<Section> sectionOf(Symbol s) {
        if (!s.inSection() || s.st_shndx() >= sections().size()) {
            return Optional.empty();
        }
        return Optional.of(sections().get(s.st_shndx()));
    }

    @Override
    public void close() {
        // A mapped buffer is released by the garbage collector; nothing to do eagerly (and nothing unsafe).
    }

    @Override
    public String toString() {
        return name;
    }

    // ---- decoding ----

    ElfFormatException error(String problem) {
        return new ElfFormatException(name, problem);
    }

    /** Checks that [offset, offset+length) lies in the file and returns offset as an int. */
    int checkRange(long offset, long length, String what) {
        if (offset < 0 || length < 0 || offset > size || length > size - offset) {
            throw error(what + " at file offset 0x" + Long.toHexString(offset) + " with size 0x"
                    + Long.toHexString(length) + " extends past the end of the file (size 0x"
                    + Integer.toHexString(size) + "); the file is truncated or corrupt");
        }
        return (int) offset;
    }

    ByteBuffer slice(int offset, int length) {
        return data.slice(offset, length).order(ByteOrder.LITTLE_ENDIAN);
    }

    ByteBuffer data() {
        return data;
    }

    String describe(Section s) {
        return "section " + s.index() + (s.name().isEmpty() ? "" : " (" + s.name() + ")");
    }

    private ElfHeader readHeader() {
        if (size < 16 || data.get(0) != 0x7f || data.get(1) != 'E' || data.get(2) != 'L' || data.get(3) != 'F') {
            throw error("it does not start with the ELF magic bytes (\\x7fELF)");
        }
        int cls = data.get(4) & 0xff;
        int enc = data.get(5) & 0xff;
        if (cls != ELFCLASS64) {
            throw error("EI_CLASS is " + cls + "; only 64-bit ELF (ELFCLASS64) is supported");
        }
        if (enc != ELFDATA2LSB) {
            throw error("EI_DATA is " + enc + "; only little-endian ELF (ELFDATA2LSB) is supported");
        }
        if (size < EHDR_SIZE) {
            throw error("the file is " + size + " bytes, shorter than the 64-byte ELF header");
        }
        int eType = u16(16);
        int machine = u16(18);
        long version = u32(20);
        long entry = data.getLong(24);
        long phoff = data.getLong(32);
        long shoff = data.getLong(40);
        long flags = u32(48);
        int ehsize = u16(52);
        int phentsize = u16(54);
        int phnum = u16(56);
        int shentsize = u16(58);
        int shnum = u16(60);
        int shstrndx = u16(62);
        if (shoff != 0) {
            if (shentsize != SHDR_SIZE) {
                throw error("e_shentsize is " + shentsize + ", expected " + SHDR_SIZE);
            }
            if (shnum == 0 || shstrndx == SHN_XINDEX || phnum == 0xffff) {
                // Extended numbering: the real counts live in section header 0.
                int s0 = checkRange(shoff, SHDR_SIZE, "section header 0");
                long realShnum = data.getLong(s0 + 32);
                if (shnum == 0) {
                    if (realShnum > size / SHDR_SIZE) {
                        throw error("section header 0 claims " + realShnum + " sections, more than the file can hold");
                    }
                    shnum = (int) realShnum;
                }
                if (shstrndx == SHN_XINDEX) {
                    shstrndx = data.getInt(s0 + 40);
                }
                if (phnum == 0xffff) {
                    long realPhnum = u32(s0 + 44);
                    if (realPhnum > size / PHDR_SIZE) {
                        throw error("section header 0 claims " + realPhnum + " program headers, more than the file can hold");
                    }
                    phnum = (int) realPhnum;
                }
            }
        } else {
            shnum = 0;
        }
        if (phnum > 0 && phentsize != PHDR_SIZE) {
            throw error("e_phentsize is " + phentsize + ", expected " + PHDR_SIZE);
        }
        return new ElfHeader(cls, enc, data.get(7) & 0xff, data.get(8) & 0xff, eType, machine, version, entry, phoff,
                shoff, flags, ehsize, phentsize, phnum, shentsize, shnum, shstrndx);
    }

    private int u16(int off) {
        return Short.toUnsignedInt(data.getShort(off));
    }

    private long u32(int off) {
        return Integer.toUnsignedLong(data.getInt(off));
    }

    private List<ProgramHeader> readProgramHeaders() {
        int n = header.e_phnum();
        if (n == 0) {
            return List.of();
        }
        int base = checkRange(header.e_phoff(), (long) n * PHDR_SIZE, "the program header table (" + n + " entries)");
        var out = new ArrayList<ProgramHeader>(n);
        for (int i = 0; i < n; i++) {
            int o = base + i * PHDR_SIZE;
            out.add(new ProgramHeader(i, data.getInt(o), data.getInt(o + 4), data.getLong(o + 8), data.getLong(o + 16),
                    data.getLong(o + 24), data.getLong(o + 32), data.getLong(o + 40), data.getLong(o + 48)));
        }
        return Collections.unmodifiableList(out);
    }

    private List<Section> readSections() {
        int n = header.e_shnum();
        if (n == 0) {
            return List.of();
        }
        int base = checkRange(header.e_shoff(), (long) n * SHDR_SIZE, "the section header table (" + n + " entries)");
        int strndx = header.e_shstrndx();
        StringTable names = null;
        if (strndx != SHN_UNDEF) {
            if (strndx < 0 || strndx >= n) {
                throw error("e_shstrndx " + Integer.toUnsignedString(strndx) + " is outside the section header table ("
                        + n + " sections)");
            }
            int o = base + strndx * SHDR_SIZE;
            long off = data.getLong(o + 24);
            long sz = data.getLong(o + 32);
            if (data.getInt(o + 4) == SHT_NOBITS) {
                sz = 0;
            }
            int start = checkRange(off, sz, "the section name table (section " + strndx + ")");
            names = new StringTable(data, start, (int) sz, name, "the section name table");
        }
        var out = new ArrayList<Section>(n);
        for (int i = 0; i < n; i++) {
            int o = base + i * SHDR_SIZE;
            long shName = u32(o);
            String secName = names == null || (i == 0 && shName == 0) ? "" : names.at(shName, "section " + i);
            out.add(new Section(i, secName, shName, data.getInt(o + 4), data.getLong(o + 8), data.getLong(o + 16),
                    data.getLong(o + 24), data.getLong(o + 32), data.getInt(o + 40), data.getInt(o + 44),
                    data.getLong(o + 48), data.getLong(o + 56)));
        }
        return Collections.unmodifiableList(out);
    }

    private Map<String, Section> indexSections() {
        var m = new HashMap<String, Section>();
        for (var s : sections()) {
            if (s.index() != 0) {
                m.putIfAbsent(s.name(), s);
            }
        }
        return m;
    }

    /** The string table named by {@code user}'s sh_link, which must be an SHT_STRTAB inside the file. */
    StringTable linkedStrings(Section user) {
        int link = user.sh_link();
        if (link <= 0 || link >= sections().size()) {
            throw error(describe(user) + ": sh_link " + Integer.toUnsignedString(link)
                    + " does not name a string table (there are " + sections().size() + " sections)");
        }
        var strtab = sections().get(link);
        if (strtab.sh_type() != SHT_STRTAB) {
            throw error(describe(user) + ": sh_link names " + describe(strtab) + ", which is "
                    + strtab.typeName() + ", not a string table");
        }
        int off = checkRange(strtab.sh_offset(), strtab.sh_size(), describe(strtab));
        return new StringTable(data, off, (int) strtab.sh_size(), name, describe(strtab));
    }

    /** The first section of this type, if any. */
    Optional<Section> sectionOfType(int type) {
        for (var s : sections()) {
            if (s.sh_type() == type) {
                return Optional.of(s);
            }
        }
        return Optional.empty();
    }

    private List<Symbol> readSymbolTable(int type) {
        var table = sectionOfType(type);
        return table.isEmpty() ? List.of() : readSymbols(table.get());
    }

    /** Decodes a SHT_SYMTAB or SHT_DYNSYM section (with versions for the latter). */
    List<Symbol> readSymbols(Section table) {
        if (table.sh_entsize() != SYM_SIZE) {
            throw error(describe(table) + ": sh_entsize is " + table.sh_entsize() + ", expected " + SYM_SIZE);
        }
        int base = checkRange(table.sh_offset(), table.sh_size(), describe(table));
        int count = (int) (table.sh_size() / SYM_SIZE);
        var strings = linkedStrings(table);
        // Section indices >= SHN_LORESERVE are escaped through SHT_SYMTAB_SHNDX when st_shndx is SHN_XINDEX.
        ByteBuffer xindex = null;
        for (var s : sections()) {
            if (s.sh_type() == SHT_SYMTAB_SHNDX && s.sh_link() == table.index()) {
                xindex = contents(s);
            }
        }
        SymbolVersions vers = table.sh_type() == SHT_DYNSYM ? versions.get() : SymbolVersions.NONE;
        var out = new ArrayList<Symbol>(count);
        for (int i = 0; i < count; i++) {
            int o = base + i * SYM_SIZE;
            int info = data.get(o + 4) & 0xff;
            int other = data.get(o + 5) & 0xff;
            int shndx = u16(o + 6);
            if (shndx == SHN_XINDEX) {
                if (xindex == null || (long) i * 4 + 4 > xindex.capacity()) {
                    throw error(describe(table) + ": symbol " + i
                            + " has st_shndx SHN_XINDEX but no SHT_SYMTAB_SHNDX entry holds its section index");
                }
                shndx = xindex.getInt(i * 4);
            }
            String symName = i == 0 && u32(o) == 0 ? "" : strings.at(u32(o), describe(table) + " symbol " + i);
            SymbolVersions.Version version = null;
            boolean hidden = false;
            if (vers != SymbolVersions.NONE && i > 0) {
                if (!vers.covers(i)) {
                    throw error(describe(vers.versymSection()) + " has fewer entries than " + describe(table)
                            + " has symbols (" + count + ")");
                }
                int vs = vers.versym(i);
                hidden = (vs & VERSYM_HIDDEN) != 0;
                version = vers.lookup(vs & VERSYM_VERSION, shndx != SHN_UNDEF, symName);
            }
            out.add(new Symbol(i, symName, data.getLong(o + 8), data.getLong(o + 16), info & 0xf, info >>> 4,
                    other & 0x3, shndx, version == null ? null : version.name(), version != null && hidden,
                    version != null && version.needed()));
        }
        return Collections.unmodifiableList(out);
    }

    /** The symbols of a given symbol table section, sharing the decoded list of .symtab/.dynsym. */
    private List<Symbol> symbolsOf(Section table) {
        if (sectionOfType(table.sh_type()).map(Section::index).orElse(-1) == table.index()) {
            return table.sh_type() == SHT_DYNSYM ? dynamicSymbols() : symbols();
        }
        return readSymbols(table);
    }

    private List<RelocationSection> readRelocationSections() {
        var out = new ArrayList<RelocationSection>();
        Map<Integer, List<Symbol>> tables = new HashMap<>();
        // Overlapping tables could otherwise multiply the work: all sections together get what the file can hold.
        long budget = size / REL_SIZE + 1;
        for (var s : sections()) {
            if (s.sh_type() == SHT_RELR) {
                var relr = readRelr(s);
                budget -= relr.size() / 4;
                if (budget < 0) {
                    throw error("the relocation sections overlap: together they hold more entries than the file has room for");
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
                throw error(describe(s) + ": sh_entsize is " + s.sh_entsize() + ", expected " + entsize);
            }
            int base = checkRange(s.sh_offset(), s.sh_size(), describe(s));
            int count = (int) (s.sh_size() / entsize);
            budget -= count;
            if (budget < 0) {
                throw error("the relocation sections overlap: together they hold more entries than the file has room for");
            }
            List<Symbol> syms = List.of();
            if (s.sh_link() != 0) {
                int link = s.sh_link();
                if (link < 0 || link >= sections().size()) {
                    throw error(describe(s) + ": sh_link " + Integer.toUnsignedString(link)
                            + " is outside the section header table");
                }
                var symtab = sections().get(link);
                if (symtab.sh_type() != SHT_SYMTAB && symtab.sh_type() != SHT_DYNSYM) {
                    throw error(describe(s) + ": sh_link names " + describe(symtab) + ", which is "
                            + symtab.typeName() + ", not a symbol table");
                }
                syms = tables.computeIfAbsent(link, k -> symbolsOf(symtab));
            }
            Section target = null;
            int info = s.sh_info();
            if (info != 0) {
                if (info < 0 || info >= sections().size()) {
                    throw error(describe(s) + ": sh_info " + Integer.toUnsignedString(info)
                            + " (the section it relocates) is outside the section header table");
                }
                target = sections().get(info);
            }
            var relocs = new ArrayList<Relocation>(count);
            for (int i = 0; i < count; i++) {
                int o = base + i * entsize;
                long rInfo = data.getLong(o + 8);
                int symIndex = (int) (rInfo >>> 32);
                int type = (int) rInfo;
                Symbol sym = null;
                if (symIndex != 0) {
                    if (symIndex < 0 || symIndex >= syms.size()) {
                        throw error(describe(s) + ": relocation " + i + " refers to symbol "
                                + Integer.toUnsignedString(symIndex) + ", but its symbol table has " + syms.size()
                                + " entries");
                    }
                    sym = syms.get(symIndex);
                }
                relocs.add(new Relocation(data.getLong(o), type, sym, rela ? data.getLong(o + 16) : 0, symIndex));
            }
            out.add(new RelocationSection(s, target, relocs));
        }
        return Collections.unmodifiableList(out);
    }

    /**
     * Expands a SHT_RELR section (packed relative relocations) into R_X86_64_RELATIVE entries with their addend in
     * place: an even entry is an address, an odd one a bitmap of the 63 words that follow the previous ones.
     */
    private List<Relocation> readRelr(Section s) {
        if (s.sh_entsize() != 8) {
            throw error(describe(s) + ": sh_entsize is " + s.sh_entsize() + ", expected 8");
        }
        int base = checkRange(s.sh_offset(), s.sh_size(), describe(s));
        int count = (int) (s.sh_size() / 8);
        var out = new ArrayList<Relocation>();
        long where = 0;
        for (int i = 0; i < count; i++) {
            long e = data.getLong(base + i * 8);
            if ((e & 1) == 0) {
                out.add(new Relocation(e, R_X86_64_RELATIVE, null, 0, 0));
                where = e + 8;
            } else {
                if (i == 0) {
                    throw error(describe(s) + ": the first entry is a bitmap, which must follow an address");
                }
                if (out.size() > size / 8 + 64) {
                    throw error(describe(s) + ": expands to more relocations than the file has words");
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

    private List<DynamicEntry> readDynamic() {
        int off;
        long len;
        var sec = sectionOfType(SHT_DYNAMIC);
        if (sec.isPresent()) {
            off = checkRange(sec.get().sh_offset(), sec.get().sh_size(), describe(sec.get()));
            len = sec.get().sh_size();
        } else {
            var seg = segment(PT_DYNAMIC);
            if (seg.isEmpty()) {
                return List.of();
            }
            off = checkRange(seg.get().p_offset(), seg.get().p_filesz(), "the PT_DYNAMIC segment");
            len = seg.get().p_filesz();
        }
        var out = new ArrayList<DynamicEntry>();
        for (long p = 0; p + DYN_SIZE <= len; p += DYN_SIZE) {
            var e = new DynamicEntry(data.getLong(off + (int) p), data.getLong(off + (int) p + 8));
            out.add(e);
            if (e.d_tag() == DT_NULL) {
                break;
            }
        }
        return Collections.unmodifiableList(out);
    }

    private final Lazy<StringTable> dynamicStrings = new Lazy<>() {
        @Override
        StringTable compute() {
            return readDynamicStrings();
        }
    };

    private StringTable readDynamicStrings() {
        var sec = sectionOfType(SHT_DYNAMIC);
        if (sec.isPresent() && sec.get().sh_link() != 0) {
            return linkedStrings(sec.get()).unbudgeted();
        }
        // No section headers (e.g. an image read from memory): DT_STRTAB is an address, DT_STRSZ its size.
        long addr = dynamicValue(DT_STRTAB).orElseThrow(() -> error("the dynamic section has no DT_STRTAB"));
        long sz = dynamicValue(DT_STRSZ).orElseThrow(() -> error("the dynamic section has no DT_STRSZ"));
        long off = fileOffsetOf(addr).orElseThrow(() -> error("DT_STRTAB 0x" + Long.toHexString(addr)
                + " is not inside any loadable segment"));
        int start = checkRange(off, sz, "the dynamic string table");
        return new StringTable(data, start, (int) sz, name, "the dynamic string table").unbudgeted();
    }

    String dynamicString(long offset, String what) {
        return dynamicStrings.get().at(offset, what);
    }

    private List<Note> readNotes() {
        var out = new ArrayList<Note>();
        if (!sections().isEmpty()) {
            for (var s : sections()) {
                if (s.sh_type() == SHT_NOTE) {
                    int off = checkRange(s.sh_offset(), s.sh_size(), describe(s));
                    readNotes(off, (int) s.sh_size(), s.sh_addralign() == 8 ? 8 : 4, describe(s), out);
                }
            }
        } else {
            for (var p : programHeaders()) {
                if (p.p_type() == PT_NOTE) {
                    int off = checkRange(p.p_offset(), p.p_filesz(), "segment " + p.index() + " (NOTE)");
                    readNotes(off, (int) p.p_filesz(), p.p_align() == 8 ? 8 : 4, "segment " + p.index(), out);
                }
            }
        }
        return Collections.unmodifiableList(out);
    }

    private void readNotes(int off, int len, int align, String where, List<Note> out) {
        long p = 0;
        while (p + 12 <= len) {
            int o = off + (int) p;
            long namesz = u32(o);
            long descsz = u32(o + 4);
            int type = data.getInt(o + 8);
            long descOff = alignUp(12 + namesz, align);
            long next = alignUp(descOff + descsz, align);
            if (descOff + descsz > len - p) {
                throw error(where + ": the note at offset 0x" + Long.toHexString(p) + " (namesz " + namesz
                        + ", descsz " + descsz + ") runs past the end of its " + len + "-byte container");
            }
            // The name includes its terminating NUL; be lenient about a missing one, as readelf is.
            int nlen = (int) namesz;
            while (nlen > 0 && data.get(o + 12 + nlen - 1) == 0) {
                nlen--;
            }
            byte[] nameBytes = new byte[nlen];
            data.get(o + 12, nameBytes);
            byte[] desc = new byte[(int) descsz];
            data.get(o + (int) descOff, desc);
            out.add(new Note(new String(nameBytes, StandardCharsets.UTF_8), type, desc));
            p += next;
        }
    }

    private static long alignUp(long v, long a) {
        return (v + a - 1) & -a;
    }

    SymbolVersions versions() {
        return versions.get();
    }
}
