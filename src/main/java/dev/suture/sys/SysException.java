package dev.suture.sys;

import dev.suture.SutureException;

/**
 * A system call failed. {@link #errno()} says how; {@link #of} picks the typed subclass for the errno values callers
 * treat differently (ESRCH: {@link ProcessVanishedException}, EPERM: {@link NotPermittedException}).
 */
public class SysException extends SutureException {
    private final String call;
    private final int errno;

    public SysException(String call, int errno, String message) {
        this(Kind.INTERNAL, call, errno, message);
    }

    protected SysException(Kind kind, String call, int errno, String message) {
        super(kind, message);
        this.call = call;
        this.errno = errno;
    }

    /** The failed call, e.g. {@code "ptrace(PTRACE_SEIZE)"}. */
    public String call() {
        return call;
    }

    public int errno() {
        return errno;
    }

    /** The exception for {@code errno} from {@code call}; {@code what} names the object, e.g. "thread 4711". */
    public static SysException of(String call, int errno, String what) {
        String message = call + " on " + what + " failed: " + Errno.describe(errno);
        return switch (errno) {
            case Errno.ESRCH, Errno.ECHILD -> new ProcessVanishedException(call, errno, what + " vanished (" + call + ": "
                    + Errno.name(errno) + ")");
            case Errno.EPERM -> new NotPermittedException(call, errno, message);
            default -> new SysException(call, errno, message);
        };
    }
}
