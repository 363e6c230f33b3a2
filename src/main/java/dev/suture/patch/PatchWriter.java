package dev.suture.patch;

import static dev.suture.elf.ElfConstants.*;

import dev.suture.SutureException;
import dev.suture.elf.ElfWriter;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;

/**
 * Serialises a {@link PatchFile} as the ET_REL of docs/patch-format.md through {@link ElfWriter}, which keeps the
 * order of sections and of local symbols it is given, so the indexes in {@code .suture.info} stay true; signs the
 * image through {@link SignatureSection}, and writes patch files.
 */
final class PatchWriter {
    private PatchWriter() {}

    /** The file image, signed by {@code key} unless it is null. */
    static byte[] image(PatchFile patch, Keys.SigningKey key) {
        return key == null ? layout(patch, null)
                : SignatureSection.sign(layout(patch, SignatureSection.template(key)), key);
    }

    /**
     * Writes {@code patch} to {@code path} (replacing it), signed unless {@code key} is null. The image is decoded
     * in memory before it is written: what goes to disk reads back as this patch, and its signature verifies.
     */
    static PatchFile write(PatchFile patch, Path path, Keys.SigningKey key) {
        var checked = checked(path, image(patch, key), key);
        try {
            Files.write(path, checked.image());
        } catch (IOException e) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, "cannot write " + path + ": " + e.getMessage());
        }
        return checked.patch();
    }

    /**
     * Signs the patch file at {@code path} in place (replacing any earlier signature): the signed image goes to a
     * temporary file next to it that then replaces it, so readers see the old or the new file, never half of one.
     */
    static PatchFile signInPlace(Path path, Keys.SigningKey key) {
        var checked = checked(path, image(PatchReader.read(path), key), key);
        Path tmp = path.resolveSibling(path.getFileName() + ".signing");
        try {
            Files.write(tmp, checked.image());
            Files.move(tmp, path, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            try {
                Files.deleteIfExists(tmp);
            } catch (IOException ignored) {
                // the message below is what matters
            }
            throw new SutureException(SutureException.Kind.BAD_INPUT, "cannot write the signed patch " + path
                    + ": " + e.getMessage());
        }
        return checked.patch();
    }

    private record Checked(byte[] image, PatchFile patch) {}

    /** The image decoded as a reader will decode it from {@code path}; a signature made here must verify. */
    private static Checked checked(Path path, byte[] image, Keys.SigningKey key) {
        var patch = PatchReader.parse(path.toString(), image);
        if (key != null && patch.signature().filter(PatchSignature::valid).isEmpty()) {
            throw new SutureException(SutureException.Kind.INTERNAL, path + ": the signature just made does not"
                    + " verify");
        }
        return new Checked(image, patch);
    }

    /** The ELF image; with a {@code signatureSection}, a {@code .suture.sig} section holding it after the metadata. */
    private static byte[] layout(PatchFile patch, byte[] signatureSection) {
        var w = new ElfWriter();
        var sections = new HashMap<Integer, ElfWriter.SectionRef>();
        int expected = 1;
        for (var s : patch.sections()) {
            if (s.index() != expected++) {
                throw new IllegalStateException("patch sections are not numbered 1..n in order");
            }
            sections.put(s.index(), s.isNobits() ? w.addNobits(s.name(), s.flags(), s.align(), s.size())
                    : w.addSection(s.name(), s.type(), s.flags(), s.align(), s.entsize(), s.bytes()));
        }
        byte[] info = InfoSection.encode(patch).getBytes(StandardCharsets.UTF_8);
        w.addSection(PatchFile.INFO_SECTION, SHT_PROGBITS, 0, 1, info);
        if (signatureSection != null) {
            w.addSection(PatchFile.SIGNATURE_SECTION, SHT_PROGBITS, 0, 1, signatureSection);
        }
        // ElfWriter numbers locals in the order added, then globals: the patch's own order (section 3 of the spec).
        List<ElfWriter.SymbolRef> refs = new ArrayList<>();
        for (var sym : patch.symbols()) {
            if (sym.index() != refs.size() + 1) {
                throw new IllegalStateException("patch symbols are not numbered 1..n in order");
            }
            refs.add(switch (sym) {
                case PatchSymbol.SectionSymbol ss -> w.sectionSymbol(sections.get(ss.section()));
                case PatchSymbol.Defined d -> w.addSymbol(d.name(), d.value(), d.size(), d.type(), STB_LOCAL,
                        STV_DEFAULT, sections.get(d.section()));
                case PatchSymbol.TargetRelative t -> w.addSpecialSymbol(t.name(), t.value(), t.size(), t.type(),
                        STB_LOCAL, STV_DEFAULT, SHN_ABS);
                case PatchSymbol.External e -> w.addUndefined(e.fileName(), e.type(), e.weak() ? STB_WEAK : STB_GLOBAL);
            });
        }
        for (var s : patch.sections()) {
            for (var r : s.relocations()) {
                w.addRelocation(sections.get(s.index()), r.offset(), r.type(), refs.get(r.symbol().index() - 1),
                        r.addend());
            }
        }
        return w.toBytes();
    }
}
