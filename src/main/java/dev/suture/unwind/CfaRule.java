package dev.suture.unwind;

/** How to compute the canonical frame address of a frame: a register plus an offset, or an expression. */
public sealed interface CfaRule {
    record RegisterOffset(int register, long offset) implements CfaRule {}

    record Expression(int start, int end) implements CfaRule {}
}
