package dev.suture.generate;

import static dev.suture.elf.ElfConstants.*;

import dev.suture.elf.Relocation;
import dev.suture.elf.Section;
import dev.suture.elf.Symbol;
import dev.suture.generate.Differ.Binding;
import dev.suture.generate.Differ.Definition;
import dev.suture.generate.Differ.Pair;
import dev.suture.generate.Differ.SectionKey;
import dev.suture.patch.NewSymbol;
import dev.suture.patch.PatchBuilder;
import dev.suture.patch.PatchFile;
import dev.suture.patch.PatchRelocation;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Phase 9 of the diff: the included sections, their relocations bound as the {@link Resolver} says, the kept
 * unwind entries and the executable's own TLS offsets, assembled into a validated {@link PatchFile} in memory.
 */
final class PatchAssembly {
    private PatchAssembly() {}

    /** A relocation to emit: at {@code offset} of {@code from} (null: of a section made here), bound as said. */
    record Pending(SectionKey from, long offset, int type, Binding binding) {}

    /** The patch; {@code requestedId} null: an id derived from the target's name and the content. */
    static PatchFile assemble(String requestedId, List<Pair> pairs, Resolver resolver, List<Definition> replaced,
                              Inclusion inclusion) {
        var target = resolver.target;
        var order = new ArrayList<>(inclusion.sections());
        var objectOrder = new HashMap<ObjectFile, Integer>();
        for (int i = 0; i < pairs.size(); i++) {
            objectOrder.put(pairs.get(i).patched(), i);
        }
        order.sort(Comparator.<SectionKey>comparingInt(k -> objectOrder.get(k.object()))
                .thenComparingInt(SectionKey::index));
        var contents = new LinkedHashMap<SectionKey, byte[]>();
        for (var k : order) {
            contents.put(k, k.object().bytes(k.index()).clone());
        }
        var pending = new ArrayList<Pending>();
        var tpoff = new ByteArrayOutputStream();
        var tpoffSymbols = new LinkedHashMap<String, Integer>();
        for (var k : order) {
            ObjectFile p = k.object();
            byte[] bytes = contents.get(k);
            boolean code = p.section(k.index()).isExecutable();
            for (var r : p.relocations(k.index())) {
                var b = resolver.bind(p, r, Reference.of(p, r), code ? p.bytes(k.index()) : null, false);
                pending.add(resolveTls(target, k, r, b, bytes, tpoff, tpoffSymbols));
            }
        }
        var far = FarAccesses.route(target, pending, contents);
        // .eh_frame: the kept records of every object, one after the other, CIE pointers recomputed.
        var eh = new ByteArrayOutputStream();
        var ehPending = new ArrayList<Pending>();
        int ehType = SHT_PROGBITS;
        for (var pair : pairs) {
            ObjectFile p = pair.patched();
            Section ehs = EhFrame.section(p);
            if (ehs == null) {
                continue;
            }
            ehType = ehs.sh_type();
            var relocs = p.relocations(ehs.index());
            byte[] src = p.bytes(ehs.index());
            var newStart = new HashMap<Integer, Integer>();
            for (var e : EhFrame.kept(p, ehs, relocs, inclusion.sections())) {
                int at = eh.size();
                newStart.put(e.start(), at);
                byte[] rec = Arrays.copyOfRange(src, e.start(), e.end());
                if (!e.isCie()) {
                    int pointer = at + 4 - newStart.get(e.cie());
                    ByteBuffer.wrap(rec).order(ByteOrder.LITTLE_ENDIAN).putInt(4, pointer);
                }
                eh.writeBytes(rec);
                for (var r : relocs) {
                    if (r.r_offset() >= e.start() && r.r_offset() < e.end()) {
                        var b = resolver.bind(p, r, Reference.of(p, r), null, true);
                        ehPending.add(new Pending(null, at + r.r_offset() - e.start(), r.type(), b));
                    }
                }
            }
        }

        String id = requestedId != null ? requestedId : derivedId(target, contents);
        var builder = new PatchBuilder(id, target.buildId, target.name(),
                target.elf.header().e_type() == ET_EXEC ? ET_EXEC : ET_DYN);
        var handles = new HashMap<SectionKey, Integer>();
        for (var k : order) {
            Section s = k.object().section(k.index());
            handles.put(k, builder.addSection(s.name(), s.sh_type(), s.sh_flags() & ~(SHF_GROUP | SHF_LINK_ORDER),
                    s.sh_addralign(), s.sh_entsize(), contents.get(k), s.sh_size()));
        }
        int tpoffSection = tpoff.size() == 0 ? -1 : builder.addSection(".rodata.suture.tpoff", SHT_PROGBITS,
                SHF_ALLOC, 8, 8, tpoff.toByteArray(), tpoff.size());
        int farSection = far.thunks().length == 0 ? -1 : builder.addSection(FarAccesses.SECTION, SHT_PROGBITS,
                SHF_ALLOC | SHF_EXECINSTR, 16, 0, far.thunks(), far.thunks().length);
        int ehSection = eh.size() == 0 ? -1 : builder.addSection(".eh_frame", ehType, SHF_ALLOC, 8, 0,
                eh.toByteArray(), eh.size());
        var defined = new HashMap<Definition, PatchBuilder.Ref>();
        for (var k : order) {
            for (Symbol s : k.object().owners(k.index())) {
                defined.put(new Definition(k.object(), s),
                        builder.defined(s.name(), s.type(), handles.get(k), s.st_value(), s.st_size()));
            }
        }
        var tpoffRefs = new HashMap<Integer, PatchBuilder.Ref>();
        tpoffSymbols.forEach((name, at) -> tpoffRefs.put(at,
                builder.defined(name + "@tpoff", STT_OBJECT, tpoffSection, at, 8)));
        for (var pr : far.kept()) {
            if (pr.binding() != null) {
                emit(target, builder, handles.get(pr.from()), pr, handles, defined, tpoffRefs, tpoffSection);
            }
        }
        for (var pr : far.inThunks()) {
            emit(target, builder, farSection, pr, handles, defined, tpoffRefs, tpoffSection);
        }
        for (var j : far.toThunks()) {
            builder.relocate(handles.get(j.site()), j.offset(), R_X86_64_PC32, builder.sectionSymbol(farSection),
                    j.thunkOffset() - 4);
        }
        for (var b : far.backs()) {
            builder.relocate(farSection, b.offset(), R_X86_64_PC32, builder.sectionSymbol(handles.get(b.site())),
                    b.target() - 4);
        }
        for (var pr : ehPending) {
            emit(target, builder, ehSection, pr, handles, defined, tpoffRefs, tpoffSection);
        }
        for (var f : replaced) {
            Symbol t = resolver.targetSymbol(f).orElseThrow();
            byte[] original = target.bytes(t.st_value(), t.st_size()).orElseThrow(() -> new DiffRefusedException(
                    f.name() + " at 0x" + Long.toHexString(t.st_value()) + " is outside every loaded segment of "
                            + target.path));
            builder.replaced(t.name(), t.st_value(), t.st_size(), PatchFile.sha256(original), defined.get(f),
                    Correlation.isColdPart(f.name()));
        }
        for (var a : inclusion.added()) {
            var ref = defined.get(a);
            if (ref != null) {
                builder.added(a.symbol().isFunction() ? NewSymbol.Kind.FUNCTION : NewSymbol.Kind.DATA, ref);
            }
        }
        return builder.build();
    }

