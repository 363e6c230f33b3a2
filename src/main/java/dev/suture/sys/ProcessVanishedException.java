package dev.suture.sys;

/** The process or thread an operation needed is gone (ESRCH, or it exited while we held it). */
public final class ProcessVanishedException extends SysException {
    public ProcessVanishedException(String call, int errno, String message) {
        super(Kind.VANISHED, call, errno, message);
    }

    /** The whole process {@code pid} is gone; says so in the words the CLI prints. */
    public static ProcessVanishedException process(int pid, String during) {
        return new ProcessVanishedException(during, Errno.ESRCH, "process " + pid + " vanished (during " + during
                + "); nothing of it is traced any more");
    }
}
