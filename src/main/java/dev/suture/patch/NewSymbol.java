package dev.suture.patch;

/** A function or variable the patch adds: it has no counterpart in the target. */
public record NewSymbol(Kind kind, PatchSymbol.Defined symbol) {
    public enum Kind { FUNCTION, DATA }
}
