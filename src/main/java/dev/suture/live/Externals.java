package dev.suture.live;

import dev.suture.patch.PatchSymbol;

/**
 * What the binder needs to know about the world outside the patch and the target module, answered from the live
 * process: where external symbols are, which GOT slots the target module already has for them, and where TLS lives.
 */
interface Externals {
    /** Run-time address of the target module's GOT slot for {@code s}, if the module imports it (else 0). */
    long importSlot(PatchSymbol.External s, boolean forCall);

    /** Run-time address of {@code s} as the program sees it (an IFUNC resolved to its implementation). */
    long address(PatchSymbol.External s);

    /** TLS of the target module: its module id and thread-pointer offset of its block. */
    Tls targetTls();

    /** TLS of an external thread-local variable: its module's id and tp offset, and the variable's offset. */
    Tls tls(PatchSymbol.External s);

    /**
     * A module's TLS: {@code moduleId} as {@code __tls_get_addr} expects, {@code tpOffset} of the block from the
     * thread pointer (static TLS; {@link Long#MIN_VALUE} if the block is dynamic), {@code offset} of the variable
     * inside the block (0 for a module's own).
     */
    record Tls(long moduleId, long tpOffset, long offset) {
        Tls at(long variableOffset) {
            return new Tls(moduleId, tpOffset, offset + variableOffset);
        }
    }
}
