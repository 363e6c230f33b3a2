package dev.suture.unwind;

import static dev.suture.unwind.Dwarf.*;

/**
 * Executes the CFA program of an FDE up to a pc and holds the resulting row: the CFA rule and one rule per
 * tracked register (DWARF numbers 0..16 of x86-64). One context is reused for every frame: rows live in primitive
 * arrays and {@code DW_CFA_remember_state} pushes onto a fixed-depth stack, so evaluating allocates nothing.
 * Programs are bounded in steps and state depth; exceeding a bound is an {@link UnwindException}.
 */
public final class UnwindContext {
    static final int MAX_OPS = 10_000;
    static final int MAX_STATES = 64;

    // rule kinds, in the order of RegisterRule's records
    static final byte UNDEFINED = 0;
    static final byte SAME_VALUE = 1;
    static final byte OFFSET = 2;
    static final byte VAL_OFFSET = 3;
    static final byte REGISTER = 4;
    static final byte EXPRESSION = 5;
    static final byte VAL_EXPRESSION = 6;

    static final byte CFA_REGISTER_OFFSET = 0;
    static final byte CFA_EXPRESSION = 1;
    private static final int CFA_FIELDS = 3;

    private static final int N = REGISTER_COUNT;

    // the current row
    final byte[] kind = new byte[N];
    final long[] value = new long[N];
    byte cfaKind;
    long cfaRegister;  // register number, or expression start for CFA_EXPRESSION
    long cfaOffset;    // offset, or expression end for CFA_EXPRESSION

    // the row after the CIE's initial instructions, for DW_CFA_restore
    private final byte[] initialKind = new byte[N];
    private final long[] initialValue = new long[N];

