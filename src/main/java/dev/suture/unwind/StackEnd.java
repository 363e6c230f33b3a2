package dev.suture.unwind;

/** Why a backtrace ends where it does. */
public enum StackEnd {
    /** The CFI says the return address is undefined: the thread's first frame (_start, clone3). */
    OUTERMOST,
    /** The next return address is 0. */
    ZERO_PC,
    /** The next frame's stack pointer would not be above this one's (outside a signal frame). */
    STACK_NOT_INCREASING,
    /** The frame limit was reached. */
    FRAME_LIMIT,
    /** The next frame could not be unwound; the backtrace's error says why. */
    ERROR
}
