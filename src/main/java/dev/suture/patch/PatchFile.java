package dev.suture.patch;

import static dev.suture.elf.ElfConstants.*;

import dev.suture.SutureException;
import dev.suture.elf.ElfFile;
import dev.suture.elf.Symbol;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Optional;
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
    private static final Pattern NAME = Pattern.compile("\\S{1,4096}");

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
        var infoText = new String(elf.bytes(infoSection), StandardCharsets.UTF_8);

        // Content sections keep their ELF index; RELA, the tables and the metadata are not content.
        var sectionByIndex = new HashMap<Integer, dev.suture.elf.Section>();
        for (var s : elf.sections()) {
            boolean content = s.index() != 0 && s.sh_type() != SHT_RELA && s.sh_type() != SHT_SYMTAB
                    && s.sh_type() != SHT_STRTAB && s.index() != infoSection.index()
                    && !s.name().equals(SIGNATURE_SECTION);
            if (content) {
                if (s.sh_type() == SHT_REL || s.sh_type() == SHT_GROUP || s.sh_type() == SHT_DYNSYM) {
                    throw new PatchFormatException(name, "section " + s.name() + " has a type a patch cannot have ("
                            + s.typeName() + ")");
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
                ps = new PatchSymbol.External(s.index(), at < 0 ? s.name() : s.name().substring(0, at),
                        at < 0 ? null : s.name().substring(at + 1), s.type(), s.isWeak());
            } else if (sectionByIndex.containsKey(s.st_shndx())) {
                if (s.type() == STT_FILE) {
                    throw new PatchFormatException(name, "unexpected STT_FILE symbol " + s.name());
                }
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
        var lines = text.substring(0, text.length() - 1).split("\n", -1);
        if (!lines[0].equals(MAGIC + " " + FORMAT_VERSION)) {
            throw new PatchFormatException(name, INFO_SECTION + " starts with \"" + lines[0] + "\", expected \""
                    + MAGIC + " " + FORMAT_VERSION + "\" (a patch of another format version?)");
        }
        var header = new HashMap<String, String>();
        var replaced = new ArrayList<ReplacedFunction>();
        var added = new ArrayList<NewSymbol>();
        for (int i = 1; i < lines.length; i++) {
            String where = INFO_SECTION + " line " + (i + 1);
            var f = lines[i].split(" ", -1);
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
                default -> throw new PatchFormatException(name, where + ": unknown record \"" + f[0] + "\"");
            }
        }
        for (String key : List.of("id", "target-build-id", "target-name", "target-type")) {
            if (!header.containsKey(key)) {
                throw new PatchFormatException(name, INFO_SECTION + " has no \"" + key + "\" record");
            }
        }
        String type = header.get("target-type");
        if (!type.equals("ET_EXEC") && !type.equals("ET_DYN")) {
            throw new PatchFormatException(name, "target-type is \"" + type + "\", expected ET_EXEC or ET_DYN");
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
            throw new PatchFormatException(name, where + ": patch symbol \"" + field + "\" is not a symbol index");
        }
        if (!(byIndex.get(index) instanceof PatchSymbol.Defined d)) {
            throw new PatchFormatException(name, where + ": symbol " + index + " is not a symbol the patch defines");
        }
        return d;
    }

    private static long hex(String name, String where, String field) {
        if (!field.startsWith("0x") || field.length() < 3 || field.length() > 18) {
            throw new PatchFormatException(name, where + ": \"" + field + "\" is not a 0x-prefixed hex number");
        }
        try {
            return Long.parseUnsignedLong(field.substring(2), 16);
        } catch (NumberFormatException e) {
            throw new PatchFormatException(name, where + ": \"" + field + "\" is not a 0x-prefixed hex number");
        }
    }

    /** Checks every rule of docs/patch-format.md section 6 that the structure alone does not guarantee. */
    void validate() {
        if (!ID.matcher(info.id()).matches()) {
            fail("patch id \"" + info.id() + "\" is not 1-128 characters of A-Z a-z 0-9 . _ + -");
        }
        if (!BUILD_ID.matcher(info.targetBuildId()).matches()) {
            fail("target build-id \"" + info.targetBuildId() + "\" is not lowercase hex");
        }
        if (!NAME.matcher(info.targetName()).matches()) {
            fail("target name \"" + info.targetName() + "\" is empty or contains white space");
        }
        var sectionIndexes = new HashMap<Integer, PatchSection>();
        for (var s : sections) {
            sectionIndexes.put(s.index(), s);
            if (!s.isNobits() && s.bytes().length != s.size()) {
                fail("section " + s.name() + " holds " + s.bytes().length + " bytes but its size is " + s.size());
            }
            if (s.align() < 1 || Long.bitCount(s.align()) != 1) {
                fail("section " + s.name() + " has alignment " + s.align() + ", not a power of two");
            }
            for (var r : s.relocations()) {
                if (!PatchRelocation.isSupported(r.type())) {
                    fail(s.name() + ": relocation " + r.typeName() + " at 0x" + Long.toHexString(r.offset())
                            + " is not a type patches may carry");
                }
                if (r.offset() < 0 || r.offset() + PatchRelocation.width(r.type()) > s.size()) {
                    fail(s.name() + ": relocation at 0x" + Long.toHexString(r.offset()) + " lies outside the section");
                }
                if (s.isNobits()) {
                    fail(s.name() + ": a NOBITS section cannot have relocations");
                }
            }
        }
        for (var sym : symbols) {
            if (sym instanceof PatchSymbol.Defined d) {
                var s = sectionIndexes.get(d.section());
                if (s == null) {
                    fail("symbol " + d.name() + " is defined in section " + d.section() + ", not a patch section");
                } else if (d.value() < 0 || d.value() + d.size() > s.size()) {
                    fail("symbol " + d.name() + " lies outside its section " + s.name());
                }
            }
        }
        for (var r : replaced) {
            if (!NAME.matcher(r.symbol()).matches()) {
                fail("replaced function name \"" + r.symbol() + "\" is empty or contains white space");
            }
            if (!SHA256.matcher(r.sha256()).matches()) {
                fail("hash of " + r.symbol() + " is not 64 lowercase hex digits");
            }
            if (!r.part() && r.size() < 5) {
                fail("replaced function " + r.symbol() + " is " + r.size() + " bytes, shorter than a jmp rel32");
            }
            var s = sectionIndexes.get(r.patchSymbol().section());
            if (s == null || !s.isExecutable()) {
                fail("the replacement of " + r.symbol() + " is not in an executable section");
            }
        }
        for (var a : added) {
            var s = sectionIndexes.get(a.symbol().section());
            if (a.kind() == NewSymbol.Kind.FUNCTION && (s == null || !s.isExecutable())) {
                fail("new function " + a.symbol().name() + " is not in an executable section");
            }
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