    // DW_CFA_remember_state stack
    private final byte[] savedKind = new byte[MAX_STATES * N];
    private final long[] savedValue = new long[MAX_STATES * N];
    private final long[] savedCfa = new long[MAX_STATES * CFA_FIELDS];
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
        for (int r = 0; r < N; r++) {
            kind[r] = SAME_VALUE;
            value[r] = 0;
        }
        cfaKind = CFA_REGISTER_OFFSET;
        cfaRegister = RSP;
        cfaOffset = 8;
        depth = 0;
        argsSize = 0;
        budget = MAX_OPS;
        cursor.reset(section.bytes(), section.name(), cie.instructionsStart(), cie.instructionsEnd());
        run(cie, fde.pcBegin(), -1L, true);
        System.arraycopy(kind, 0, initialKind, 0, N);
        System.arraycopy(value, 0, initialValue, 0, N);
        depth = 0;
        cursor.range(fde.instructionsStart(), fde.instructionsEnd());
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
                set(low, OFFSET, cursor.uleb128() * daf);
                continue;
            }
            if (high == DW_CFA_restore) {
                restore(low, initial);
                continue;
            }
            switch (op) {
                case DW_CFA_nop -> {}
                case DW_CFA_set_loc -> {
                    long newLoc = isDebugFrame()
                            ? (cie.addressSize() == 4 ? cursor.u32() : cursor.u64())
                            : cursor.encoded(cie.fdeEncoding(), section.address(), section.bases());
                    if (Long.compareUnsigned(newLoc, loc) < 0) {
                        throw fail("DW_CFA_set_loc moves backwards");
                    }
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
                case DW_CFA_offset_extended -> set(cursor.register(), OFFSET, cursor.uleb128() * daf);
                case DW_CFA_offset_extended_sf -> set(cursor.register(), OFFSET, cursor.sleb128() * daf);
                case DW_CFA_GNU_negative_offset_extended -> set(cursor.register(), OFFSET, -(cursor.uleb128() * daf));
                case DW_CFA_val_offset -> set(cursor.register(), VAL_OFFSET, cursor.uleb128() * daf);
                case DW_CFA_val_offset_sf -> set(cursor.register(), VAL_OFFSET, cursor.sleb128() * daf);
                case DW_CFA_restore_extended -> restore(cursor.register(), initial);
                case DW_CFA_undefined -> set(cursor.register(), UNDEFINED, 0);
                case DW_CFA_same_value -> set(cursor.register(), SAME_VALUE, 0);
                case DW_CFA_register -> {
                    int r = cursor.register();
                    set(r, REGISTER, cursor.register());
                }
                case DW_CFA_remember_state -> remember();
                case DW_CFA_restore_state -> restoreState();
                case DW_CFA_def_cfa -> {
                    cfaKind = CFA_REGISTER_OFFSET;
                    cfaRegister = cursor.register();
                    cfaOffset = cursor.uleb128();
                }
                case DW_CFA_def_cfa_sf -> {
                    cfaKind = CFA_REGISTER_OFFSET;
                    cfaRegister = cursor.register();
                    cfaOffset = cursor.sleb128() * daf;
                }
                case DW_CFA_def_cfa_register -> {
                    requireRegisterCfa(op);
                    cfaRegister = cursor.register();
                }
                case DW_CFA_def_cfa_offset -> {
                    requireRegisterCfa(op);
                    cfaOffset = cursor.uleb128();
                }
                case DW_CFA_def_cfa_offset_sf -> {
                    requireRegisterCfa(op);
                    cfaOffset = cursor.sleb128() * daf;
                }
                case DW_CFA_def_cfa_expression -> {
                    long length = cursor.uleb128();
                    int start = cursor.skip(length);
                    cfaKind = CFA_EXPRESSION;
                    cfaRegister = start;
                    cfaOffset = cursor.position();
                }
                case DW_CFA_expression, DW_CFA_val_expression -> {
                    int r = cursor.register();
                    long length = cursor.uleb128();
                    int start = cursor.skip(length);
                    set(r, op == DW_CFA_expression ? EXPRESSION : VAL_EXPRESSION, (long) cursor.position() << 32 | start);
                }
                case DW_CFA_GNU_args_size -> argsSize = cursor.uleb128();
                default -> throw fail("unknown call frame instruction 0x" + Integer.toHexString(op) + " at offset 0x"
                        + Integer.toHexString(cursor.position() - 1));
            }
        }
    }

    private boolean isDebugFrame() {
        return section.name().endsWith(".debug_frame");
    }

    private void requireRegisterCfa(int op) {
        if (cfaKind != CFA_REGISTER_OFFSET) {
            throw fail("instruction 0x" + Integer.toHexString(op) + " changes a CFA that is an expression");
        }
    }

    private void set(int register, byte ruleKind, long ruleValue) {
        if (register < N) {
            kind[register] = ruleKind;
            value[register] = ruleValue;
        }
        // rules for vector and other registers are parsed and dropped: unwinding never needs them
    }

    private void restore(int register, boolean initial) {
        if (initial) {
            throw fail("DW_CFA_restore in a CIE's initial instructions");
        }
        if (register < N) {
            kind[register] = initialKind[register];
            value[register] = initialValue[register];
        }
    }

    private void remember() {
        if (depth == MAX_STATES) {
            throw fail("more than " + MAX_STATES + " nested DW_CFA_remember_state");
        }
        System.arraycopy(kind, 0, savedKind, depth * N, N);
        System.arraycopy(value, 0, savedValue, depth * N, N);
        savedCfa[depth * CFA_FIELDS] = cfaKind;
        savedCfa[depth * CFA_FIELDS + 1] = cfaRegister;
        savedCfa[depth * CFA_FIELDS + 2] = cfaOffset;
        depth++;
    }

    private void restoreState() {
        if (depth == 0) {
            throw fail("DW_CFA_restore_state without a remembered state");
        }
        depth--;
        System.arraycopy(savedKind, depth * N, kind, 0, N);
        System.arraycopy(savedValue, depth * N, value, 0, N);
        // DWARF 5: the CFA rule is part of the remembered row too
        cfaKind = (byte) savedCfa[depth * CFA_FIELDS];
        cfaRegister = savedCfa[depth * CFA_FIELDS + 1];
        cfaOffset = savedCfa[depth * CFA_FIELDS + 2];
    }

    private UnwindException fail(String message) {
        return new UnwindException(section.name() + ": FDE at offset 0x" + Integer.toHexString(fde.offset())
                + " (pc 0x" + Long.toHexString(fde.pcBegin()) + "): " + message);
    }

    /** DW_CFA_GNU_args_size of the row: bytes of outgoing arguments pushed at this pc. */
    public long argsSize() {
        return argsSize;
    }

    /** The CFA rule of the row (allocates; for inspection and tests). */
    public CfaRule cfa() {
        return cfaKind == CFA_EXPRESSION
                ? new CfaRule.Expression((int) cfaRegister, (int) cfaOffset)
                : new CfaRule.RegisterOffset((int) cfaRegister, cfaOffset);
    }

    /** The rule of DWARF register {@code register} (0..16) in the row (allocates; for inspection and tests). */
    public RegisterRule rule(int register) {
        long v = value[register];
        return switch (kind[register]) {
            case UNDEFINED -> new RegisterRule.Undefined();
            case SAME_VALUE -> new RegisterRule.SameValue();
            case OFFSET -> new RegisterRule.Offset(v);
            case VAL_OFFSET -> new RegisterRule.ValOffset(v);
            case REGISTER -> new RegisterRule.Register((int) v);
            case EXPRESSION -> new RegisterRule.Expression((int) v, (int) (v >>> 32));
            case VAL_EXPRESSION -> new RegisterRule.ValExpression((int) v, (int) (v >>> 32));
            default -> throw new IllegalStateException("rule kind " + kind[register]);
        };
    }
}
