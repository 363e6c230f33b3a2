package dev.suture.patch;

import static dev.suture.elf.ElfConstants.*;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Assembles a {@link PatchFile} piece by piece. Symbols are handed out as {@link Ref}s and get their final
 * {@code .symtab} indexes in {@link #build()}, because ELF wants every local symbol before the first global one.
 */
public final class PatchBuilder {
    private final String id;
    private final String targetBuildId;
    private final String targetName;
    private final int targetType;

    private final List<SectionDraft> sections = new ArrayList<>();
    private final List<Ref> locals = new ArrayList<>();
    private final List<Ref> targetRelative = new ArrayList<>();
    private final List<Ref> externals = new ArrayList<>();
    private final Map<String, Ref> externalsByName = new HashMap<>();
    private final Map<String, Ref> targetByKey = new HashMap<>();
    private final List<ReplacedDraft> replaced = new ArrayList<>();
    private final List<NewDraft> added = new ArrayList<>();

    /** A symbol being built; its {@code .symtab} index is decided by {@link #build()}. */
    public static final class Ref {
        private final Kind kind;
        private final String name;
        private final String version;
        private final int type;
        private final int section;
        private final long value;
        private final long size;
        private final boolean weak;
        private int index = -1;

        private enum Kind { SECTION, DEFINED, TARGET, EXTERNAL }

        private Ref(Kind kind, String name, String version, int type, int section, long value, long size,
                    boolean weak) {
            this.kind = kind;
            this.name = name;
            this.version = version;
            this.type = type;
            this.section = section;
            this.value = value;
            this.size = size;
            this.weak = weak;
        }

        public String name() {
            return name;
        }
    }

    private record SectionDraft(String name, int type, long flags, long align, long entsize, long size,
                                byte[] bytes, List<RelocationDraft> relocations, Ref symbol) {}

    private record RelocationDraft(long offset, int type, Ref symbol, long addend) {}

    private record ReplacedDraft(String symbol, long address, long size, String sha256, Ref patchSymbol,
                                 boolean part) {}

    private record NewDraft(NewSymbol.Kind kind, Ref symbol) {}

    public PatchBuilder(String id, String targetBuildId, String targetName, int targetType) {
        this.id = id;
        this.targetBuildId = targetBuildId;
        this.targetName = targetName;
        this.targetType = targetType;
    }

    /** Adds a section and returns its handle (its future section index); {@code bytes} is ignored for NOBITS. */
    public int addSection(String name, int type, long flags, long align, long entsize, byte[] bytes, long size) {
        int handle = sections.size() + 1;
        var sym = new Ref(Ref.Kind.SECTION, name, null, STT_SECTION, handle, 0, 0, false);
        locals.add(sym);
        sections.add(new SectionDraft(name, type, flags, Math.max(1, align), entsize,
                type == SHT_NOBITS ? size : bytes.length, type == SHT_NOBITS ? new byte[0] : bytes.clone(),
                new ArrayList<>(), sym));
        return handle;
    }

    public Ref sectionSymbol(int section) {
        return draft(section).symbol();
    }

    public long sectionSize(int section) {
        return draft(section).size();
    }

    /** A symbol the patch defines: {@code value} is its offset in {@code section}. */
    public Ref defined(String name, int type, int section, long value, long size) {
        draft(section);
        var ref = new Ref(Ref.Kind.DEFINED, name, null, type, section, value, size, false);
        locals.add(ref);
        return ref;
    }

    /** A symbol of the target module at link-time address (or TLS offset) {@code value}; one per name+value. */
    public Ref targetRelative(String name, int type, long value, long size) {
        return targetByKey.computeIfAbsent(name + "\0" + value + "\0" + type, _ -> {
            var ref = new Ref(Ref.Kind.TARGET, name, null, type, SHN_ABS, value, size, false);
            targetRelative.add(ref);
            return ref;
        });
    }

    /** A symbol of another module, resolved at apply time; one per name+version. */
    public Ref external(String name, String version, int type, boolean weak) {
        return externalsByName.computeIfAbsent(version == null ? name : name + "@" + version, _ -> {
            var ref = new Ref(Ref.Kind.EXTERNAL, name, version, type, SHN_UNDEF, 0, 0, weak);
            externals.add(ref);
            return ref;
        });
    }

    public void relocate(int section, long offset, int type, Ref symbol, long addend) {
        draft(section).relocations().add(new RelocationDraft(offset, type, symbol, addend));
    }

    public void replaced(String symbol, long address, long size, String sha256, Ref patchSymbol, boolean part) {
        replaced.add(new ReplacedDraft(symbol, address, size, sha256, patchSymbol, part));
    }

    public void added(NewSymbol.Kind kind, Ref symbol) {
        added.add(new NewDraft(kind, symbol));
    }

    private SectionDraft draft(int handle) {
        if (handle < 1 || handle > sections.size()) {
            throw new IllegalArgumentException("no section " + handle);
        }
        return sections.get(handle - 1);
    }

    /** The finished patch, validated the same way {@link PatchFile#read} validates a file. */
    public PatchFile build() {
        var order = new ArrayList<Ref>();
        order.addAll(locals.stream().filter(r -> r.kind == Ref.Kind.SECTION).toList());
        order.addAll(locals.stream().filter(r -> r.kind == Ref.Kind.DEFINED).toList());
        order.addAll(targetRelative);
        order.addAll(externals);
        var symbols = new ArrayList<PatchSymbol>();
        for (int i = 0; i < order.size(); i++) {
            Ref r = order.get(i);
            r.index = i + 1;
            symbols.add(switch (r.kind) {
                case SECTION -> new PatchSymbol.SectionSymbol(r.index, r.name, r.section);
                case DEFINED -> new PatchSymbol.Defined(r.index, r.name, r.type, r.section, r.value, r.size);
                case TARGET -> new PatchSymbol.TargetRelative(r.index, r.name, r.type, r.value, r.size);
                case EXTERNAL -> new PatchSymbol.External(r.index, r.name, r.version, r.type, r.weak);
            });
        }
        var out = new ArrayList<PatchSection>();
        for (int i = 0; i < sections.size(); i++) {
            var d = sections.get(i);
            var relocs = d.relocations().stream()
                    .map(r -> new PatchRelocation(r.offset(), r.type(), symbols.get(r.symbol().index - 1), r.addend()))
                    .toList();
            out.add(new PatchSection(i + 1, d.name(), d.type(), d.flags(), d.align(), d.entsize(), d.size(),
                    d.bytes(), relocs));
        }
        var rep = replaced.stream().map(r -> new ReplacedFunction(r.symbol(), r.address(), r.size(), r.sha256(),
                (PatchSymbol.Defined) symbols.get(r.patchSymbol().index - 1), r.part())).toList();
        var add = added.stream().map(a -> new NewSymbol(a.kind(),
                (PatchSymbol.Defined) symbols.get(a.symbol().index - 1))).toList();
        var info = new PatchInfo(PatchFile.FORMAT_VERSION, id, targetBuildId, targetName, targetType);
        var patch = new PatchFile("<patch " + id + ">", info, out, symbols, rep, add, null);
        PatchRules.check(patch);
        return patch;
    }
}
