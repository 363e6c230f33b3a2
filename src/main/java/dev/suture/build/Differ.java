package dev.suture.build;

import static dev.suture.elf.ElfConstants.*;

import dev.suture.SutureException;
import dev.suture.elf.Relocation;
import dev.suture.elf.Section;
import dev.suture.elf.Symbol;
import dev.suture.patch.NewSymbol;
import dev.suture.patch.PatchBuilder;
import dev.suture.patch.PatchFile;
import dev.suture.patch.PatchRelocation;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * The object-level diff: from the objects of the original and the patched build and the deployed binary, decide
 * which functions changed, gather what they need, refuse what cannot be patched live, and write the patch file.
 * Each phase is a method of its own, in the order {@link #diff} runs them.
 */
public final class Differ {
    private Differ() {}

    /** A function or variable of one object. */
    record Sym(ObjectFile object, Symbol symbol) {
        String name() {
            return symbol.name();
        }

        String describe() {
            return symbol.name() + " (" + object.sourceFile + ")";
        }
    }

    /** A section of one patched object. */
    record SectionKey(ObjectFile object, int index) {}

    /** An original object and the patched object built from the same source (original null: a new file). */
    record Pair(ObjectFile original, ObjectFile patched, Correlation correlation) {}

    enum Status { SAME, CHANGED, NEW }

    /** The outcome of comparing: the status of every patched function and variable, and refused data changes. */
    record Changes(Map<Sym, Status> status, List<Sym> changedFunctions, List<String> refusals) {}

    /** Where a reference of the new code goes. */
    sealed interface Binding {
        /** Into the patch: a section of a patched object, at an offset; {@code symbol} when it names one. */
        record InPatch(SectionKey section, Sym symbol, long offset) implements Binding {}

        /** To a symbol of the deployed binary, plus an offset. */
        record InTarget(Symbol symbol, long offset) implements Binding {}

        /** To another module, by name, plus the addend. */
        record External(Symbol symbol, long offset) implements Binding {}

        /** To the word at {@code at} of .rodata.suture.tpoff (an initial-exec access to the executable's TLS). */
        record TpoffWord(int at, long offset) implements Binding {}
    }

    /** Builds the patch for {@code request} and writes it to {@code output} (a directory: {@code <build-id>.suture} in it). */
    public static DiffResult diff(DiffRequest request, Path output) {
        if (request.originalObjects().isEmpty() || request.patchedObjects().isEmpty()) {
            throw new SutureException(SutureException.Kind.BAD_INPUT,
                    "give the objects of both builds (--orig OBJ... --patched OBJ...)");
        }
        var target = TargetBinary.open(request.target());
        var originals = openObjects(request.originalObjects());
        var patched = openObjects(request.patchedObjects());
        refuseUnsupportedObjects(originals);
        refuseUnsupportedObjects(patched);
        var pairs = pairObjects(originals, patched);
        var changes = compare(pairs);
        var session = new Session(target, pairs, changes);
        session.verify();
        var warnings = new ArrayList<String>(session.checkDeployedMatchesOriginal(request.force()));
        session.include();
        var patch = session.assemble(request.name());
        warnings.addAll(session.warnings);
        Path file = output == null ? Path.of(target.buildId + ".suture")
                : Files.isDirectory(output) ? output.resolve(target.buildId + ".suture") : output;
        try {
            patch.write(file);
        } catch (IOException e) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, "cannot write " + file + ": " + e.getMessage());
        }
        PatchFile.read(file); // what we wrote must read back as valid
        var replaced = patch.replaced().stream().filter(r -> !r.part()).map(r -> r.symbol()).toList();
        var added = patch.added().stream().map(a -> a.symbol().name()).toList();
        return new DiffResult(file, patch.id(), target.buildId, replaced, added, warnings);
    }

    // ---- phase 1: open -------------------------------------------------------------------------------------

    static List<ObjectFile> openObjects(List<Path> paths) {
        // Objects are independent: read them in parallel (the order of the result is the order given).
        return paths.parallelStream().map(ObjectFile::open).toList();
    }

    /** LTO objects carry no machine code to compare; objects without per-function sections cannot be cut apart. */
    static void refuseUnsupportedObjects(List<ObjectFile> objects) {
        for (var o : objects) {
            for (Section s : o.sections()) {
                if (s.name().startsWith(".gnu.lto_")) {
                    throw new DiffRefusedException(o + " is an LTO object (section " + s.name()
                            + "); build without -flto so the objects hold machine code");
                }
            }
            for (Symbol s : o.symbols()) {
                if (!s.inSection() || s.st_size() == 0) {
                    continue;
                }
                String section = o.section(s.st_shndx()).name();
                if (s.isFunction() && section.equals(".text")) {
                    throw new DiffRefusedException(o + ": function " + s.name() + " is in .text; compile with "
                            + "-ffunction-sections -fdata-sections so each function has its own section");
                }
                if ((s.isObject() || s.type() == STT_TLS) && List.of(".data", ".bss", ".rodata", ".tdata", ".tbss")
                        .contains(section)) {
                    throw new DiffRefusedException(o + ": variable " + s.name() + " is in " + section
                            + "; compile with -ffunction-sections -fdata-sections so each variable has its own section");
                }
            }
        }
    }

    // ---- phase 2: correlate ------------------------------------------------------------------------------

    /** Pairs each patched object with the original built from the same file: same relative path, else name. */
    static List<Pair> pairObjects(List<ObjectFile> originals, List<ObjectFile> patched) {
        var origByRel = byRelativePath(originals);
        var patchedRel = byRelativePath(patched);
        var used = new HashSet<ObjectFile>();
        var pairs = new ArrayList<Pair>();
        for (var e : patchedRel.entrySet()) {
            ObjectFile p = e.getValue();
            ObjectFile o = origByRel.get(e.getKey());
            if (o == null) {
                var sameName = originals.stream()
                        .filter(c -> c.path.getFileName().equals(p.path.getFileName())).toList();
                if (sameName.size() == 1) {
                    o = sameName.getFirst();
                }
            }
            if (o != null && !used.add(o)) {
                throw new SutureException(SutureException.Kind.BAD_INPUT, "two patched objects correspond to "
                        + o + "; give the objects in the same directory layout for both builds");
            }
            pairs.add(new Pair(o, p, null));
        }
        return pairs.parallelStream().map(x -> new Pair(x.original(), x.patched(),
                Correlation.of(x.original(), x.patched()))).toList();
    }

    private static Map<String, ObjectFile> byRelativePath(List<ObjectFile> objects) {
        Path common = objects.getFirst().path.toAbsolutePath().normalize().getParent();
        for (var o : objects) {
            Path dir = o.path.toAbsolutePath().normalize().getParent();
            while (common != null && !dir.startsWith(common)) {
                common = common.getParent();
            }
        }
        var out = new LinkedHashMap<String, ObjectFile>();
        for (var o : objects) {
            Path abs = o.path.toAbsolutePath().normalize();
            String rel = common == null ? abs.toString() : common.relativize(abs).toString();
            if (out.put(rel, o) != null) {
                throw new SutureException(SutureException.Kind.BAD_INPUT, o + " is given twice");
            }
        }
        return out;
    }

    // ---- phase 3 and 4: compare symbolically, mark changed and new ----------------------------------------

    static Changes compare(List<Pair> pairs) {
        var status = new LinkedHashMap<Sym, Status>();
        var refusals = new ArrayList<String>();
        // Each pair is compared on its own (in parallel); the results are merged in the order of the pairs.
        for (var part : pairs.parallelStream().map(Differ::compare).toList()) {
            status.putAll(part.status());
            refusals.addAll(part.refusals());
        }
        groupSplitParts(status);
        var changed = status.entrySet().stream()
                .filter(e -> e.getValue() == Status.CHANGED && e.getKey().symbol().isFunction())
                .map(Map.Entry::getKey).toList();
        return new Changes(status, changed, refusals);
    }

    /** The status of each function and variable of one patched object, and its refused data changes. */
    private static Changes compare(Pair pair) {
        var status = new LinkedHashMap<Sym, Status>();
        var refusals = new ArrayList<String>();
        ObjectFile p = pair.patched();
        for (Symbol s : Correlation.definitions(p)) {
            Symbol o = pair.correlation().original(s);
            var key = new Sym(p, s);
            if (o == null) {
                status.put(key, Status.NEW);
                if (s.type() == STT_TLS) {
                    refusals.add("changed TLS layout: new thread-local variable " + key.describe()
                            + "; a live patch cannot grow the TLS block of running threads");
                }
                continue;
            }
            boolean same = s.st_size() == o.st_size()
                    && sameContent(pair, o.st_shndx(), s.st_shndx(), 0);
            status.put(key, same ? Status.SAME : Status.CHANGED);
            if (!same && !s.isFunction()) {
                refusals.add(s.type() == STT_TLS
                        ? "changed TLS layout: thread-local variable " + key.describe() + " changed its size or "
                        + "initial value; running threads keep the old TLS block"
                        : "changed initial value or size of existing data: " + key.describe()
                        + (o.st_size() != s.st_size() ? " (" + o.st_size() + " -> " + s.st_size() + " bytes)" : "")
                        + "; the running program already holds it, so keep the old definition and change it"
                        + " from code");
            }
        }
        return new Changes(status, List.of(), refusals);
    }

    /** A split part and its parent are one function: both go into the patch when either changed. */
    private static void groupSplitParts(Map<Sym, Status> status) {
        var parts = status.keySet().stream()
                .filter(k -> k.symbol().isFunction() && Correlation.isColdPart(k.name())).toList();
        if (parts.isEmpty()) {
            return;
        }
        var byObjectAndName = new HashMap<ObjectFile, Map<String, Sym>>();
        status.keySet().forEach(k -> byObjectAndName.computeIfAbsent(k.object(), _ -> new HashMap<>())
                .put(k.name(), k));
        for (var k : parts) {
            var parent = byObjectAndName.get(k.object()).get(Correlation.parentName(k.name()));
            if (parent != null && (status.get(parent) == Status.CHANGED || status.get(k) == Status.CHANGED)) {
                status.put(parent, Status.CHANGED);
                if (status.get(k) == Status.SAME) {
                    status.put(k, Status.CHANGED);
                }
            }
        }
    }

    /** Whether two sections hold the same bytes outside relocated fields and equivalent relocations. */
    static boolean sameContent(Pair pair, int origSection, int patchedSection, int depth) {
        ObjectFile o = pair.original(), p = pair.patched();
        Section os = o.section(origSection), ps = p.section(patchedSection);
        if (os.sh_type() != ps.sh_type() || os.sh_size() != ps.sh_size()) {
            return false;
        }
        var orel = o.relocations(origSection);
        var prel = p.relocations(patchedSection);
        if (orel.size() != prel.size() || !Arrays.equals(masked(o, origSection), masked(p, patchedSection))) {
            return false;
        }
        for (int i = 0; i < orel.size(); i++) {
            Relocation a = orel.get(i), b = prel.get(i);
            if (a.r_offset() != b.r_offset() || a.type() != b.type()
                    || !sameReference(pair, Reference.of(o, a), Reference.of(p, b), depth)) {
                return false;
            }
        }
        return true;
    }

    private static boolean sameReference(Pair pair, Reference a, Reference b, int depth) {
        return switch (a) {
            case Reference.ToUndefined x when b instanceof Reference.ToUndefined y ->
                    x.symbol().name().equals(y.symbol().name()) && x.offset() == y.offset();
            case Reference.ToSymbol x when b instanceof Reference.ToSymbol y -> {
                Symbol o = pair.correlation().original(y.symbol());
                yield o != null && o.index() == x.symbol().index() && x.offset() == y.offset();
            }
            case Reference.ToLiteral x when b instanceof Reference.ToLiteral y -> x.sameAs(y);
            case Reference.ToSection x when b instanceof Reference.ToSection y ->
                    x.offset() == y.offset() && depth < 4
                            && loose(pair.original().section(x.section()).name())
                            .equals(loose(pair.patched().section(y.section()).name()))
                            && sameContent(pair, x.section(), y.section(), depth + 1);
            default -> false;
        };
    }

    private static String loose(String sectionName) {
        return sectionName.replaceAll("\\.\\d+", ".N");
    }

    /** The section's bytes with every relocated field zeroed: those are compared as relocations instead. */
    static byte[] masked(ObjectFile o, int section) {
        byte[] b = o.bytes(section).clone();
        for (var r : o.relocations(section)) {
            int width = PatchRelocation.width(r.type());
            for (int i = 0; i < width && r.r_offset() + i < b.length; i++) {
                b[(int) r.r_offset() + i] = 0;
            }
        }
        return b;
    }

    // ---- phases 5 to 9 over one diff's state -------------------------------------------------------------

    /** The state of one diff after comparison: inclusion, target resolution, checks and assembly. */
    static final class Session {
        final TargetBinary target;
        final List<Pair> pairs;
        final Changes changes;
        final List<String> warnings = new ArrayList<>();
        private final Map<ObjectFile, Pair> pairOf = new HashMap<>();
        private final Map<String, Sym> patchedGlobals = new HashMap<>();
        private final Map<Sym, Optional<Symbol>> targetSymbols = new HashMap<>();
        /** Changed functions with a counterpart in the target: these get replaced. */
        final List<Sym> replaced = new ArrayList<>();
        /** Sections going into the patch, in the order found. */
        final Set<SectionKey> included = new LinkedHashSet<>();
        /** Functions and data the patch adds (new, or absent from the target). */
        final Set<Sym> added = new LinkedHashSet<>();

        Session(TargetBinary target, List<Pair> pairs, Changes changes) {
            this.target = target;
            this.pairs = pairs;
            this.changes = changes;
            for (var p : pairs) {
                pairOf.put(p.patched(), p);
                for (Symbol s : Correlation.definitions(p.patched())) {
                    if (!s.isLocal()) {
                        patchedGlobals.putIfAbsent(s.name(), new Sym(p.patched(), s));
                    }
                }
            }
        }

        Status status(Sym s) {
            return changes.status().getOrDefault(s, Status.NEW);
        }

        // ---- phase 5: resolve against the deployed binary --------------------------------------------------

        /** The deployed binary's symbol for a patched function or variable that exists in the original build. */
        Optional<Symbol> targetSymbol(Sym s) {
            return targetSymbols.computeIfAbsent(s, k -> {
                Pair pair = pairOf.get(k.object());
                Symbol orig = pair == null || pair.original() == null ? null
                        : pair.correlation().original(k.symbol());
                if (orig == null) {
                    return Optional.empty();
                }
                ObjectFile o = pair.original();
                if (!orig.isLocal() && orig.visibility() != STV_HIDDEN && orig.visibility() != STV_INTERNAL) {
                    var g = target.global(orig.name());
                    if (g.isPresent()) {
                        return g;
                    }
                }
                var local = target.local(o.sourceFile, orig.name(),
                        candidate -> matchesDeployed(o, orig, candidate));
                return local.isPresent() ? local : target.global(orig.name());
            });
        }

        /** Whether the deployed bytes at {@code deployed} equal the original object's function, relocated fields aside. */
        boolean matchesDeployed(ObjectFile o, Symbol orig, Symbol deployed) {
            if (!orig.isFunction() || deployed.st_size() != orig.st_size()) {
                return false;
            }
            var bytes = target.bytes(deployed.st_value(), deployed.st_size());
            if (bytes.isEmpty()) {
                return false;
            }
            byte[] mine = Arrays.copyOfRange(o.bytes(orig.st_shndx()), (int) orig.st_value(),
                    (int) (orig.st_value() + orig.st_size()));
            byte[] theirs = bytes.get().clone();
            for (var r : o.relocations(orig.st_shndx())) {
                long at = r.r_offset() - orig.st_value();
                long[] range = linkerRewrites(r.type());
                for (long i = at + range[0]; i < at + range[1]; i++) {
                    if (i >= 0 && i < theirs.length) {
                        theirs[(int) i] = 0;
                        mine[(int) i] = 0;
                    }
                }
            }
            return Arrays.equals(mine, theirs);
        }

        /**
         * The bytes around a relocated field the linker may rewrite, relative to the field: the field itself, and
         * for the relaxable sequences (GOT loads, TLS models) the instruction bytes the linker turns into a cheaper
         * form when it links an executable.
         */
        static long[] linkerRewrites(int type) {
            return switch (type) {
                case R_X86_64_GOTTPOFF, R_X86_64_GOTPCRELX, R_X86_64_REX_GOTPCRELX, R_X86_64_GOTPC32_TLSDESC ->
                        new long[] {-3, 4};
                case R_X86_64_TLSGD -> new long[] {-4, 12};
                case R_X86_64_TLSLD -> new long[] {-3, 9};
                case R_X86_64_TLSDESC_CALL -> new long[] {0, 2};
                default -> new long[] {0, PatchRelocation.width(type)};
            };
        }

        // ---- phase 6: verify what cannot be patched ------------------------------------------------------

        void verify() {
            var refusals = new ArrayList<>(changes.refusals());
            if (changes.changedFunctions().isEmpty() && refusals.isEmpty()) {
                throw new DiffRefusedException(DiffRefusedException.Reason.NOTHING_CHANGED,
                        "no function changed between the original and the patched objects; "
                        + "there is nothing to patch (did the patched build pick up the change?)");
            }
            for (var f : changes.changedFunctions()) {
                var t = targetSymbol(f);
                if (t.isEmpty()) {
                    warnings.add(f.describe() + " changed but is not in " + target.name()
                            + " (inlined or discarded there); its callers carry the change");
                    continue;
                }
                if (!Correlation.isColdPart(f.name()) && t.get().st_size() < 5) {
                    refusals.add("function " + f.describe() + " is " + t.get().st_size() + " bytes in "
                            + target.name() + ", too short for the 5-byte jump that redirects it");
                }
                replaced.add(f);
            }
            if (replaced.stream().noneMatch(f -> !Correlation.isColdPart(f.name())) && refusals.isEmpty()) {
                refusals.add("no changed function exists in " + target.name() + "; there is nothing to redirect");
            }
            if (!refusals.isEmpty()) {
                throw new DiffRefusedException("cannot make a live patch:\n  " + String.join("\n  ", refusals));
            }
        }

        // ---- phase 7: the original build must be what is deployed ----------------------------------------

        List<String> checkDeployedMatchesOriginal(boolean force) {
            var mismatches = new ArrayList<String>();
            for (var f : replaced) {
                Pair pair = pairOf.get(f.object());
                Symbol orig = pair.correlation().original(f.symbol());
                Symbol deployed = targetSymbol(f).orElseThrow();
                if (!matchesDeployed(pair.original(), orig, deployed)) {
                    mismatches.add(String.format("%s at 0x%x in %s differs from %s in %s", f.name(),
                            deployed.st_value(), target.path, orig.name(), pair.original()));
                }
            }
            if (mismatches.isEmpty()) {
                return List.of();
            }
            String what = "the original build does not reproduce the deployed binary:\n  "
                    + String.join("\n  ", mismatches);
            if (!force) {
                throw new DiffRefusedException(what + "\nbuild the original from exactly the deployed sources and "
                        + "flags, or give --force to patch anyway");
            }
            return List.of(what + " (--force: patching anyway)");
        }

        // ---- phase 8: include what the changed functions need ------------------------------------------

        /** Where a relocation of the patched code at {@code r} should point. */
        Binding bind(ObjectFile p, Relocation r, Reference ref, byte[] code, boolean unwindInfo) {
            return switch (ref) {
                case Reference.ToSymbol t -> bindSymbol(new Sym(t.object(), t.symbol()), t.offset(), r, code,
                        unwindInfo);
                case Reference.ToUndefined u -> {
                    Sym def = patchedGlobals.get(u.symbol().name());
                    if (def != null) {
                        yield bindSymbol(def, u.offset(), r, code, unwindInfo);
                    }
                    var g = target.global(u.symbol().name());
                    yield g.isPresent() ? new Binding.InTarget(g.get(), u.offset())
                            : new Binding.External(u.symbol(), u.offset());
                }
                case Reference.ToLiteral l -> new Binding.InPatch(new SectionKey(p, l.section()), null,
                        r.symbol().st_value() + r.r_addend());
                case Reference.ToSection s -> new Binding.InPatch(new SectionKey(p, s.section()), null, s.offset());
            };
        }

        private Binding bindSymbol(Sym s, long offset, Relocation r, byte[] code, boolean unwindInfo) {
            var inPatch = new Binding.InPatch(new SectionKey(s.object(), s.symbol().st_shndx()), s, offset);
            return switch (status(s)) {
                case NEW -> inPatch;
                case CHANGED -> {
                    var t = targetSymbol(s);
                    // Taking the address of a replaced function keeps its old address (the program may compare
                    // or have stored it); calls, jumps and references into its middle go to the new code.
                    boolean addressOf = s.symbol().isFunction() && !unwindInfo
                            && offset + Reference.pcBias(r.type()) == 0
                            && (code == null || !Reference.isBranch(code, r.r_offset()));
                    yield addressOf && t.isPresent() ? new Binding.InTarget(t.get(), offset) : inPatch;
                }
                case SAME -> {
                    var t = targetSymbol(s);
                    yield t.isPresent() ? new Binding.InTarget(t.get(), offset) : inPatch;
                }
            };
        }

        void include() {
            var work = new ArrayList<SectionKey>();
            for (var f : changes.changedFunctions()) {
                work.add(new SectionKey(f.object(), f.symbol().st_shndx()));
            }
            boolean grew = true;
            while (grew) {
                while (!work.isEmpty()) {
                    var sec = work.removeLast();
                    if (!included.add(sec)) {
                        continue;
                    }
                    ObjectFile p = sec.object();
                    byte[] code = p.section(sec.index()).isExecutable() ? p.bytes(sec.index()) : null;
                    for (var r : p.relocations(sec.index())) {
                        if (bind(p, r, Reference.of(p, r), code, false) instanceof Binding.InPatch in) {
                            work.add(in.section());
                        }
                    }
                }
                // The unwind entries of included functions may need more (an LSDA, a personality pointer).
                int before = included.size();
                for (var pair : pairs) {
                    for (var r : ehFrameReferences(pair.patched())) {
                        if (bind(pair.patched(), r, Reference.of(pair.patched(), r), null, true)
                                instanceof Binding.InPatch in && !included.contains(in.section())) {
                            work.add(in.section());
                        }
                    }
                }
                grew = !work.isEmpty() || included.size() != before;
            }
            for (var sec : included) {
                for (Symbol s : sec.object().owners(sec.index())) {
                    var key = new Sym(sec.object(), s);
                    boolean isReplaced = replaced.contains(key);
                    if (!isReplaced && status(key) != Status.CHANGED) {
                        added.add(key);
                        if (status(key) == Status.SAME) {
                            warnings.add(key.describe() + " is not in " + target.name() + "; the patch carries its own copy");
                        }
                    } else if (!isReplaced && s.isFunction()) {
                        added.add(key);
                    }
                }
            }
        }

        /** The .eh_frame section of an object, if any. */
        private static Section ehFrameSection(ObjectFile o) {
            return o.elf.section(".eh_frame").orElse(null);
        }

        /** The relocations of the CIEs and FDEs that describe included functions, except the FDEs' own start. */
        private List<Relocation> ehFrameReferences(ObjectFile p) {
            var eh = ehFrameSection(p);
            if (eh == null) {
                return List.of();
            }
            var relocs = p.relocations(eh.index());
            var out = new ArrayList<Relocation>();
            for (var e : keptEhFrameEntries(p, eh, relocs)) {
                for (var r : relocs) {
                    if (r.r_offset() >= e.start() && r.r_offset() < e.end() && (e.isCie() || r.r_offset() != e.start() + 8)) {
                        out.add(r);
                    }
                }
            }
            return out;
        }

        /** The CIEs and FDEs to keep: FDEs of included sections, and their CIEs, in file order. */
        private List<EhFrame.Entry> keptEhFrameEntries(ObjectFile p, Section eh, List<Relocation> relocs) {
            var entries = EhFrame.entries(p, eh.index(), p.bytes(eh.index()));
            var keepCies = new HashSet<Integer>();
            var kept = new ArrayList<EhFrame.Entry>();
            for (var e : entries) {
                if (e.isCie()) {
                    continue;
                }
                var pc = EhFrame.pcBegin(relocs, e);
                if (pc != null && pc.symbol() != null && pc.symbol().inSection()
                        && included.contains(new SectionKey(p, pc.symbol().st_shndx()))) {
                    kept.add(e);
                    keepCies.add(e.cie());
                }
            }
            var out = new ArrayList<EhFrame.Entry>();
            for (var e : entries) {
                if (e.isCie() ? keepCies.contains(e.start()) : kept.contains(e)) {
                    out.add(e);
                }
            }
            return out;
        }

        // ---- phase 9: assemble the patch ---------------------------------------------------------------

        private record Pending(SectionKey from, long offset, int type, Binding binding) {}

        PatchFile assemble(String requestedId) {
            var order = new ArrayList<>(included);
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
                    var b = bind(p, r, Reference.of(p, r), code ? p.bytes(k.index()) : null, false);
                    pending.add(resolveTls(k, r, b, bytes, tpoff, tpoffSymbols));
                }
            }
            // .eh_frame: the kept records of every object, one after the other, CIE pointers recomputed.
            var eh = new ByteArrayOutputStream();
            var ehPending = new ArrayList<Pending>();
            int ehType = SHT_PROGBITS;
            for (var pair : pairs) {
                ObjectFile p = pair.patched();
                Section ehs = ehFrameSection(p);
                if (ehs == null) {
                    continue;
                }
                ehType = ehs.sh_type();
                var relocs = p.relocations(ehs.index());
                byte[] src = p.bytes(ehs.index());
                var newStart = new HashMap<Integer, Integer>();
                for (var e : keptEhFrameEntries(p, ehs, relocs)) {
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
                            var b = bind(p, r, Reference.of(p, r), null, true);
                            ehPending.add(new Pending(null, at + r.r_offset() - e.start(), r.type(), b));
                        }
                    }
                }
            }

            String id = requestedId != null ? requestedId : derivedId(contents);
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
            int ehSection = eh.size() == 0 ? -1 : builder.addSection(".eh_frame", ehType, SHF_ALLOC, 8, 0,
                    eh.toByteArray(), eh.size());
            var defined = new HashMap<Sym, PatchBuilder.Ref>();
            for (var k : order) {
                for (Symbol s : k.object().owners(k.index())) {
                    defined.put(new Sym(k.object(), s),
                            builder.defined(s.name(), s.type(), handles.get(k), s.st_value(), s.st_size()));
                }
            }
            var tpoffRefs = new HashMap<Integer, PatchBuilder.Ref>();
            tpoffSymbols.forEach((name, at) -> tpoffRefs.put(at,
                    builder.defined(name + "@tpoff", STT_OBJECT, tpoffSection, at, 8)));
            for (var pr : pending) {
                if (pr.binding() != null) {
                    emit(builder, handles.get(pr.from()), pr, handles, defined, tpoffRefs, tpoffSection);
                }
            }
            for (var pr : ehPending) {
                emit(builder, ehSection, pr, handles, defined, tpoffRefs, tpoffSection);
            }
            for (var f : replaced) {
                Symbol t = targetSymbol(f).orElseThrow();
                byte[] original = target.bytes(t.st_value(), t.st_size()).orElseThrow(() -> new DiffRefusedException(
                        f.name() + " at 0x" + Long.toHexString(t.st_value()) + " is outside every loaded segment of "
                                + target.path));
                builder.replaced(t.name(), t.st_value(), t.st_size(), PatchFile.sha256(original), defined.get(f),
                        Correlation.isColdPart(f.name()));
            }
            for (var a : added) {
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
        private Pending resolveTls(SectionKey k, Relocation r, Binding b, byte[] bytes, ByteArrayOutputStream tpoff,
                                   Map<String, Integer> tpoffSymbols) {
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

        private void emit(PatchBuilder builder, int section, Pending pr, Map<SectionKey, Integer> handles,
                          Map<Sym, PatchBuilder.Ref> defined, Map<Integer, PatchBuilder.Ref> tpoffRefs,
                          int tpoffSection) {
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
                    var imported = target.imported(e.symbol().name());
                    String version = imported.map(Symbol::version).orElse(null);
                    int type = imported.map(Symbol::type).filter(t -> t != STT_NOTYPE).orElse(e.symbol().type());
                    builder.relocate(section, pr.offset(), pr.type(),
                            builder.external(e.symbol().name(), version, type == STT_GNU_IFUNC ? STT_FUNC : type,
                                    e.symbol().isWeak()), e.offset());
                }
                case Binding.TpoffWord w -> builder.relocate(section, pr.offset(), pr.type(), tpoffRefs.get(w.at()),
                        w.offset());
            }
        }

        /** A short id from the target's name and the patch content, when none was given. */
        private String derivedId(Map<SectionKey, byte[]> contents) {
            try {
                var md = java.security.MessageDigest.getInstance("SHA-256");
                for (var e : contents.entrySet()) {
                    md.update(e.getKey().object().section(e.getKey().index()).name().getBytes(StandardCharsets.UTF_8));
                    md.update(e.getValue());
                }
                String hex = java.util.HexFormat.of().formatHex(md.digest()).substring(0, 12);
                String base = target.name().replaceAll("[^A-Za-z0-9._+-]", "_");
                return (base.length() > 100 ? base.substring(0, 100) : base) + "-" + hex;
            } catch (java.security.NoSuchAlgorithmException e) {
                throw new IllegalStateException(e);
            }
        }
    }
}