    /**
     * Settles the executable's own TLS now: local-exec fields get the thread-pointer offset written in place,
     * initial-exec loads read it from a word of .rodata.suture.tpoff. Returns what is left to emit.
     */
    private static Pending resolveTls(TargetBinary target, SectionKey k, Relocation r, Binding b, byte[] bytes,
                                      ByteArrayOutputStream tpoff, Map<String, Integer> tpoffSymbols) {
        if (b instanceof Binding.InTarget t && t.symbol().type() == STT_TLS && target.executable) {
            long off = target.threadPointerOffset(t.symbol());
            if (r.type() == R_X86_64_TPOFF32) {
                ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).putInt((int) r.r_offset(),
                        (int) (off + t.offset()));
                return new Pending(k, r.r_offset(), r.type(), null);
            }
            if (r.type() == R_X86_64_GOTTPOFF) {
                String key = t.symbol().name() + "@" + t.symbol().st_value();
                Integer at = tpoffSymbols.get(key);
                if (at == null) {
                    at = tpoff.size();
                    tpoffSymbols.put(key, at);
                    tpoff.writeBytes(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(off).array());
                }
                return new Pending(k, r.r_offset(), R_X86_64_PC32, new Binding.TpoffWord(at, t.offset()));
            }
        }
        if (r.type() == R_X86_64_TPOFF32 || !PatchRelocation.isSupported(r.type())) {
            Symbol owner = k.object().owner(k.index(), r.r_offset());
            throw new DiffRefusedException((owner == null ? k.object().section(k.index()).name() : owner.name())
                    + " (" + k.object().sourceFile + ") uses relocation " + r.typeName() + " at 0x"
                    + Long.toHexString(r.r_offset()) + ", which a live patch cannot carry"
                    + (r.type() == R_X86_64_TPOFF32 ? " (local-exec TLS outside an executable)" : ""));
        }
        return new Pending(k, r.r_offset(), r.type(), b);
    }

    private static void emit(TargetBinary target, PatchBuilder builder, int section, Pending pr,
                             Map<SectionKey, Integer> handles, Map<Definition, PatchBuilder.Ref> defined,
                             Map<Integer, PatchBuilder.Ref> tpoffRefs, int tpoffSection) {
        switch (pr.binding()) {
            case Binding.InPatch in -> {
                var ref = in.symbol() == null ? null : defined.get(in.symbol());
                if (ref != null) {
                    builder.relocate(section, pr.offset(), pr.type(), ref, in.offset());
                } else {
                    builder.relocate(section, pr.offset(), pr.type(),
                            builder.sectionSymbol(handles.get(in.section())), in.offset());
                }
            }
            case Binding.InTarget t -> {
                Symbol s = t.symbol();
                int type = s.type() == STT_GNU_IFUNC ? STT_FUNC : s.type();
                builder.relocate(section, pr.offset(), pr.type(),
                        builder.targetRelative(s.name(), type, s.st_value(), s.st_size()), t.offset());
            }
            case Binding.External e -> {
                String version = target.imported(e.symbol().name()).map(Symbol::version).orElse(null);
                int type = externalType(target, e.symbol());
                builder.relocate(section, pr.offset(), pr.type(),
                        builder.external(e.symbol().name(), version, type == STT_GNU_IFUNC ? STT_FUNC : type,
                                e.symbol().isWeak()), e.offset());
            }
            case Binding.TpoffWord w -> builder.relocate(section, pr.offset(), pr.type(), tpoffRefs.get(w.at()),
                    w.offset());
        }
    }

    /** The type of another module's symbol: as the target imports it, else as the object declares it. */
    static int externalType(TargetBinary target, Symbol symbol) {
        return target.imported(symbol.name()).map(Symbol::type).filter(t -> t != STT_NOTYPE).orElse(symbol.type());
    }

    /** A short id from the target's name and the patch content, when none was given. */
    private static String derivedId(TargetBinary target, Map<SectionKey, byte[]> contents) {
        try {
            var md = MessageDigest.getInstance("SHA-256");
            for (var e : contents.entrySet()) {
                md.update(e.getKey().object().section(e.getKey().index()).name().getBytes(StandardCharsets.UTF_8));
                md.update(e.getValue());
            }
            String hex = HexFormat.of().formatHex(md.digest()).substring(0, 12);
            String base = target.name().replaceAll("[^A-Za-z0-9._+-]", "_");
            return (base.length() > 100 ? base.substring(0, 100) : base) + "-" + hex;
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
