package dev.suture.unwind;

import static dev.suture.unwind.Dwarf.*;

import java.util.Arrays;

/**
 * Executes the CFA program of an FDE up to a pc and holds the resulting row: the {@link CfaRule} and one
 * {@link RegisterRule} per tracked register (DWARF numbers 0..16 of x86-64). One context is reused for every
 * frame, and so are its rule objects (immutable, {@link Interned} per context): a row is an array of references
 * and {@code DW_CFA_remember_state} pushes it onto a fixed-depth stack, so evaluating allocates nothing once the
 * rules of a module have been met. Programs are bounded in steps and state depth; exceeding a bound is an
 * {@link UnwindException}.
 */
public final class UnwindContext {
    static final int MAX_OPS = 10_000;
    static final int MAX_STATES = 64;

    private static final int N = REGISTER_COUNT;
    private static final RegisterRule UNDEFINED = new RegisterRule.Undefined();
    private static final RegisterRule SAME_VALUE = new RegisterRule.SameValue();

    private final Interned<RegisterRule> offsets = new Interned<>((n, _) -> new RegisterRule.Offset(n));
    private final Interned<RegisterRule> valOffsets = new Interned<>((n, _) -> new RegisterRule.ValOffset(n));
    private final Interned<RegisterRule> registers = new Interned<>((r, _) -> new RegisterRule.Register((int) r));
    private final Interned<RegisterRule> expressions =
            new Interned<>((start, end) -> new RegisterRule.Expression((int) start, (int) end));
    private final Interned<RegisterRule> valExpressions =
            new Interned<>((start, end) -> new RegisterRule.ValExpression((int) start, (int) end));
    private final Interned<CfaRule> cfaRules =
            new Interned<>((r, offset) -> new CfaRule.RegisterAndOffset((int) r, offset));
    private final Interned<CfaRule> cfaExpressions =
            new Interned<>((start, end) -> new CfaRule.Expression((int) start, (int) end));

    // the current row
    private final RegisterRule[] rules = new RegisterRule[N];
    private CfaRule cfa;

    // the row after the CIE's initial instructions, for DW_CFA_restore: initialRow[initialAt ..], a kept row
    // below or, when the CIE's row is not kept, unkeptRules
    private final RegisterRule[] unkeptRules = new RegisterRule[N];
    private RegisterRule[] initialRow;
    private int initialAt;

    // the rows of the CIEs met last, one slot per CIE by identity hash: a stack's frames go from module to module,
    // most FDEs of a module share a CIE, and a CIE's program gives the same row whatever the FDE, unless it moves
    // the location (DW_CFA_set_loc is checked against the FDE's start)
    private static final int KEPT = 16;
    private final CommonInformationEntry[] keptCie = new CommonInformationEntry[KEPT];
    private final RegisterRule[] keptRules = new RegisterRule[KEPT * N];
    private final CfaRule[] keptCfa = new CfaRule[KEPT];
    private final long[] keptArgsSize = new long[KEPT];
    private final int[] keptBudget = new int[KEPT];
    private boolean movedLocation;

    // DW_CFA_remember_state stack: whole rows, the CFA rule included (DWARF 5)
    private final RegisterRule[] savedRules = new RegisterRule[MAX_STATES * N];
    private final CfaRule[] savedCfa = new CfaRule[MAX_STATES];
    private int depth;

    private final ByteCursor cursor = new ByteCursor(new byte[0], "");
    private CallFrameSection section;
    private FrameDescriptionEntry fde;
    private long argsSize;
    private int budget;

    /** The section whose bytes the current row's expressions refer to. */
    CallFrameSection section() {
        return section;
    }

    FrameDescriptionEntry fde() {
        return fde;
    }

