package dev.suture.proc;

import dev.suture.SutureException;
import dev.suture.sys.Syscalls;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/** What /proc says about a thread: its scheduler state letter (R, S, D, T, t, Z, X; '?' when gone). */
public final class ThreadState {
    /** PF_EXITING in the flags field of /proc/PID/task/TID/stat: the thread is in do_exit(). */
    private static final long PF_EXITING = 0x4;

    /**
     * How long an error path waits for a process that failed a /proc read or a ptrace call to show itself dying:
     * SIGKILL reaches the threads of a process one by one, so a read can fail (ESRCH, the memory already gone)
     * before every thread is marked exiting.
     */
    public static final long VANISH_GRACE_MILLIS = 200;

    private ThreadState() {}

    public static char of(int pid, int tid) {
        String stat = stat(pid, tid);
        if (stat == null) {
            return '?';
        }
        int close = stat.lastIndexOf(')');
        return close >= 0 && close + 2 < stat.length() ? stat.charAt(close + 2) : '?';
    }

    /**
     * Whether the thread is running or waiting for a core (state R), read with open, pread and close into
     * {@code buffer} (512 bytes and more): a hold asks it of every thread, right before its first interrupt. False
     * when the thread is gone.
     */
    static boolean running(int pid, int tid, byte[] buffer) {
        int fd;
        try {
            fd = Syscalls.open("/proc/" + pid + "/task/" + tid + "/stat", Syscalls.O_RDONLY);
        } catch (SutureException e) {
            return false;
        }
        int n;
        try {
            n = Syscalls.pread(fd, buffer, 0, buffer.length, 0);
        } catch (SutureException e) {
            return false;
        } finally {
            Syscalls.close(fd);
        }
        for (int i = n - 1; i > 0; i--) {
            if (buffer[i] == ')') {
                return i + 2 < n && buffer[i + 2] == 'R';
            }
        }
        return false;
    }

    /**
     * Where a blocked thread sits, read from /proc/PID/task/TID/syscall ("NR ARGS... SP PC", or "-1 SP PC"):
     * registers with only rsp and rip set, or null when the thread runs or the file cannot be read. Lets a tool
     * rehearse an unwind on the thread's real stack without stopping it.
     */
    public static Registers blockedAt(int pid, int tid) {
        String line;
        try {
            line = Files.readString(Path.of("/proc/" + pid + "/task/" + tid + "/syscall")).strip();
        } catch (IOException | RuntimeException e) {
            return null;
        }
        String[] f = line.split(" ");
        if (f.length < 3 || !f[f.length - 1].startsWith("0x") || !f[f.length - 2].startsWith("0x")) {
            return null; // "running"
        }
        long[] w = new long[Registers.WORDS];
        try {
            w[19] = Long.parseUnsignedLong(f[f.length - 2].substring(2), 16);
            w[16] = Long.parseUnsignedLong(f[f.length - 1].substring(2), 16);
        } catch (NumberFormatException e) {
            return null;
        }
        return Registers.of(w);
    }

    /** True when the thread is gone, a zombie, or already exiting. */
    static boolean dying(int pid, int tid) {
        String stat = stat(pid, tid);
        if (stat == null) {
            return true;
        }
        int close = stat.lastIndexOf(')');
        String[] f = stat.substring(close + 2).split(" ");
        char state = f[0].charAt(0);
        long flags = f.length > 6 ? Long.parseUnsignedLong(f[6]) : 0;
        return state == 'Z' || state == 'X' || (flags & PF_EXITING) != 0;
    }

    /** True when every thread of the process is dying or gone (after waiting up to {@code waitMillis} for it). */
    public static boolean processGone(int pid, long waitMillis) {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(waitMillis);
        while (true) {
            if (allDying(pid)) {
                return true;
            }
            if (System.nanoTime() >= deadline) {
                return false;
            }
            LockSupport.parkNanos(1_000_000);
        }
    }

    private static boolean allDying(int pid) {
        try (var tasks = Files.newDirectoryStream(Path.of("/proc/" + pid + "/task"))) {
            for (Path p : tasks) {
                if (!dying(pid, Integer.parseInt(p.getFileName().toString()))) {
                    return false;
                }
            }
            return true;
        } catch (IOException | RuntimeException e) {
            return true; // no /proc/PID any more
        }
    }

    /**
     * A field of /proc/PID/task/TID/status ({@code key} without its colon: "TracerPid", "SigBlk"; a process-wide
     * one such as "SigCgt" reads the same in every thread's), its value stripped; empty when the thread is gone.
     */
    static Optional<String> status(int pid, int tid, String key) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/task/" + tid + "/status"))) {
                if (line.startsWith(key) && line.startsWith(":", key.length())) {
                    return Optional.of(line.substring(key.length() + 1).strip());
                }
            }
        } catch (IOException | RuntimeException e) {
            // gone
        }
        return Optional.empty();
    }

    private static String stat(int pid, int tid) {
        try {
            return Files.readString(Path.of("/proc/" + pid + "/task/" + tid + "/stat"));
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }
}
