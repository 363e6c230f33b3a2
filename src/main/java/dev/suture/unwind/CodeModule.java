package dev.suture.unwind;

import dev.suture.elf.SymbolsByAddress;

/**
 * What the unwinder knows of one loaded module: its name, load bias, CFI (.eh_frame, and .debug_frame from a
 * separate debug file when there is one) and function symbols. Built once, before any thread is stopped.
 */
public record CodeModule(String name, long loadBias, CallFrameSection ehFrame, CallFrameSection debugFrame,
                         SymbolsByAddress symbols) {

    /** The FDE for run-time {@code pc}, from .eh_frame first, then .debug_frame; null if neither has one. */
    FrameDescriptionEntry find(long pc, CallFrameSection[] from) {
        long linkPc = pc - loadBias;
        if (ehFrame != null) {
            FrameDescriptionEntry fde = ehFrame.find(linkPc);
            if (fde != null) {
                from[0] = ehFrame;
                return fde;
            }
        }
        if (debugFrame != null) {
            FrameDescriptionEntry fde = debugFrame.find(linkPc);
            if (fde != null) {
                from[0] = debugFrame;
                return fde;
            }
        }
        return null;
    }

    /** The short name: the file name of the path. */
    public String shortName() {
        int slash = name.lastIndexOf('/');
        return slash < 0 ? name : name.substring(slash + 1);
    }
}
