package dev.suture.patch;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Collections;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.SortedMap;
import java.util.TreeMap;

/**
 * A patch (docs/patch-format.md): what it replaces in which module, and the sections, symbols and relocations the
 * binder lays out. Instances come from {@link #read}, {@link #parse} or {@link PatchBuilder#build()}, and are always
 * valid ({@link PatchRules}); {@link PatchReader} decodes files, {@link PatchWriter} writes them, signed or not.
 */
public final class PatchFile {
    public static final int FORMAT_VERSION = 1;
    public static final String INFO_SECTION = ".suture.info";
    /** The optional signature section (docs/patch-format.md, section 7). */
    public static final String SIGNATURE_SECTION = ".suture.sig";
    static final String MAGIC = "suture-patch";

    private final String file;
    private final PatchInfo info;
    private final List<PatchSection> sections;
    private final List<PatchSymbol> symbols;
    private final List<ReplacedFunction> replaced;
    private final List<NewSymbol> added;
    private final PatchSignature signature;

    /** {@code signature}: the one the file was read with, or null. */
    PatchFile(String file, PatchInfo info, List<PatchSection> sections, List<PatchSymbol> symbols,
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
        return PatchReader.read(path);
    }

    /** Decodes and validates a patch held in memory; {@code name} is used in error messages. */
    public static PatchFile parse(String name, byte[] bytes) {
        return PatchReader.parse(name, bytes);
    }

    /** The file image, unsigned (a signature this patch was read with is not kept: it signed other bytes). */
    public byte[] toBytes() {
        return PatchWriter.image(this, null);
    }

    /** The file image with a {@code .suture.sig} section signed by {@code key}. */
    public byte[] toBytes(Keys.SigningKey key) {
        return PatchWriter.image(this, key);
    }

    /** Writes the file image, unsigned, to {@code path} (replacing it). */
    public void write(Path path) throws IOException {
        Files.write(path, toBytes());
    }

    /**
     * Writes the file image to {@code path}, signed by {@code key} unless it is null, and returns the patch as
     * written (with its signature). The image is checked in memory first, so nothing is read back.
     */
    public PatchFile write(Path path, Keys.SigningKey key) {
        return PatchWriter.write(this, path, key);
    }

    /**
     * Signs the patch file at {@code path} in place with {@code key} (replacing any earlier signature); readers see
     * the old or the new file, never half of one. Returns the signed patch.
     */
    public static PatchFile sign(Path path, Keys.SigningKey key) {
        return PatchWriter.signInPlace(path, key);
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
            var md = MessageDigest.getInstance("SHA-256");
            return HexFormat.of().formatHex(md.digest(bytes));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("the JDK has no SHA-256", e);
        }
    }

    @Override
    public String toString() {
        return "patch " + info.id() + " for " + info.targetName() + " (" + info.targetBuildId() + ")";
    }
}
