package dev.suture.patch;

/**
 * A function of the target the patch replaces: where it is at link time, how long, the SHA-256 of its deployed
 * bytes, and the patch symbol implementing it. A {@code part} (GCC's {@code foo.cold}) gets no jump, only the
 * hash and stack checks.
 */
public record ReplacedFunction(String symbol, long targetAddress, long size, String sha256,
                               PatchSymbol.Defined patchSymbol, boolean part) {}