    /** Computes the row of {@code fde} (in {@code section}) that applies at link-time {@code pc}. */
    public void evaluate(CallFrameSection section, FrameDescriptionEntry fde, long pc) {
        this.section = section;
        this.fde = fde;
        CommonInformationEntry cie = fde.cie();
        if (cie.returnAddressRegister() >= N) {
            throw new UnwindException(section.name() + ": CIE at offset 0x" + Integer.toHexString(cie.offset())
                    + " names return address register " + cie.returnAddressRegister() + ", not an x86-64 one");
        }
        int slot = System.identityHashCode(cie) & (KEPT - 1);
        if (keptCie[slot] == cie) {
            System.arraycopy(keptRules, slot * N, rules, 0, N);
            initialRow = keptRules;
            initialAt = slot * N;
            cfa = keptCfa[slot];
            argsSize = keptArgsSize[slot];
            budget = keptBudget[slot];
        } else {
            keptCie[slot] = null;
            Arrays.fill(rules, SAME_VALUE);
            cfa = cfaRules.get(RSP, 8);
            depth = 0;
            argsSize = 0;
            budget = MAX_OPS;
            movedLocation = false;
            cursor.reset(section.bytes(), section.name(), cie.instructionsStart(), cie.instructionsEnd());
            run(cie, fde.pcBegin(), -1L, true);
            if (movedLocation) {
                System.arraycopy(rules, 0, unkeptRules, 0, N);
                initialRow = unkeptRules;
                initialAt = 0;
            } else {
                System.arraycopy(rules, 0, keptRules, slot * N, N);
                initialRow = keptRules;
                initialAt = slot * N;
                keptCfa[slot] = cfa;
                keptArgsSize[slot] = argsSize;
                keptBudget[slot] = budget;
                keptCie[slot] = cie;
            }
        }
        depth = 0;
        cursor.reset(section.bytes(), section.name(), fde.instructionsStart(), fde.instructionsEnd());
        run(cie, fde.pcBegin(), pc, false);
    }

    /** Runs instructions from the cursor until it is exhausted or the location passes {@code pc}. */
    private void run(CommonInformationEntry cie, long loc, long pc, boolean initial) {
        long caf = cie.codeAlignmentFactor();
        long daf = cie.dataAlignmentFactor();
        while (cursor.hasMore()) {
            if (--budget < 0) {
                throw fail("CFA program exceeds " + MAX_OPS + " instructions");
            }
            int op = cursor.u8();
            int high = op & 0xc0;
            int low = op & 0x3f;
            if (high == DW_CFA_advance_loc) {
                loc += low * caf;
                if (!initial && Long.compareUnsigned(loc, pc) > 0) {
                    return;
                }
                continue;
            }
            if (high == DW_CFA_offset) {
                set(low, offsets.get(cursor.uleb128() * daf, 0));
                continue;
            }
            if (high == DW_CFA_restore) {
                restore(low, initial);
                continue;
            }
            switch (op) {
                case DW_CFA_nop -> {}
                case DW_CFA_set_loc -> {
                    long newLoc = section.isDebugFrame()
                            ? (cie.addressSize() == 4 ? cursor.u32() : cursor.u64())
                            : cursor.encoded(cie.fdeEncoding(), section.address(), section.bases());
                    if (Long.compareUnsigned(newLoc, loc) < 0) {
                        throw fail("DW_CFA_set_loc moves backwards");
                    }
                    movedLocation = true;
                    loc = newLoc;
                    if (!initial && Long.compareUnsigned(loc, pc) > 0) {
                        return;
                    }
                }
                case DW_CFA_advance_loc1, DW_CFA_advance_loc2, DW_CFA_advance_loc4 -> {
                    long delta = op == DW_CFA_advance_loc1 ? cursor.u8() : op == DW_CFA_advance_loc2 ? cursor.u16() : cursor.u32();
                    loc += delta * caf;
                    if (!initial && Long.compareUnsigned(loc, pc) > 0) {
                        return;
                    }
                }
                case DW_CFA_offset_extended -> set(cursor.register(), offsets.get(cursor.uleb128() * daf, 0));
                case DW_CFA_offset_extended_sf -> set(cursor.register(), offsets.get(cursor.sleb128() * daf, 0));
                case DW_CFA_GNU_negative_offset_extended ->
                        set(cursor.register(), offsets.get(-(cursor.uleb128() * daf), 0));
                case DW_CFA_val_offset -> set(cursor.register(), valOffsets.get(cursor.uleb128() * daf, 0));
                case DW_CFA_val_offset_sf -> set(cursor.register(), valOffsets.get(cursor.sleb128() * daf, 0));
                case DW_CFA_restore_extended -> restore(cursor.register(), initial);
                case DW_CFA_undefined -> set(cursor.register(), UNDEFINED);
                case DW_CFA_same_value -> set(cursor.register(), SAME_VALUE);
                case DW_CFA_register -> {
                    int r = cursor.register();
                    set(r, registers.get(cursor.register(), 0));
                }
                case DW_CFA_remember_state -> remember();
                case DW_CFA_restore_state -> restoreState();
                case DW_CFA_def_cfa -> {
                    int r = cursor.register();
                    cfa = cfaRules.get(r, cursor.uleb128());
                }
                case DW_CFA_def_cfa_sf -> {
                    int r = cursor.register();
                    cfa = cfaRules.get(r, cursor.sleb128() * daf);
                }
                case DW_CFA_def_cfa_register -> {
                    long offset = registerCfa(op).offset();
                    cfa = cfaRules.get(cursor.register(), offset);
                }
                case DW_CFA_def_cfa_offset -> cfa = cfaRules.get(registerCfa(op).register(), cursor.uleb128());
                case DW_CFA_def_cfa_offset_sf ->
                        cfa = cfaRules.get(registerCfa(op).register(), cursor.sleb128() * daf);
                case DW_CFA_def_cfa_expression -> {
                    long length = cursor.uleb128();
                    int start = cursor.skip(length);
                    cfa = cfaExpressions.get(start, cursor.position());
                }
                case DW_CFA_expression, DW_CFA_val_expression -> {
                    int r = cursor.register();
                    long length = cursor.uleb128();
                    int start = cursor.skip(length);
                    set(r, (op == DW_CFA_expression ? expressions : valExpressions).get(start, cursor.position()));
                }
                case DW_CFA_GNU_args_size -> argsSize = cursor.uleb128();
                default -> throw fail("unknown call frame instruction 0x" + Integer.toHexString(op) + " at offset 0x"
                        + Integer.toHexString(cursor.position() - 1));
            }
        }
    }

