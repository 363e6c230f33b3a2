package dev.suture.generate;

import dev.suture.elf.Relocation;
import dev.suture.elf.Symbol;
import dev.suture.generate.Differ.Binding;
import dev.suture.generate.Differ.Changes;
import dev.suture.generate.Differ.Definition;
import dev.suture.generate.Differ.Pair;
import dev.suture.generate.Differ.SectionKey;
import dev.suture.generate.Differ.Status;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * Phase 8 of the diff: the sections the changed functions need, followed through their relocations and unwind
 * entries until nothing more is needed, and the functions and data the patch adds.
 *
 * @param sections sections going into the patch, in the order found
 * @param added    functions and data the patch adds (new, or absent from the target)
 * @param warnings what a person should know (a function the target lacks, carried as a copy)
 */
record Inclusion(Set<SectionKey> sections, Set<Definition> added, List<String> warnings) {

    /** What the changed functions need; {@code replaced} are those that get redirected. */
    static Inclusion of(Changes changes, List<Definition> replaced, List<Pair> pairs, Resolver resolver) {
        var included = new LinkedHashSet<SectionKey>();
        var added = new LinkedHashSet<Definition>();
        var warnings = new ArrayList<String>();
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
                    if (resolver.bind(p, r, Reference.of(p, r), code, false) instanceof Binding.InPatch in) {
                        work.add(in.section());
                    }
                }
            }
            // The unwind entries of included functions may need more (an LSDA, a personality pointer).
            int before = included.size();
            for (var pair : pairs) {
                for (var r : ehFrameReferences(pair.patched(), included)) {
                    if (resolver.bind(pair.patched(), r, Reference.of(pair.patched(), r), null, true)
                            instanceof Binding.InPatch in && !included.contains(in.section())) {
                        work.add(in.section());
                    }
                }
            }
            grew = !work.isEmpty() || included.size() != before;
        }
        for (var sec : included) {
            for (Symbol s : sec.object().owners(sec.index())) {
                var key = new Definition(sec.object(), s);
                boolean isReplaced = replaced.contains(key);
                if (!isReplaced && resolver.status(key) != Status.CHANGED) {
                    added.add(key);
                    if (resolver.status(key) == Status.SAME) {
                        warnings.add(key.describe() + " is not in " + resolver.target.name()
                                + "; the patch carries its own copy");
                    }
                } else if (!isReplaced && s.isFunction()) {
                    added.add(key);
                }
            }
        }
        return new Inclusion(Collections.unmodifiableSet(included), Collections.unmodifiableSet(added),
                List.copyOf(warnings));
    }

    /** The relocations of the CIEs and FDEs that describe included functions, except the FDEs' own start. */
    private static List<Relocation> ehFrameReferences(ObjectFile p, Set<SectionKey> included) {
        var eh = EhFrame.section(p);
        if (eh == null) {
            return List.of();
        }
        var relocs = p.relocations(eh.index());
        var out = new ArrayList<Relocation>();
        for (var e : EhFrame.kept(p, eh, relocs, included)) {
            for (var r : relocs) {
                if (r.r_offset() >= e.start() && r.r_offset() < e.end() && (e.isCie() || r.r_offset() != e.start() + 8)) {
                    out.add(r);
                }
            }
        }
        return out;
    }
}
