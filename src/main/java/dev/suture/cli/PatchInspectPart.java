package dev.suture.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.suture.elf.ElfConstants;
import dev.suture.elf.ElfFile;
import dev.suture.patch.NewSymbol;
import dev.suture.patch.PatchFile;
import dev.suture.patch.PatchSignature;
import dev.suture.patch.PatchSymbol;
import dev.suture.patch.TrustedKeys;

import java.io.PrintWriter;
import java.util.List;
import java.util.Optional;
import java.util.function.Supplier;

/**
 * The patch part of {@code suture inspect}: id, target, replaced functions with address, size and hash, new
 * functions and data, undefined external symbols and relocation counts, and who signed it, read through
 * {@link PatchFile} (so an invalid patch is reported as such).
 */
final class PatchInspectPart implements InspectPart {
    /** The keys a trust directory vouches for, loaded only for a signed patch (empty: no trust directory). */
    private final Supplier<Optional<TrustedKeys>> trust;

    PatchInspectPart(Supplier<Optional<TrustedKeys>> trust) {
        this.trust = trust;
    }

    /** The name a trust directory gives the signature's key, or null: then the signer name is only a claim. */
    private String trustedName(PatchSignature sig) {
        return trust.get().flatMap(k -> k.trustedName(sig)).orElse(null);
    }

    @Override
    public boolean appliesTo(ElfFile elf) {
        return elf.header().e_type() == ElfConstants.ET_REL && elf.section(PatchFile.INFO_SECTION).isPresent();
    }

    private static PatchFile patch(ElfFile elf) {
        return PatchFile.parse(elf.name(), elf.bytesAt(0, elf.size()));
    }

    @Override
    public void text(ElfFile elf, PrintWriter out) {
        var p = patch(elf);
        out.println("patch " + p.id() + " (format " + p.formatVersion() + ")");
        out.println("target " + p.targetName() + "  build-id " + p.targetBuildId() + "  ("
                + p.info().targetTypeName() + ")");
        out.println("signature: " + p.signature().map(this::signature).orElse("none (unsigned)"));
        out.println("replaced functions:");
        if (p.replaced().isEmpty()) {
            out.println("  (none)");
        } else {
            var t = new TextTable("symbol", ">address", ">size", "sha256 of original bytes", "replacement");
            for (var r : p.replaced()) {
                t.row(r.symbol(), InspectCommand.hex(r.targetAddress()), r.size(), r.sha256(),
                        r.patchSymbol().name() + " [" + sectionName(p, r.patchSymbol()) + "]"
                                + (r.part() ? " (split part: no jump)" : ""));
            }
            t.print(out, "  ");
        }
        out.println("new functions: " + names(p, NewSymbol.Kind.FUNCTION));
        out.println("new data: " + names(p, NewSymbol.Kind.DATA));
        var ext = p.externals().stream().map(PatchSymbol.External::fileName).toList();
        out.println("undefined external symbols: " + (ext.isEmpty() ? "(none)" : String.join(" ", ext)));
        var targetSyms = p.targetRelative().stream()
                .map(t -> t.name() + "@" + InspectCommand.hex(t.value())).toList();
        out.println("target symbols used: " + (targetSyms.isEmpty() ? "(none)" : String.join(" ", targetSyms)));
        var counts = p.relocationCounts();
        out.println("relocations: " + (counts.isEmpty() ? "(none)" : String.join(", ",
                counts.entrySet().stream().map(e -> e.getKey() + " " + e.getValue()).toList())));
        out.println();
    }

    /** Key id first; the signer's name is the trusted one, else what the file claims, said as a claim. */
    private String signature(PatchSignature sig) {
        String name = trustedName(sig);
        return "key id " + sig.keyId() + (name != null ? ", trusted as " + name
                : ", claims to be " + sig.signer() + " (a name the file gives itself: the key is in no trust directory)")
                + (sig.valid() ? "; verifies against the public key it carries"
                        : "; DOES NOT VERIFY: the file was changed after it was signed");
    }

    private static String sectionName(PatchFile p, PatchSymbol.Defined d) {
        return p.section(d.section()).map(s -> s.name()).orElse("?");
    }

    private static String names(PatchFile p, NewSymbol.Kind kind) {
        List<String> n = p.added().stream().filter(a -> a.kind() == kind).map(a -> a.symbol().name()).toList();
        return n.isEmpty() ? "(none)" : String.join(" ", n);
    }

    @Override
    public void json(ElfFile elf, ObjectNode document) {
        var p = patch(elf);
        var node = document.putObject("patch");
        node.put("formatVersion", p.formatVersion());
        node.put("id", p.id());
        node.put("targetBuildId", p.targetBuildId());
        node.put("targetName", p.targetName());
        node.put("targetType", p.info().targetTypeName());
        p.signature().ifPresentOrElse(sig -> {
            var o = node.putObject("signature");
            o.put("keyId", sig.keyId());
            o.put("trustedSigner", trustedName(sig));
            o.put("claimedSigner", sig.signer());
            o.put("signer", sig.signer()); // the claim, as before: kept for scripts that read it
            o.put("algorithm", "Ed25519");
            o.put("valid", sig.valid());
        }, () -> node.putNull("signature"));
        var rep = node.putArray("replaced");
        for (var r : p.replaced()) {
            var o = rep.addObject();
            o.put("symbol", r.symbol());
            o.put("address", InspectCommand.hex(r.targetAddress()));
            o.put("size", r.size());
            o.put("sha256", r.sha256());
            o.put("patchSymbol", r.patchSymbol().name());
            o.put("patchSymbolIndex", r.patchSymbol().index());
            o.put("part", r.part());
        }
        var fun = node.putArray("newFunctions");
        var dat = node.putArray("newData");
        for (var a : p.added()) {
            (a.kind() == NewSymbol.Kind.FUNCTION ? fun : dat).add(a.symbol().name());
        }
        var ext = node.putArray("externals");
        p.externals().forEach(e -> ext.add(e.fileName()));
        var tgt = node.putArray("targetSymbols");
        for (var t : p.targetRelative()) {
            var o = tgt.addObject();
            o.put("name", t.name());
            o.put("value", InspectCommand.hex(t.value()));
            o.put("tls", t.type() == ElfConstants.STT_TLS);
        }
        var counts = node.putObject("relocations");
        p.relocationCounts().forEach(counts::put);
    }
}
