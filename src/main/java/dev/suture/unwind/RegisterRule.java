package dev.suture.unwind;

/**
 * How to recover a register of the caller from a frame: the register rules of DWARF 5, section 6.4.1, as gimli
 * names them. {@link Unwinder} evaluates them with an exhaustive switch. Expressions are byte ranges of the CFI
 * section the row came from. Rows reuse rule objects ({@link UnwindContext}), so these are immutable values.
 */
public sealed interface RegisterRule {
    /** The register cannot be recovered (DW_CFA_undefined; on the return address column: the outermost frame). */
    record Undefined() implements RegisterRule {}

    /** Unchanged from the callee; also the rule for a register no instruction mentions. */
    record SameValue() implements RegisterRule {}

    /** Saved at address CFA + offset. */
    record Offset(long offset) implements RegisterRule {}

    /** The value is CFA + offset itself. */
    record ValOffset(long offset) implements RegisterRule {}

    /** Saved in another register of the callee. */
    record Register(int register) implements RegisterRule {}

    /** Saved at the address the expression computes (with the CFA pushed first). */
    record Expression(int start, int end) implements RegisterRule {}

    /** The value is what the expression computes (with the CFA pushed first). */
    record ValExpression(int start, int end) implements RegisterRule {}
}
