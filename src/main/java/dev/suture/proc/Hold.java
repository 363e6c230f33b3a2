package dev.suture.proc;

/**
 * One span a thread of the target was held by suture: which thread, for which step (the hold's label: "mmap",
 * "window", "release"...), from when ({@link System#nanoTime()}, right before its interrupt) and for how long (to
 * right after the request that let it run again or released it), and whether it was running when held ({@code R}
 * in /proc right before the hold), rather than blocked in a system call: the holds a program feels.
 */
public record Hold(int thread, String step, long startNanos, long nanos, boolean running) {}
