package dev.suture.unwind;

/** How the unwinder found a frame. */
public enum FrameMethod {
    /** Frame #0: the thread's registers. */
    REGISTERS("registers"),
    /** From the callee's CFI (.eh_frame or .debug_frame). */
    CFI("cfi"),
    /** The callee's pc had no CFI: from the rbp chain, which may be wrong in code built without frame pointers. */
    FRAME_POINTER("frame-pointer");

    private final String label;

    FrameMethod(String label) {
        this.label = label;
    }

    public String label() {
        return label;
    }
}
