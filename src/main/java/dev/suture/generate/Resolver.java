package dev.suture.generate;

import static dev.suture.elf.ElfConstants.*;

import dev.suture.elf.Relocation;
import dev.suture.elf.Symbol;
import dev.suture.generate.Differ.Binding;
import dev.suture.generate.Differ.Changes;
import dev.suture.generate.Differ.Definition;
import dev.suture.generate.Differ.Pair;
import dev.suture.generate.Differ.SectionKey;
import dev.suture.generate.Differ.Status;
import dev.suture.patch.PatchRelocation;

import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Phase 5 of the diff: where the patched code's functions, variables and references go — the deployed binary's
 * symbol for each patched definition that exists in the original build, and for each relocation whether it binds
 * into the patch, to the target or to another module. Built once from the compared objects; the later phases ask it.
 */
final class Resolver {
    final TargetBinary target;
    private final Changes changes;
    /** The original objects in link order (null: the order is not known). */
    private final List<ObjectFile> linkOrder;
    private final Map<ObjectFile, Pair> pairOf = new HashMap<>();
    private final Map<String, Definition> patchedGlobals = new HashMap<>();
    /** A cache: the answer for a symbol never changes. */
    private final Map<Definition, Optional<Symbol>> targetSymbols = new HashMap<>();

    /** {@code linkOrder}: every original object in the order the link took them, or null when that is not known. */
    Resolver(TargetBinary target, List<ObjectFile> linkOrder, List<Pair> pairs, Changes changes) {
        this.target = target;
        this.changes = changes;
        this.linkOrder = linkOrder == null ? null : List.copyOf(linkOrder);
        for (var p : pairs) {
            pairOf.put(p.patched(), p);
            for (Symbol s : Correlation.definitions(p.patched())) {
                if (!s.isLocal()) {
                    patchedGlobals.putIfAbsent(s.name(), new Definition(p.patched(), s));
                }
            }
        }
    }

    Status status(Definition s) {
        return changes.status().getOrDefault(s, Status.NEW);
    }

    /** The original-build pair of a patched object. */
    Pair pairOf(ObjectFile patched) {
        return pairOf.get(patched);
    }

    /** The deployed binary's symbol for a patched function or variable that exists in the original build. */
    Optional<Symbol> targetSymbol(Definition s) {
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
            var local = target.local(origin(o), orig.name(), candidate -> matchesDeployed(o, orig, candidate));
            return local.isPresent() ? local : target.global(orig.name());
        });
    }

    /** Which of the same-named source files {@code o} is, by its place in link order (-1: not known). */
    private TargetBinary.Origin origin(ObjectFile o) {
        if (linkOrder == null) {
            return new TargetBinary.Origin(o.sourceFile, o.toString(), -1, 0);
        }
        var siblings = linkOrder.stream().filter(x -> x.sourceFile.equals(o.sourceFile)).toList();
        return new TargetBinary.Origin(o.sourceFile, o.toString(), siblings.indexOf(o), siblings.size());
    }

    /**
     * Whether the deployed bytes at {@code deployed} equal the original object's function or variable, relocated
     * fields aside (a variable without initial bytes, in .bss, is zeros in both). Thread-local variables, whose
     * value is an offset in the TLS block rather than an address, are never proven this way.
     */
    boolean matchesDeployed(ObjectFile o, Symbol orig, Symbol deployed) {
        if (!(orig.isFunction() || orig.isObject()) || deployed.type() == STT_TLS
                || deployed.st_size() != orig.st_size() || orig.st_size() > Integer.MAX_VALUE) {
            return false;
        }
        var bytes = target.bytes(deployed.st_value(), deployed.st_size());
        if (bytes.isEmpty()) {
            return false;
        }
        byte[] section = o.bytes(orig.st_shndx());
        byte[] mine = new byte[(int) orig.st_size()];
        if (!o.section(orig.st_shndx()).isNobits()) {
            if (orig.st_value() < 0 || orig.st_value() + orig.st_size() > section.length) {
                return false;
            }
            System.arraycopy(section, (int) orig.st_value(), mine, 0, mine.length);
        }
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

    /** Where a relocation of the patched code at {@code r} should point. */
    Binding bind(ObjectFile p, Relocation r, Reference ref, byte[] code, boolean unwindInfo) {
        return switch (ref) {
            case Reference.ToSymbol t -> bindSymbol(new Definition(t.object(), t.symbol()), t.offset(), r, code,
                    unwindInfo);
            case Reference.ToUndefined u -> {
                Definition def = patchedGlobals.get(u.symbol().name());
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

    private Binding bindSymbol(Definition s, long offset, Relocation r, byte[] code, boolean unwindInfo) {
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
                if (t.isEmpty() && target.source == SymbolSource.EXPORTED) {
                    // A copy in the patch would be a second instance of what the running program already has.
                    throw new DiffRefusedException("the patched code uses " + s.describe() + ", which " + target.path
                            + " does not export; without its symbols it cannot be located there.\n"
                            + target.unproven());
                }
                yield t.isPresent() ? new Binding.InTarget(t.get(), offset) : inPatch;
            }
        };
    }
}
