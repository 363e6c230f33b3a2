package dev.suture.proc;

import dev.suture.SutureException;
import dev.suture.sys.ProcessVanishedException;
import dev.suture.sys.TrustedFiles;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

/**
 * What a pid given to suture names, said before anything is created for it: a process of user-space code, or
 * else which of the things it may be instead (no number, no process, a thread of another process, a kernel
 * thread, suture itself), each with its own kind and words.
 */
public final class ProcessIds {
    /** {@code PF_KTHREAD} in the flags field of /proc/PID/stat. */
    private static final long PF_KTHREAD = 0x00200000;

    private ProcessIds() {}

    /** Why root may be refused a process's /proc files, said after "permission denied". */
    static final String WHY_DENIED = " (the kernel refuses it when the process is in another container, user"
            + " namespace or security context, or is marked not dumpable)";

    /**
     * Refuses a pid a person gave, before anything is done with it: one that names no process, or a kernel thread,
     * is bad input (exit 2), not a process that vanished while suture worked on it.
     */
    public static void requireGiven(int pid) {
        check(pid, true);
    }

    /** Refuses {@code pid} unless it names a running user-space process other than this one. */
    public static void requireUserProcess(int pid) {
        check(pid, false);
    }

    private static void check(int pid, boolean given) {
        if (pid <= 0) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, pid + " is not a process id (a pid is a"
                    + " positive number; see ps)");
        }
        if (pid == ProcessHandle.current().pid()) {
            throw new SutureException(SutureException.Kind.NOT_PERMITTED, "pid " + pid + " is this suture itself");
        }
        String status;
        String stat;
        try {
            status = Files.readString(Path.of("/proc/" + pid + "/status"));
            stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
        } catch (NoSuchFileException e) {
            String message = "no process " + pid + " (there is no /proc/" + pid + "); check the pid with 'ps -p "
                    + pid + "'";
            throw given ? new SutureException(SutureException.Kind.BAD_INPUT, message)
                    : ProcessVanishedException.gone(pid, message);
        } catch (IOException e) {
            throw new SutureException(SutureException.Kind.NOT_PERMITTED, "cannot read /proc/" + pid
                    + "/status: " + TrustedFiles.reason(e) + WHY_DENIED);
        }
        String tgid = field(status, "Tgid:");
        if (tgid != null && !tgid.equals(Integer.toString(pid))) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, pid + " is a thread of process " + tgid
                    + ", not a process; give the process id (" + tgid + ")");
        }
        String[] after = statFields(stat);
        long flags = after.length > 6 ? Long.parseLong(after[6]) : 0;
        if ((flags & PF_KTHREAD) != 0) {
            throw new SutureException(given ? SutureException.Kind.BAD_INPUT : SutureException.Kind.NOT_PERMITTED,
                    "pid " + pid + " is a kernel thread ("
                    + field(status, "Name:") + "): it runs no user-space code that suture could patch");
        }
        if (after.length > 0 && after[0].equals("Z")) {
            throw ProcessVanishedException.gone(pid, "pid " + pid + " has exited (a zombie that its parent has"
                    + " not reaped yet)");
        }
    }

    /**
     * The fields of a /proc/PID/stat line after the command name, the state (field 3) first: the name is in
     * parentheses and may hold spaces or parentheses itself, so the split starts after the last ')'.
     */
    public static String[] statFields(String stat) {
        return stat.substring(stat.lastIndexOf(')') + 2).split(" ");
    }

    private static String field(String status, String name) {
        return status.lines().filter(l -> l.startsWith(name)).findFirst()
                .map(l -> l.substring(name.length()).strip()).orElse(null);
    }
}
