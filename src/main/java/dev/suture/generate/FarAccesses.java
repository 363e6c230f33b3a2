package dev.suture.generate;

import static dev.suture.elf.ElfConstants.*;

import dev.suture.elf.Symbol;
import dev.suture.generate.Differ.Binding;
import dev.suture.generate.Differ.SectionKey;
import dev.suture.generate.PatchAssembly.Pending;
import dev.suture.x86.Decoder;
import dev.suture.x86.DoesNotFitException;
import dev.suture.x86.FarAccess;
import dev.suture.x86.Instruction;
import dev.suture.x86.UndecodableException;
import java.io.ByteArrayOutputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Part of phase 9: code that reaches a variable of another module with a 32-bit field. gcc compiles {@code
 * fprintf(stderr, ...)} in an executable as {@code mov stderr(%rip),%rdi} (and {@code &environ} in a non-PIE one as
 * {@code mov $environ,%edi}), assuming the linker gives the program a copy of the variable; a live patch gets no
 * copy, and the library's variable is out of reach. Each such instruction becomes a jump to a thunk in the patch's
 * {@code .text.suture.far} section, which takes the address from a GOT slot ({@code R_X86_64_GOTPCREL}, bound at
 * apply time like any) and does what the instruction did ({@link FarAccess}). An instruction that cannot be
 * rewritten is refused here, at diff time.
 */
final class FarAccesses {
    static final String SECTION = ".text.suture.far";
    private static final int ALIGN = 16;
    private static final byte INT3 = (byte) 0xcc;

    /** A rel32 at {@code offset} of {@code site} that must reach {@code thunkOffset} in the thunk section. */
    record ToThunk(SectionKey site, long offset, long thunkOffset) {}

    /** A rel32 at {@code offset} of the thunk section that must reach {@code target} in {@code site}. */
    record Back(long offset, SectionKey site, long target) {}

    /**
     * What the phase made: the relocations left as they were ({@code kept}; branches to other modules' functions
     * made {@code R_X86_64_PLT32}), the thunks' bytes, and the relocations they need: into the thunk section
     * ({@code inThunks}, with {@code from} null), from the sites to the thunks, and back.
     */
    record Routed(List<Pending> kept, byte[] thunks, List<Pending> inThunks, List<ToThunk> toThunks,
                  List<Back> backs) {}

    private FarAccesses() {}

    static Routed route(TargetBinary target, List<Pending> pending, Map<SectionKey, byte[]> contents) {
        var kept = new ArrayList<Pending>();
        var far = new ArrayList<Pending>();
        for (var p : pending) {
            if (isFar(target, p)) {
                far.add(p);
            } else {
                kept.add(p);
            }
        }
        var thunks = new ByteArrayOutputStream();
        var inThunks = new ArrayList<Pending>();
        var toThunks = new ArrayList<ToThunk>();
        var backs = new ArrayList<Back>();
        for (var p : far) {
            SectionKey k = p.from();
            byte[] original = k.object().bytes(k.index());
            Instruction insn = instructionAt(k, original, p.offset());
            var e = (Binding.External) p.binding();
            if (p.type() == R_X86_64_PC32 && isBranch(original, insn)) {
                kept.add(new Pending(k, p.offset(), R_X86_64_PLT32, e));
                continue;
            }
            FarAccess.Rewrite w;
            try {
                w = FarAccess.rewrite(original, insn, (int) p.offset(), e.offset(), p.type() == R_X86_64_PC32);
            } catch (DoesNotFitException ex) {
                throw refuse(k, p, e, ex.getMessage());
            }
            while (thunks.size() % ALIGN != 0) {
                thunks.write(INT3);
            }
            int at = thunks.size();
            thunks.writeBytes(w.thunk());
            System.arraycopy(w.site(), 0, contents.get(k), insn.start(), w.site().length);
            toThunks.add(new ToThunk(k, insn.start() + w.siteField(), at));
            inThunks.add(new Pending(null, at + w.gotField(), R_X86_64_GOTPCREL,
                    new Binding.External(e.symbol(), -4)));
            if (w.backField() >= 0) {
                backs.add(new Back(at + w.backField(), k, insn.end()));
            }
            // another relocated field of the same instruction (movq $x, var(%rip)) moves with its copy
            for (var other : pending) {
                if (other != p && other.from() == k && other.offset() >= insn.start() && other.offset() < insn.end()) {
                    if (w.copy() < 0 || far.contains(other)) {
                        throw refuse(k, p, e, "the instruction has a second relocated field");
                    }
                    kept.remove(other);
                    inThunks.add(new Pending(null, at + w.copy() + other.offset() - insn.start(), other.type(),
                            other.binding()));
                }
            }
        }
        return new Routed(kept, thunks.toByteArray(), inThunks, toThunks, backs);
    }

    /**
     * A 32-bit field of code against another module's symbol that is not a function the binder reaches through its
     * jump table: a variable (or a function's address in a non-PIE move), which may lie anywhere.
     */
    private static boolean isFar(TargetBinary target, Pending p) {
        if (p.from() == null || !(p.binding() instanceof Binding.External e)
                || !p.from().object().section(p.from().index()).isExecutable()) {
            return false;
        }
        return switch (p.type()) {
            case R_X86_64_PC32 -> {
                int type = PatchAssembly.externalType(target, e.symbol());
                yield type != STT_FUNC && type != STT_GNU_IFUNC;
            }
            case R_X86_64_32, R_X86_64_32S -> true;
            default -> false;
        };
    }

    /** Decodes the function holding {@code offset} from its start, up to the instruction holding the field. */
    private static Instruction instructionAt(SectionKey k, byte[] code, long offset) {
        Symbol owner = k.object().owner(k.index(), offset);
        int at = owner == null ? 0 : (int) owner.st_value();
        int end = owner == null ? code.length : (int) Math.min(code.length, owner.st_value() + owner.st_size());
        try {
            for (;;) {
                Instruction insn = Decoder.decode(code, at, end);
                if (offset < insn.end()) {
                    return insn;
                }
                at = insn.end();
            }
        } catch (DoesNotFitException | UndecodableException ex) {
            String where = owner == null ? k.object().section(k.index()).name() : owner.name();
            throw new DiffRefusedException(where + " (" + k.object().sourceFile + ") reaches a variable of another"
                    + " module at 0x" + Long.toHexString(offset) + ", and suture " + ex.getMessage());
        }
    }

    private static boolean isBranch(byte[] code, Instruction insn) {
        int op = insn.opcodeByte(code);
        return insn.map() == 0 && (op == 0xe8 || op == 0xe9) || insn.map() == 1 && op >= 0x80 && op <= 0x8f;
    }

    private static DiffRefusedException refuse(SectionKey k, Pending p, Binding.External e, String why) {
        Symbol owner = k.object().owner(k.index(), p.offset());
        String where = owner == null ? k.object().section(k.index()).name() : owner.name();
        return new DiffRefusedException(String.format("%s (%s) reaches %s of another module at 0x%x with a 32-bit"
                + " field, which cannot reach it in a live patch; %s. Rebuild that file with -fPIC, or change the"
                + " access", where, k.object().sourceFile, e.symbol().name(), p.offset(), why));
    }
}
