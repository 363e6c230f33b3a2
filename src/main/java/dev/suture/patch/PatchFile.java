package dev.suture.patch;

import static dev.suture.elf.ElfConstants.*;

import dev.suture.SutureException;
import dev.suture.elf.ElfFile;
import dev.suture.elf.Symbol;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.regex.Pattern;

/**
 * A parsed and validated patch file (docs/patch-format.md): what the patch replaces in which module, and the
 * sections, symbols and relocations the binder lays out. Instances come from {@link #read}, {@link #parse} or
 * {@link PatchBuilder#build()}, and are always valid.
 */
public final class PatchFile {
    public static final int FORMAT_VERSION = 1;
    public static final String INFO_SECTION = ".suture.info";
    /** The optional signature section (docs/patch-format.md, section 7). */
    public static final String SIGNATURE_SECTION = ".suture.sig";
    static final String MAGIC = "suture-patch";
    private static final Pattern ID = Pattern.compile("[A-Za-z0-9._+-]{1,128}");
    private static final Pattern BUILD_ID = Pattern.compile("[0-9a-f]{2,128}");
    private static final Pattern SHA256 = Pattern.compile("[0-9a-f]{64}");
    private static final Set<Integer> SYMBOL_TYPES = Set.of(STT_NOTYPE, STT_OBJECT, STT_FUNC,
            STT_SECTION, STT_TLS);
    /** Names go into the region header as NUL-terminated strings: no white space, no control characters. */
    private static final Pattern NAME = Pattern.compile("[^\\s\\p{Cntrl}]{1,4096}");
    /** Patch files are small; a larger file is refused before it is read into memory. */
    public static final long MAX_FILE_SIZE = 64L << 20;
    /** No section of a patch may claim more (NOBITS included): the binder's region is far smaller anyway. */
    public static final long MAX_SECTION_SIZE = 1L << 30;
    /** Replaced functions larger than this are not plausible; their hash is checked by reading them whole. */
    public static final long MAX_FUNCTION_SIZE = 16L << 20;
    /** The end of the x86-64 user address space (47 bits): link-time addresses of a target lie below it. */
    static final long USER_SPACE_END = 1L << 47;

    private final String file;
    private final PatchInfo info;
    private final List<PatchSection> sections;
    private final List<PatchSymbol> symbols;
    private final List<ReplacedFunction> replaced;
    private final List<NewSymbol> added;
    private final PatchSignature signature;

    PatchFile(String file, PatchInfo info, List<PatchSection> sections, List<PatchSymbol> symbols,
              List<ReplacedFunction> replaced, List<NewSymbol> added) {
        this(file, info, sections, symbols, replaced, added, null);
    }

    private PatchFile(String file, PatchInfo info, List<PatchSection> sections, List<PatchSymbol> symbols,
                      List<ReplacedFunction> replaced, List<NewSymbol> added, PatchSignature signature) {
        this.file = file;
        this.signature = signature;
        this.info = info;
        this.sections = List.copyOf(sections);
        this.symbols = List.copyOf(symbols);
        this.replaced = List.copyOf(replaced);
        this.added = List.copyOf(added);
    }