    /** The CFA rule, which instruction {@code op} changes in part: only a register-and-offset rule has parts. */
    private CfaRule.RegisterAndOffset registerCfa(int op) {
        if (cfa instanceof CfaRule.RegisterAndOffset r) {
            return r;
        }
        throw fail("instruction 0x" + Integer.toHexString(op) + " changes a CFA that is an expression");
    }

    private void set(int register, RegisterRule rule) {
        if (register < N) {
            rules[register] = rule;
        }
        // rules for vector and other registers are parsed and dropped: unwinding never needs them
    }

    private void restore(int register, boolean initial) {
        if (initial) {
            throw fail("DW_CFA_restore in a CIE's initial instructions");
        }
        if (register < N) {
            rules[register] = initialRow[initialAt + register];
        }
    }

    private void remember() {
        if (depth == MAX_STATES) {
            throw fail("more than " + MAX_STATES + " nested DW_CFA_remember_state");
        }
        System.arraycopy(rules, 0, savedRules, depth * N, N);
        savedCfa[depth] = cfa;
        depth++;
    }

    private void restoreState() {
        if (depth == 0) {
            throw fail("DW_CFA_restore_state without a remembered state");
        }
        depth--;
        System.arraycopy(savedRules, depth * N, rules, 0, N);
        cfa = savedCfa[depth];
    }

    private UnwindException fail(String message) {
        return new UnwindException(section.name() + ": FDE at offset 0x" + Integer.toHexString(fde.offset())
                + " (pc 0x" + Long.toHexString(fde.pcBegin()) + "): " + message);
    }

    /** DW_CFA_GNU_args_size of the row: bytes of outgoing arguments pushed at this pc. */
    public long argsSize() {
        return argsSize;
    }

    /** The CFA rule of the row. */
    public CfaRule cfa() {
        return cfa;
    }

    /** The rule of DWARF register {@code register} (0..16) in the row. */
    public RegisterRule rule(int register) {
        return rules[register];
    }
}
