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
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
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
            return ProgramHeader.readAll(ElfFile.this);
        }
    };
    private final Lazy<List<Section>> sections = new Lazy<>() {
        @Override
        List<Section> compute() {
            return Section.readAll(ElfFile.this);
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
            return RelocationSection.readAll(ElfFile.this);
        }
    };
    private final Lazy<List<DynamicEntry>> dynamic = new Lazy<>() {
        @Override
        List<DynamicEntry> compute() {
            return DynamicEntry.readAll(ElfFile.this);
        }
    };
    private final Lazy<List<Note>> notes = new Lazy<>() {
        @Override
        List<Note> compute() {
            return Note.readAll(ElfFile.this);
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
        this.header = ElfHeader.read(this);
    }

    /**
     * Maps {@code path} read-only and checks its header; tables are decoded when first asked for. Only a regular file
     * (a symlink to one, as /proc/PID/map_files entries are, included) is opened: a FIFO would block the open, a
     * device such as /dev/zero would be read without end.
     */
    public static ElfFile open(Path path) {
        String name = path.toString();
        try {
            var attrs = Files.readAttributes(path, BasicFileAttributes.class);
            if (attrs.isDirectory()) {
                throw ElfFormatException.unreadable(name, "it is a directory");
            }
            if (!attrs.isRegularFile()) {
                throw ElfFormatException.unreadable(name, "it is not a regular file (a device, FIFO or socket)");
            }
        } catch (NoSuchFileException e) {
            throw ElfFormatException.unreadable(name, "no such file");
        } catch (IOException e) {
            throw ElfFormatException.unreadable(name, String.valueOf(e.getMessage()));
        }
        try (var ch = FileChannel.open(path, StandardOpenOption.READ)) {
            long length = ch.size();
            if (length > Integer.MAX_VALUE) {
                throw new ElfFormatException(name, "the file is larger than 2 GiB, which suture does not read");
            }
            if (length == 0) {
                throw new ElfFormatException(name, "the file is empty (its size is 0"
                        + (name.startsWith("/proc/") ? ", as /proc's own files say of themselves)" : ")"));
            }
            var mapped = ch.map(FileChannel.MapMode.READ_ONLY, 0, length);
            return new ElfFile(name, mapped);
        } catch (NoSuchFileException e) {
            throw ElfFormatException.unreadable(name, "no such file");
        } catch (java.nio.file.AccessDeniedException e) {
            throw ElfFormatException.unreadable(name, "permission denied");
        } catch (IOException e) {
            throw ElfFormatException.unreadable(name, String.valueOf(e.getMessage()));
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

    int u16(int off) {
        return Short.toUnsignedInt(data.getShort(off));
    }

    long u32(int off) {
        return Integer.toUnsignedLong(data.getInt(off));
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
        return table.isEmpty() ? List.of() : Symbol.readTable(this, table.get());
    }

    /** The symbols of a given symbol table section, sharing the decoded list of .symtab/.dynsym. */
    List<Symbol> symbolsOf(Section table) {
        if (sectionOfType(table.sh_type()).map(Section::index).orElse(-1) == table.index()) {
            return table.sh_type() == SHT_DYNSYM ? dynamicSymbols() : symbols();
        }
        return Symbol.readTable(this, table);
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

    SymbolVersions versions() {
        return versions.get();
    }
}
