package dev.suture.patch;

import static dev.suture.elf.ElfConstants.*;

import dev.suture.elf.ElfWriter;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;

/**
 * Serialises a {@link PatchFile} as the ET_REL of docs/patch-format.md through {@link ElfWriter}, which keeps the
 * order of sections and of local symbols it is given, so the indexes in {@code .suture.info} stay true.
 */
final class PatchWriter {
    private PatchWriter() {}

    /** The image; with a {@code signatureSection}, a {@code .suture.sig} section holding it after the metadata. */
    static byte[] write(PatchFile patch, byte[] signatureSection) {
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
        w.addSection(PatchFile.INFO_SECTION, SHT_PROGBITS, 0, 1, patch.infoText().getBytes(StandardCharsets.UTF_8));
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
