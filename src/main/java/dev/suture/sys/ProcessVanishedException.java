package dev.suture.sys;

/** The process or thread an operation needed is gone (ESRCH, or it exited while we held it). */
public final class ProcessVanishedException extends SysException {
    /** The process found gone as a whole, or 0 when only a thread (or an unnamed object) is known to be. */
    private final int process;

    public ProcessVanishedException(String call, int errno, String message) {
        this(call, errno, message, 0);
    }

    private ProcessVanishedException(String call, int errno, String message, int process) {
        super(Kind.VANISHED, call, errno, message);
        this.process = process;
    }

    /** The whole process {@code pid} is gone; says so in the words the CLI prints. */
    public static ProcessVanishedException process(int pid, String during) {
        return new ProcessVanishedException(during, Errno.ESRCH, "process " + pid + " vanished (during " + during
                + "); nothing of it is traced any more", pid);
    }

    /** The whole process {@code pid} is gone (or a zombie), said in {@code message}. */
    public static ProcessVanishedException gone(int pid, String message) {
        return new ProcessVanishedException("/proc/" + pid, Errno.ESRCH, message, pid);
    }

    /** Whether this says that the whole process {@code pid} is gone (not just one of its threads). */
    public boolean isProcess(int pid) {
        return process != 0 && process == pid;
    }
}
