package dev.suture.proc;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** The scheduler state letter of a thread as /proc shows it (R, S, D, T, t, Z, X), '?' when it is gone. */
public final class ThreadState {
    private ThreadState() {}

    public static char of(int pid, int tid) {
        try {
            String stat = Files.readString(Path.of("/proc/" + pid + "/task/" + tid + "/stat"));
            int close = stat.lastIndexOf(')');
            return close >= 0 && close + 2 < stat.length() ? stat.charAt(close + 2) : '?';
        } catch (IOException | RuntimeException e) {
            return '?';
        }
    }
}
