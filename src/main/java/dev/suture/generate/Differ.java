package dev.suture.generate;

import static dev.suture.elf.ElfConstants.*;

import dev.suture.SutureException;
import dev.suture.elf.Relocation;
import dev.suture.elf.Section;
import dev.suture.elf.Symbol;
import dev.suture.patch.Keys;
import dev.suture.patch.PatchFile;
import dev.suture.patch.PatchRelocation;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The object-level diff: from the objects of the original and the patched build and the deployed binary, decide
 * which functions changed, gather what they need, refuse what cannot be patched live, and make the patch. Each
 * phase is a function of what the earlier ones returned, in the order {@link #patch} runs them: open (1),
 * correlate (2), compare and mark (3, 4) here; resolve ({@link Resolver}, 5); verify (6) and check the deployed
 * binary (7) here; include ({@link Inclusion}, 8); assemble ({@link PatchAssembly}, 9).
 */
public final class Differ {
    private Differ() {}

    /** A function or variable of one object. */
    record Definition(ObjectFile object, Symbol symbol) {
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

    /**
     * The outcome of comparing: the status of every patched function and variable, refused data changes, and the
     * functions left as they are because only line numbers in them changed ({@link LineNumberChange}).
     */
    record Changes(Map<Definition, Status> status, List<Definition> changedFunctions, List<String> refusals,
                   List<Definition> lineOnly) {}

    /** Where a reference of the new code goes. */
    sealed interface Binding {
        /** Into the patch: a section of a patched object, at an offset; {@code symbol} when it names one. */
        record InPatch(SectionKey section, Definition symbol, long offset) implements Binding {}

        /** To a symbol of the deployed binary, plus an offset. */
        record InTarget(Symbol symbol, long offset) implements Binding {}

        /** To another module, by name, plus the addend. */
        record External(Symbol symbol, long offset) implements Binding {}

        /** To the word at {@code at} of .rodata.suture.tpoff (an initial-exec access to the executable's TLS). */
        record TpoffWord(int at, long offset) implements Binding {}
    }

    /**
     * The patch made in memory, what a person should know about it, where the target's symbols came from, and the
     * functions that changed only in line numbers and were left as they are.
     */
    public record Diff(PatchFile patch, List<String> warnings, SymbolSource symbols, List<String> lineOnly) {
        public Diff {
            warnings = List.copyOf(warnings);
            lineOnly = List.copyOf(lineOnly);
        }
    }

    /** Makes the patch for {@code request} in memory: the phases, in order. */
    public static Diff patch(DiffRequest request) {
        if (request.originalObjects().isEmpty() || request.patchedObjects().isEmpty()) {
            throw new SutureException(SutureException.Kind.BAD_INPUT,
                    "give the objects of both builds (--orig OBJ... --patched OBJ...)");
        }
        var target = TargetBinary.open(request.target(), request.rebuilt());
        var originals = openObjects(request.originalObjects());
        var patched = openObjects(request.patchedObjects());
        refuseUnsupportedObjects(originals);
        refuseUnsupportedObjects(patched);
        var pairs = pairObjects(originals, patched);
        var changes = compare(pairs);
        var resolver = new Resolver(target, request.linkOrder() ? originals : null, pairs, changes);
        var replacement = verify(changes, resolver, unpaired(pairs));
        var warnings = new ArrayList<>(checkDeployedMatchesOriginal(replacement.replaced(), resolver,
                request.force()));
        var inclusion = Inclusion.of(changes, replacement.replaced(), pairs, resolver);
        var patch = PatchAssembly.assemble(request.name(), pairs, resolver, replacement.replaced(), inclusion);
        warnings.addAll(replacement.warnings());
        warnings.addAll(inclusion.warnings());
        return new Diff(patch, warnings, target.source, lineOnlyNames(changes));
    }

    /** Makes the patch for {@code request} and writes it, unsigned, to {@code output}. */
    public static DiffResult diff(DiffRequest request, Path output) {
        return diff(request, output, null);
    }

    /**
     * Makes the patch for {@code request} and writes it once, signed by {@code signing} unless it is null, to
     * {@code output} (a directory: {@code <build-id>.suture} in it; null: that name in the current directory).
     */
    public static DiffResult diff(DiffRequest request, Path output, Keys.SigningKey signing) {
        var diff = patch(request);
        String name = diff.patch().targetBuildId() + ".suture";
        Path file = output == null ? Path.of(name) : Files.isDirectory(output) ? output.resolve(name) : output;
        var written = diff.patch().write(file, signing);
        var replaced = written.replaced().stream().filter(r -> !r.part()).map(r -> r.symbol()).toList();
        var added = written.added().stream().map(a -> a.symbol().name()).toList();
        return new DiffResult(file, written.id(), written.targetBuildId(), replaced, added, diff.lineOnly(),
                diff.warnings(), written.signature().orElse(null), diff.symbols());
    }

    // ---- phase 1: open -------------------------------------------------------------------------------------

    static List<ObjectFile> openObjects(List<DiffRequest.ObjectInput> inputs) {
        // Objects are independent: read them in parallel (the order of the result is the order given).
        return inputs.parallelStream().map(ObjectFile::open).toList();
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

    /**
     * Pairs each patched object with the original built from the same file: the same key, else the same last
     * name. An object without a key is known by its path relative to the directory all objects of its build are in.
     */
    static List<Pair> pairObjects(List<ObjectFile> originals, List<ObjectFile> patched) {
        if (originals.size() == 1 && patched.size() == 1) { // one object each: they are the same file's builds
            return List.of(new Pair(originals.getFirst(), patched.getFirst(),
                    Correlation.of(originals.getFirst(), patched.getFirst())));
        }
        var origByKey = byKey(originals);
        var patchedByKey = byKey(patched);
        var keyOf = new HashMap<ObjectFile, String>();
        origByKey.forEach((key, o) -> keyOf.put(o, key));
        var used = new HashSet<ObjectFile>();
        var pairs = new ArrayList<Pair>();
        for (var e : patchedByKey.entrySet()) {
            ObjectFile p = e.getValue();
            ObjectFile o = origByKey.get(e.getKey());
            if (o == null) {
                var sameName = originals.stream()
                        .filter(c -> lastName(keyOf.get(c)).equals(lastName(e.getKey()))).toList();
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

    /** The patched objects that no original corresponds to. */
    private static List<String> unpaired(List<Pair> pairs) {
        return pairs.stream().filter(p -> p.original() == null).map(p -> p.patched().toString()).toList();
    }

    private static String lastName(String key) {
        return key.substring(key.lastIndexOf('/') + 1);
    }

    private static Map<String, ObjectFile> byKey(List<ObjectFile> objects) {
        var relative = relativePaths(objects);
        var out = new LinkedHashMap<String, ObjectFile>();
        for (int i = 0; i < objects.size(); i++) {
            String key = objects.get(i).key != null ? objects.get(i).key : relative.get(i);
            if (out.put(key, objects.get(i)) != null) {
                throw new SutureException(SutureException.Kind.BAD_INPUT, objects.get(i) + " is given twice");
            }
        }
        return out;
    }

    /** Each object's path relative to the directory all of them are in. */
    private static List<String> relativePaths(List<ObjectFile> objects) {
        Path common = objects.getFirst().path.toAbsolutePath().normalize().getParent();
        for (var o : objects) {
            Path dir = o.path.toAbsolutePath().normalize().getParent();
            while (common != null && !dir.startsWith(common)) {
                common = common.getParent();
            }
        }
        var out = new ArrayList<String>();
        for (var o : objects) {
            Path abs = o.path.toAbsolutePath().normalize();
            out.add(common == null ? abs.toString() : common.relativize(abs).toString());
        }
        return out;
    }

    // ---- phase 3 and 4: compare symbolically, mark changed and new ----------------------------------------

    static Changes compare(List<Pair> pairs) {
        var status = new LinkedHashMap<Definition, Status>();
        var refusals = new ArrayList<String>();
        var lineOnly = new ArrayList<Definition>();
        // Each pair is compared on its own (in parallel); the results are merged in the order of the pairs.
        for (var part : pairs.parallelStream().map(Differ::compare).toList()) {
            status.putAll(part.status());
            refusals.addAll(part.refusals());
            lineOnly.addAll(part.lineOnly());
        }
        groupSplitParts(status);
        var changed = status.entrySet().stream()
                .filter(e -> e.getValue() == Status.CHANGED && e.getKey().symbol().isFunction())
                .map(Map.Entry::getKey).toList();
        // A line-only part of a function that changed goes with it after all.
        lineOnly.removeIf(d -> status.get(d) != Status.SAME);
        return new Changes(status, changed, refusals, lineOnly);
    }

    /** The functions left as they are because only line numbers changed in them, cold parts aside. */
    static List<String> lineOnlyNames(Changes changes) {
        return changes.lineOnly().stream().map(Definition::name).filter(n -> !Correlation.isColdPart(n)).toList();
    }

    /** The status of each function and variable of one patched object, and its refused data changes. */
    private static Changes compare(Pair pair) {
        var status = new LinkedHashMap<Definition, Status>();
        var refusals = new ArrayList<String>();
        var lineOnly = new ArrayList<Definition>();
        ObjectFile p = pair.patched();
        for (Symbol s : Correlation.definitions(p)) {
            Symbol o = pair.correlation().original(s);
            var key = new Definition(p, s);
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
            if (!same && s.isFunction() && s.st_size() == o.st_size()
                    && LineNumberChange.only(pair, o.st_shndx(), s.st_shndx())) {
                lineOnly.add(key);
                same = true;
            }
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
        return new Changes(status, List.of(), refusals, lineOnly);
    }

    /** A split part and its parent are one function: both go into the patch when either changed. */
    private static void groupSplitParts(Map<Definition, Status> status) {
        var parts = status.keySet().stream()
                .filter(k -> k.symbol().isFunction() && Correlation.isColdPart(k.name())).toList();
        if (parts.isEmpty()) {
            return;
        }
        var byObjectAndName = new HashMap<ObjectFile, Map<String, Definition>>();
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

    static boolean sameReference(Pair pair, Reference a, Reference b, int depth) {
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

    // ---- phase 6: verify what cannot be patched ----------------------------------------------------------

    /** The changed functions that get redirected, and what a person should know about the others. */
    record Replacement(List<Definition> replaced, List<String> warnings) {}

    /** Which changed functions the patch redirects; refuses a patch that cannot be made safe. */
    static Replacement verify(Changes changes, Resolver resolver, List<String> unpaired) {
        var target = resolver.target;
        var replaced = new ArrayList<Definition>();
        var warnings = new ArrayList<String>();
        var refusals = new ArrayList<>(changes.refusals());
        if (changes.changedFunctions().isEmpty() && refusals.isEmpty()) {
            var lineOnly = lineOnlyNames(changes);
            throw new DiffRefusedException(DiffRefusedException.Reason.NOTHING_CHANGED, lineOnly.isEmpty()
                    ? "no function changed between the original and the patched objects; "
                    + "there is nothing to patch (" + (unpaired.isEmpty()
                    ? "did the patched build pick up the change?)"
                    : "no original object corresponds to " + String.join(", ", unpaired) + ", so its functions "
                    + "count as new: give each object at the same path relative to its build for both builds)")
                    : lineOnly.size() + " functions changed only in line numbers (" + String.join(", ", lineOnly)
                    + ") and none in meaning; there is nothing to patch");
        }
        var unlocated = new ArrayList<String>();
        for (var f : changes.changedFunctions()) {
            var t = resolver.targetSymbol(f);
            if (t.isEmpty() && target.source == SymbolSource.EXPORTED) {
                unlocated.add(f.describe());
                continue;
            }
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
        if (!unlocated.isEmpty()) {
            throw new DiffRefusedException("cannot locate the changed function" + (unlocated.size() == 1 ? " " : "s ")
                    + String.join(", ", unlocated) + " in " + target.path + ": " + (unlocated.size() == 1 ? "it is" :
                    "they are") + " not exported, and without symbols only exported functions can be found.\n"
                    + target.unproven() + "\nInstall the package's debug symbols (its -dbgsym package), or rebuild"
                    + " with the compiler and flags that built it (docs/debian.md, \"When a package does not"
                    + " reproduce\").");
        }
        if (replaced.stream().noneMatch(f -> !Correlation.isColdPart(f.name())) && refusals.isEmpty()) {
            refusals.add("no changed function exists in " + target.name() + "; there is nothing to redirect");
        }
        if (!refusals.isEmpty()) {
            throw new DiffRefusedException("cannot make a live patch:\n  " + String.join("\n  ", refusals));
        }
        return new Replacement(replaced, warnings);
    }

    // ---- phase 7: the original build must be what is deployed --------------------------------------------

    /** Refuses (or, with {@code force}, warns) when a replaced function's original differs from the deployed one. */
    static List<String> checkDeployedMatchesOriginal(List<Definition> replaced, Resolver resolver, boolean force) {
        var target = resolver.target;
        var mismatches = new ArrayList<String>();
        for (var f : replaced) {
            Pair pair = resolver.pairOf(f.object());
            Symbol orig = pair.correlation().original(f.symbol());
            Symbol deployed = resolver.targetSymbol(f).orElseThrow();
            if (!resolver.matchesDeployed(pair.original(), orig, deployed)) {
                mismatches.add(String.format("%s at 0x%x in %s differs from %s in %s", f.name(),
                        deployed.st_value(), target.path, orig.name(), pair.original()));
            }
        }
        if (mismatches.isEmpty()) {
            return List.of();
        }
        String what = "the original build does not reproduce the deployed binary:\n  "
                + String.join("\n  ", mismatches);
        if (target.source == SymbolSource.EXPORTED) {
            // Without proven symbols the bytes are the only evidence: --force cannot stand in for them.
            throw new DiffRefusedException(what + "\n" + target.unproven() + "\nRebuild with the compiler and"
                    + " flags that built it (docs/debian.md, \"When a package does not reproduce\").");
        }
        if (!force) {
            throw new DiffRefusedException(what + "\nbuild the original from exactly the deployed sources and "
                    + "flags, or give --force to patch anyway");
        }
        return List.of(what + " (--force: patching anyway)");
    }
}
