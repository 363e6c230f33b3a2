package dev.suture.unwind;

/**
 * One symbolized frame: its pc, stack pointer and CFA (0 if not computed), the module and function the pc is in
 * (null when unknown), the offset of the pc in that function, how the frame was found, and whether it is a
 * signal trampoline (its CFI is marked 'S': the frame above it was interrupted by a signal).
 */
public record Frame(int index, long pc, long sp, long cfa, String module, String symbol, long offset,
                   FrameMethod method, boolean signalTrampoline) {

    /** "name+0x1f"; "<signal handler called>" for an unnamed trampoline (as gdb says); "??" when unknown. */
    public String function() {
        if (symbol == null) {
            return signalTrampoline ? "<signal handler called>" : "??";
        }
        return offset == 0 ? symbol : symbol + "+0x" + Long.toHexString(offset);
    }
}
