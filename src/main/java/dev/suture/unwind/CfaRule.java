package dev.suture.unwind;

/**
 * How to compute the canonical frame address of a frame (DWARF 5, section 6.4.1): a register plus an offset, or
 * an expression (a byte range of the CFI section). {@link Unwinder} evaluates it with an exhaustive switch.
 */
public sealed interface CfaRule {
    /** The CFA is the value of {@code register} plus {@code offset} (DW_CFA_def_cfa and its variants). */
    record RegisterAndOffset(int register, long offset) implements CfaRule {}

    /** The CFA is what the expression computes (DW_CFA_def_cfa_expression). */
    record Expression(int start, int end) implements CfaRule {}
}