    /** Reads and validates a patch file; anything not as specified is a {@link PatchFormatException}. */
    public static PatchFile read(Path path) {
        byte[] bytes;
        try {
            // a FIFO or /dev/zero would be read forever, a huge file into memory
            if (Files.exists(path) && !Files.isRegularFile(path)) {
                throw new SutureException(SutureException.Kind.BAD_INPUT, path + ": not a regular file");
            }
            long size = Files.exists(path) ? Files.size(path) : 0;
            if (size > MAX_FILE_SIZE) {
                throw new SutureException(SutureException.Kind.BAD_INPUT, path + ": " + size
                        + " bytes, more than a patch file may have (" + MAX_FILE_SIZE + ")");
            }
            bytes = Files.readAllBytes(path);
        } catch (NoSuchFileException e) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, path + ": no such patch file");
        } catch (IOException e) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, path + ": cannot read it: " + e.getMessage());
        }
        return parse(path.toString(), bytes);
    }

    /** Decodes and validates a patch held in memory; {@code name} is used in error messages. */
    public static PatchFile parse(String name, byte[] bytes) {
        ElfFile elf = ElfFile.parse(name, bytes);
        // The signature is checked first: when a signed file no longer reads as a patch, the change after
        // signing is the story to tell, not the symptom it caused.
        var signature = SignatureSection.read(name, bytes, elf);
        try {
            return parse(name, elf, signature);
        } catch (SutureException e) {
            if (signature.isPresent() && !signature.get().valid()) {
                throw new PatchTrustException(name + ": carries a signature by " + signature.get() + " that does not"
                        + " verify: the file was changed after it was signed (and no longer reads as a patch: "
                        + e.getMessage() + "). Do not use this copy; get the original file, or rebuild and sign the"
                        + " patch again.");
            }
            throw e;
        }
    }

    private static PatchFile parse(String name, ElfFile elf, Optional<PatchSignature> signature) {
        var h = elf.header();
        if (h.e_type() != ET_REL || h.e_machine() != EM_X86_64) {
            throw new PatchFormatException(name, "not an x86-64 relocatable ELF object (ET_REL, EM_X86_64)");
        }
        var infoSection = elf.section(INFO_SECTION)
                .orElseThrow(() -> new PatchFormatException(name, "no " + INFO_SECTION + " section"));
        if (infoSection.sh_type() != SHT_PROGBITS) {
            throw new PatchFormatException(name, INFO_SECTION + " is " + infoSection.typeName() + ", not PROGBITS");
        }
        String infoText;
        try {
            infoText = StandardCharsets.UTF_8.newDecoder().decode(ByteBuffer.wrap(elf.bytes(infoSection))).toString();
        } catch (CharacterCodingException e) {
            throw new PatchFormatException(name, INFO_SECTION + " is not valid UTF-8");
        }

        // Content sections keep their ELF index; RELA, the tables and the metadata are not content.
        var sectionByIndex = new HashMap<Integer, dev.suture.elf.Section>();
        int symtabIndex = -1;
        long contentBytes = 0;
        for (var s : elf.sections()) {
            if (s.sh_type() == SHT_SYMTAB) {
                if (symtabIndex >= 0) {
                    throw new PatchFormatException(name, "more than one symbol table (sections " + symtabIndex
                            + " and " + s.index() + ")");
                }
                symtabIndex = s.index();
            }
            boolean content = s.index() != 0 && s.sh_type() != SHT_RELA && s.sh_type() != SHT_SYMTAB
                    && s.sh_type() != SHT_STRTAB && s.index() != infoSection.index()
                    && !s.name().equals(SIGNATURE_SECTION);
            if (content) {
                if (s.sh_type() == SHT_REL || s.sh_type() == SHT_GROUP || s.sh_type() == SHT_DYNSYM) {
                    throw new PatchFormatException(name, "section " + s.name() + " has a type a patch cannot have ("
                            + s.typeName() + ")");
                }
                if (s.sh_size() < 0 || s.sh_size() > MAX_SECTION_SIZE) {
                    throw new PatchFormatException(name, "section " + s.name() + " claims 0x"
                            + Long.toHexString(s.sh_size()) + " bytes, more than a patch section may have (0x"
                            + Long.toHexString(MAX_SECTION_SIZE) + ")");
                }
                // Overlapping sections would each be copied: together they may not claim more than the file holds.
                contentBytes += s.isNobits() ? 0 : s.sh_size();
                if (contentBytes > elf.size()) {
                    throw new PatchFormatException(name, "the content sections together claim more bytes than the"
                            + " file has (they overlap)");
                }
                sectionByIndex.put(s.index(), s);
            }
        }
        var elfSymbols = elf.symbols();
        var symbols = new ArrayList<PatchSymbol>();
        var byIndex = new HashMap<Integer, PatchSymbol>();
        for (Symbol s : elfSymbols) {
            if (s.index() == 0) {
                continue;
            }
            PatchSymbol ps;
            if (!SYMBOL_TYPES.contains(s.type())) {
                throw new PatchFormatException(name, "symbol " + s.name() + " (index " + s.index() + ") has type "
                        + s.typeName() + "; patch symbols are NOTYPE, OBJECT, FUNC, TLS or SECTION");
            }
            if (s.type() == STT_SECTION) {
                if (!sectionByIndex.containsKey(s.st_shndx())) {
                    throw new PatchFormatException(name, "section symbol " + s.index() + " names section "
                            + s.st_shndx() + ", which is not a patch section");
                }
                ps = new PatchSymbol.SectionSymbol(s.index(), sectionByIndex.get(s.st_shndx()).name(), s.st_shndx());
            } else if (s.st_shndx() == SHN_ABS) {
                ps = new PatchSymbol.TargetRelative(s.index(), s.name(), s.type(), s.st_value(), s.st_size());
            } else if (s.st_shndx() == SHN_UNDEF) {
                if (s.isLocal()) {
                    throw new PatchFormatException(name, "undefined symbol " + s.name() + " is local");
                }
                int at = s.name().indexOf('@');
                if (at == 0 || at == s.name().length() - 1 || s.name().indexOf('@', at + 1) >= 0
                        || !NAME.matcher(s.name()).matches()) {
                    throw new PatchFormatException(name, "external symbol " + s.index() + " has the name "
                            + quote(s.name()) + ", not NAME or NAME@VERSION");
                }
                ps = new PatchSymbol.External(s.index(), at < 0 ? s.name() : s.name().substring(0, at),
                        at < 0 ? null : s.name().substring(at + 1), s.type(), s.isWeak());
            } else if (sectionByIndex.containsKey(s.st_shndx())) {
                ps = new PatchSymbol.Defined(s.index(), s.name(), s.type(), s.st_shndx(), s.st_value(), s.st_size());
            } else {
                throw new PatchFormatException(name, "symbol " + s.name() + " (index " + s.index()
                        + ") is in section " + s.st_shndx() + ", which is not a patch section");
            }
            symbols.add(ps);
            byIndex.put(ps.index(), ps);
        }

        var relocationsBySection = new HashMap<Integer, List<PatchRelocation>>();
        for (var rs : elf.relocationSections()) {
            if (!rs.isRela()) {
                throw new PatchFormatException(name, rs.section().name() + " is SHT_REL; patches use SHT_RELA");
            }
            if (rs.target() == null || !sectionByIndex.containsKey(rs.target().index())) {
                throw new PatchFormatException(name, rs.section().name() + " applies to no patch section");
            }
            if (rs.section().sh_link() != symtabIndex) {
                throw new PatchFormatException(name, rs.section().name() + " takes its symbols from section "
                        + rs.section().sh_link() + ", not from .symtab");
            }
            var list = relocationsBySection.computeIfAbsent(rs.target().index(), _ -> new ArrayList<>());
            for (var r : rs.relocations()) {
                PatchSymbol sym = byIndex.get(r.symbolIndex());
                if (sym == null) {
                    throw new PatchFormatException(name, rs.section().name() + ": relocation at 0x"
                            + Long.toHexString(r.r_offset()) + " names symbol " + r.symbolIndex()
                            + ", which is not a patch symbol");
                }
                list.add(new PatchRelocation(r.r_offset(), r.type(), sym, r.r_addend()));
            }
        }
        var sections = new ArrayList<PatchSection>();
        for (var s : sectionByIndex.values().stream().sorted((a, b) -> a.index() - b.index()).toList()) {
            sections.add(new PatchSection(s.index(), s.name(), s.sh_type(), s.sh_flags(), s.sh_addralign(),
                    s.sh_entsize(), s.sh_size(), s.isNobits() ? new byte[0] : elf.bytes(s),
                    relocationsBySection.getOrDefault(s.index(), List.of())));
        }
        var unsigned = parseInfo(name, infoText, sections, symbols, byIndex);
        var patch = new PatchFile(name, unsigned.info, sections, symbols, unsigned.replaced, unsigned.added,
                signature.orElse(null));
        patch.validate();
        return patch;
    }

    private static PatchFile parseInfo(String name, String text, List<PatchSection> sections,
                                       List<PatchSymbol> symbols, Map<Integer, PatchSymbol> byIndex) {
        if (!text.endsWith("\n")) {
            throw new PatchFormatException(name, INFO_SECTION + " does not end with a newline");
        }
        var header = new HashMap<String, String>();
        var replaced = new ArrayList<ReplacedFunction>();
        var added = new ArrayList<NewSymbol>();
        // Line by line, and at most 8 fields a line: a hostile text of millions of lines or spaces costs nothing.
        String body = text.substring(0, text.length() - 1);
        for (int i = 0, start = 0; start <= body.length(); i++) {
            int newline = body.indexOf('\n', start);
            int end = newline < 0 ? body.length() : newline;
            String line = body.substring(start, end);
            start = end + 1;
            if (i == 0) {
                if (!line.equals(MAGIC + " " + FORMAT_VERSION)) {
                    throw new PatchFormatException(name, INFO_SECTION + " starts with " + quote(line)
                            + ", expected \"" + MAGIC + " " + FORMAT_VERSION + "\" (a patch of another format version?)");
                }
                continue;
            }
            String where = INFO_SECTION + " line " + (i + 1);
            var f = line.split(" ", 8);
            switch (f[0]) {
                case "id", "target-build-id", "target-name", "target-type" -> {
                    if (f.length != 2) {
                        throw new PatchFormatException(name, where + ": expected \"" + f[0] + " VALUE\"");
                    }
                    if (header.put(f[0], f[1]) != null) {
                        throw new PatchFormatException(name, where + ": " + f[0] + " given twice");
                    }
                }
                case "replace" -> {
                    if (f.length != 6 && !(f.length == 7 && f[6].equals("part"))) {
                        throw new PatchFormatException(name, where
                                + ": expected \"replace SYMBOL ADDRESS SIZE SHA256 PATCH-SYMBOL [part]\"");
                    }
                    var sym = patchSymbol(name, where, f[5], byIndex);
                    replaced.add(new ReplacedFunction(f[1], hex(name, where, f[2]), hex(name, where, f[3]), f[4],
                            sym, f.length == 7));
                }
                case "new-function", "new-data" -> {
                    if (f.length != 2) {
                        throw new PatchFormatException(name, where + ": expected \"" + f[0] + " PATCH-SYMBOL\"");
                    }
                    added.add(new NewSymbol(f[0].equals("new-function") ? NewSymbol.Kind.FUNCTION
                            : NewSymbol.Kind.DATA, patchSymbol(name, where, f[1], byIndex)));
                }
                default -> throw new PatchFormatException(name, where + ": unknown record " + quote(f[0]));
            }
        }
        for (String key : List.of("id", "target-build-id", "target-name", "target-type")) {
            if (!header.containsKey(key)) {
                throw new PatchFormatException(name, INFO_SECTION + " has no \"" + key + "\" record");
            }
        }
        String type = header.get("target-type");
        if (!type.equals("ET_EXEC") && !type.equals("ET_DYN")) {
            throw new PatchFormatException(name, "target-type is " + quote(type) + ", expected ET_EXEC or ET_DYN");
        }
        var info = new PatchInfo(FORMAT_VERSION, header.get("id"), header.get("target-build-id"),
                header.get("target-name"), type.equals("ET_EXEC") ? ET_EXEC : ET_DYN);
        return new PatchFile(name, info, sections, symbols, replaced, added);
    }

    private static PatchSymbol.Defined patchSymbol(String name, String where, String field,
                                                   Map<Integer, PatchSymbol> byIndex) {
        int index;
        try {
            index = Integer.parseInt(field);
        } catch (NumberFormatException e) {
            throw new PatchFormatException(name, where + ": patch symbol " + quote(field) + " is not a symbol index");
        }
        if (!(byIndex.get(index) instanceof PatchSymbol.Defined d)) {
            throw new PatchFormatException(name, where + ": symbol " + index + " is not a symbol the patch defines");
        }
        return d;
    }

    private static long hex(String name, String where, String field) {
        if (!field.startsWith("0x") || field.length() < 3 || field.length() > 18) {
            throw new PatchFormatException(name, where + ": " + quote(field) + " is not a 0x-prefixed hex number");
        }
        try {
            return Long.parseUnsignedLong(field.substring(2), 16);
        } catch (NumberFormatException e) {
            throw new PatchFormatException(name, where + ": " + quote(field) + " is not a 0x-prefixed hex number");
        }
    }

    /** A value from the file for a message: quoted, and cut short (a hostile file's fields can be megabytes). */
    private static String quote(String value) {
        return "\"" + (value.length() <= 80 ? value : value.substring(0, 60) + "...") + "\"";
    }

    /** Checks every rule of docs/patch-format.md section 6 that the structure alone does not guarantee. */
    void validate() {
        if (!ID.matcher(info.id()).matches()) {
            fail("patch id " + quote(info.id()) + " is not 1-128 characters of A-Z a-z 0-9 . _ + -");
        }
        if (!BUILD_ID.matcher(info.targetBuildId()).matches() || info.targetBuildId().length() % 2 != 0) {
            fail("target build-id " + quote(info.targetBuildId()) + " is not lowercase hex bytes");
        }
        if (!NAME.matcher(info.targetName()).matches()) {
            fail("target name " + quote(info.targetName()) + " is empty or contains white space");
        }
        var sectionIndexes = new HashMap<Integer, PatchSection>();
        for (var s : sections) {
            sectionIndexes.put(s.index(), s);
            if (s.size() < 0 || s.size() > MAX_SECTION_SIZE) {
                fail("section " + s.name() + " claims 0x" + Long.toHexString(s.size()) + " bytes");
            }
            if (!s.isNobits() && s.bytes().length != s.size()) {
                fail("section " + s.name() + " holds " + s.bytes().length + " bytes but its size is " + s.size());
            }
            if (s.align() < 1 || Long.bitCount(s.align()) != 1) {
                fail("section " + s.name() + " has alignment " + s.align() + ", not a power of two");
            }
            // The binder maps writable sections without execute permission, and NOBITS is zeroes: code in either
            // would crash the target at its first call.
            if (s.isExecutable() && (s.isWritable() || s.isNobits())) {
                fail("section " + s.name() + " is executable and " + (s.isNobits() ? "NOBITS" : "writable")
                        + "; code goes in a read-only PROGBITS section");
            }
            for (var r : s.relocations()) {
                checkRelocation(s, r, sectionIndexes);
            }
        }
        for (var s : sections) {
            for (var r : s.relocations()) {
                checkTarget(s, r, sectionIndexes);
            }
        }
        for (var sym : symbols) {
            if (sym instanceof PatchSymbol.Defined d) {
                var s = sectionIndexes.get(d.section());
                if (s == null) {
                    fail("symbol " + d.name() + " is defined in section " + d.section() + ", not a patch section");
                } else if (d.value() < 0 || d.size() < 0 || d.value() > s.size() || d.size() > s.size() - d.value()) {
                    fail("symbol " + d.name() + " lies outside its section " + s.name());
                }
            }
        }
        var names = new HashSet<String>();
        var ranges = new TreeMap<Long, ReplacedFunction>();
        for (var r : replaced) {
            if (!NAME.matcher(r.symbol()).matches()) {
                fail("replaced function name " + quote(r.symbol()) + " is empty or contains white space");
            }
            if (!names.add(r.symbol())) {
                fail("replaced function " + r.symbol() + " is listed twice");
            }
            if (!SHA256.matcher(r.sha256()).matches()) {
                fail("hash of " + r.symbol() + " is not 64 lowercase hex digits");
            }
            if (!r.part() && r.size() < 5) {
                fail("replaced function " + r.symbol() + " is " + r.size() + " bytes, shorter than a jmp rel32");
            }
            if (r.size() < 1 || r.size() > MAX_FUNCTION_SIZE) {
                fail("replaced function " + r.symbol() + " claims 0x" + Long.toHexString(r.size())
                        + " bytes (at most 0x" + Long.toHexString(MAX_FUNCTION_SIZE) + ")");
            }
            if (r.targetAddress() <= 0 || r.targetAddress() > USER_SPACE_END - r.size()) {
                fail("replaced function " + r.symbol() + " at 0x" + Long.toHexString(r.targetAddress())
                        + " is not in the user address space");
            }
            // No two replaced functions may share a byte: each jump and each hash covers its own code.
            var below = ranges.floorEntry(r.targetAddress());
            var above = ranges.ceilingEntry(r.targetAddress());
            var clash = below != null && below.getKey() + below.getValue().size() > r.targetAddress() ? below
                    : above != null && above.getKey() < r.targetAddress() + r.size() ? above : null;
            if (clash != null) {
                fail("replaced functions " + clash.getValue().symbol() + " and " + r.symbol() + " overlap at 0x"
                        + Long.toHexString(Math.max(clash.getKey(), r.targetAddress())));
            }
            ranges.put(r.targetAddress(), r);
            if (r.patchSymbol().type() != STT_FUNC) {
                fail("the replacement of " + r.symbol() + " (symbol " + r.patchSymbol().index() + ") is not STT_FUNC");
            }
            var s = sectionIndexes.get(r.patchSymbol().section());
            if (s == null || !s.isExecutable() || !s.isAlloc()) {
                fail("the replacement of " + r.symbol() + " is not in an allocated executable section");
            }
            if (r.patchSymbol().value() >= s.size()) {
                fail("the replacement of " + r.symbol() + " starts at the end of " + s.name() + ", past its code");
            }
        }
        for (var a : added) {
            var s = sectionIndexes.get(a.symbol().section());
            if (s == null || !s.isAlloc()) {
                fail("new symbol " + a.symbol().name() + " is not in an allocated section");
            }
            if (a.kind() == NewSymbol.Kind.FUNCTION && !s.isExecutable()) {
                fail("new function " + a.symbol().name() + " is not in an executable section");
            }
        }
    }

    /** A relocation's type, and its place within its section. */
    private void checkRelocation(PatchSection s, PatchRelocation r, Map<Integer, PatchSection> sectionIndexes) {
        if (!PatchRelocation.isSupported(r.type())) {
            fail(s.name() + ": relocation " + r.typeName() + " at 0x" + Long.toHexString(r.offset())
                    + " is not a type patches may carry");
        }
        if (s.isNobits()) {
            fail(s.name() + ": a NOBITS section cannot have relocations");
        }
        int width = PatchRelocation.width(r.type());
        if (r.offset() < 0 || r.offset() > s.size() - width) {
            fail(s.name() + ": relocation at 0x" + Long.toHexString(r.offset()) + " lies outside the section");
        }
    }

    /**
     * What a relocation refers to: a patch section that is loaded (when the relocated section is), and a symbol of
     * the kind its type needs — the TLS types a thread-local variable of the target or another module, the others
     * anything with an address.
     */
    private void checkTarget(PatchSection s, PatchRelocation r, Map<Integer, PatchSection> sectionIndexes) {
        String where = s.name() + ": relocation " + r.typeName() + " at 0x" + Long.toHexString(r.offset());
        int section = switch (r.symbol()) {
            case PatchSymbol.Defined d -> d.section();
            case PatchSymbol.SectionSymbol ss -> ss.section();
            default -> -1;
        };
        if (section >= 0 && s.isAlloc()) {
            var to = sectionIndexes.get(section);
            if (to == null || !to.isAlloc()) {
                fail(where + " refers to a section that is not loaded");
            }
        }
        boolean tlsType = PatchRelocation.isTls(r.type());
        boolean tlsSymbol = switch (r.symbol()) {
            case PatchSymbol.TargetRelative t -> t.type() == STT_TLS;
            case PatchSymbol.External e -> e.type() == STT_TLS;
            default -> false;
        };
        if (tlsType && !(tlsSymbol || r.symbol() instanceof PatchSymbol.External e && e.type() == STT_NOTYPE)) {
            fail(where + " is a TLS relocation against " + r.symbol().name() + ", which is not a thread-local"
                    + " variable of the target or of another module");
        }
        if (!tlsType && tlsSymbol) {
            fail(where + " takes the address of the thread-local variable " + r.symbol().name()
                    + ", which has none");
        }
    }

    private void fail(String problem) {
        throw new PatchFormatException(file, problem);
    }

    /** The text of {@code .suture.info} (docs/patch-format.md section 4). */
    String infoText() {
        var sb = new StringBuilder();
        sb.append(MAGIC).append(' ').append(FORMAT_VERSION).append('\n');
        sb.append("id ").append(info.id()).append('\n');
        sb.append("target-build-id ").append(info.targetBuildId()).append('\n');
        sb.append("target-name ").append(info.targetName()).append('\n');
        sb.append("target-type ").append(info.targetTypeName()).append('\n');
        for (var r : replaced) {
            sb.append("replace ").append(r.symbol()).append(" 0x").append(Long.toHexString(r.targetAddress()))
                    .append(" 0x").append(Long.toHexString(r.size())).append(' ').append(r.sha256()).append(' ')
                    .append(r.patchSymbol().index()).append(r.part() ? " part" : "").append('\n');
        }
        for (var a : added) {
            sb.append(a.kind() == NewSymbol.Kind.FUNCTION ? "new-function " : "new-data ")
                    .append(a.symbol().index()).append('\n');
        }
        return sb.toString();
    }

    /** The file image, unsigned (a signature this patch was read with is not kept: it signed other bytes). */
    public byte[] toBytes() {
        return PatchWriter.write(this, null);
    }

    /** The file image with a {@code .suture.sig} section signed by {@code key}. */
    public byte[] toBytes(Keys.SigningKey key) {
        return SignatureSection.sign(PatchWriter.write(this, SignatureSection.template(key)), key);
    }

    /** Writes the file image to {@code path} (replacing it). */
    public void write(Path path) throws IOException {
        Files.write(path, toBytes());
    }

    /**
     * Signs the patch file at {@code path} in place with {@code key} (replacing any earlier signature): the
     * signed image goes to a temporary file next to it that then replaces it, so readers see the old or the new
     * file, never half of one. Returns the signed patch as read back.
     */
    public static PatchFile sign(Path path, Keys.SigningKey key) {
        var patch = read(path);
        byte[] image = patch.toBytes(key);
        Path tmp = path.resolveSibling(path.getFileName() + ".signing");
        try {
            Files.write(tmp, image);
            Files.move(tmp, path, java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                    java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            try {
                Files.deleteIfExists(tmp);
            } catch (IOException ignored) {
                // the message below is what matters
            }
            throw new SutureException(SutureException.Kind.BAD_INPUT, "cannot write the signed patch " + path
                    + ": " + e.getMessage());
        }
        var signed = read(path);
        if (signed.signature().filter(PatchSignature::valid).isEmpty()) {
            throw new SutureException(SutureException.Kind.INTERNAL, path + ": the signature just written does not"
                    + " verify");
        }
        return signed;
    }

    /** The signature the file carries, if any ({@link PatchSignature#valid()} says whether it verifies). */
    public Optional<PatchSignature> signature() {
        return Optional.ofNullable(signature);
    }

    public PatchInfo info() {
        return info;
    }

    public int formatVersion() {
        return info.formatVersion();
    }

    public String id() {
        return info.id();
    }

    public String targetBuildId() {
        return info.targetBuildId();
    }

    public String targetName() {
        return info.targetName();
    }

    /** Where the patch came from (its path, or a description for a patch built in memory). */
    public String file() {
        return file;
    }

    public List<ReplacedFunction> replaced() {
        return replaced;
    }

    public List<NewSymbol> added() {
        return added;
    }

    /** The content sections (code, data, .eh_frame), in file order, each with its relocations. */
    public List<PatchSection> sections() {
        return sections;
    }

    public Optional<PatchSection> section(int index) {
        return sections.stream().filter(s -> s.index() == index).findFirst();
    }

    /** Every symbol except the null symbol, in {@code .symtab} order. */
    public List<PatchSymbol> symbols() {
        return symbols;
    }

    public List<PatchSymbol.External> externals() {
        return symbols.stream().filter(s -> s instanceof PatchSymbol.External)
                .map(s -> (PatchSymbol.External) s).toList();
    }

    public List<PatchSymbol.TargetRelative> targetRelative() {
        return symbols.stream().filter(s -> s instanceof PatchSymbol.TargetRelative)
                .map(s -> (PatchSymbol.TargetRelative) s).toList();
    }

    /** Relocation counts by type name, e.g. {R_X86_64_PC32=3, R_X86_64_PLT32=2}. */
    public SortedMap<String, Integer> relocationCounts() {
        var counts = new TreeMap<String, Integer>();
        for (var s : sections) {
            for (var r : s.relocations()) {
                counts.merge(r.typeName(), 1, Integer::sum);
            }
        }
        return Collections.unmodifiableSortedMap(counts);
    }

    /** SHA-256 as lowercase hex, the way {@code .suture.info} records function hashes. */
    public static String sha256(byte[] bytes) {
        try {
            var md = java.security.MessageDigest.getInstance("SHA-256");
            return HexFormat.of().formatHex(md.digest(bytes));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException("the JDK has no SHA-256", e);
        }
    }

    @Override
    public String toString() {
        return "patch " + info.id() + " for " + info.targetName() + " (" + info.targetBuildId() + ")";
    }
}
