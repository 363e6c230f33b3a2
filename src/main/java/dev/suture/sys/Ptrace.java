package dev.suture.sys;

/** ptrace(2) requests, options and events, named as in the kernel's uapi headers (x86-64 values). */
public final class Ptrace {
    public static final int PTRACE_PEEKDATA = 2;
    public static final int PTRACE_PEEKUSER = 3;
    public static final int PTRACE_POKEDATA = 5;
    public static final int PTRACE_CONT = 7;
    public static final int PTRACE_KILL = 8;
    public static final int PTRACE_GETREGS = 12;
    public static final int PTRACE_SETREGS = 13;
    public static final int PTRACE_DETACH = 17;
    public static final int PTRACE_SYSCALL = 24;
    public static final int PTRACE_SETOPTIONS = 0x4200;
    public static final int PTRACE_GETEVENTMSG = 0x4201;
    public static final int PTRACE_GETSIGINFO = 0x4202;
    public static final int PTRACE_SEIZE = 0x4206;
    public static final int PTRACE_INTERRUPT = 0x4207;
    public static final int PTRACE_LISTEN = 0x4208;

    public static final int PTRACE_O_TRACESYSGOOD = 1;
    public static final int PTRACE_O_TRACEFORK = 1 << 1;
    public static final int PTRACE_O_TRACEVFORK = 1 << 2;
    public static final int PTRACE_O_TRACECLONE = 1 << 3;
    public static final int PTRACE_O_TRACEEXEC = 1 << 4;
    public static final int PTRACE_O_TRACEEXIT = 1 << 6;

    public static final int PTRACE_EVENT_FORK = 1;
    public static final int PTRACE_EVENT_VFORK = 2;
    public static final int PTRACE_EVENT_CLONE = 3;
    public static final int PTRACE_EVENT_EXEC = 4;
    public static final int PTRACE_EVENT_EXIT = 6;
    public static final int PTRACE_EVENT_STOP = 128;

    /** waitpid options. */
    public static final int WNOHANG = 1;
    public static final int __WALL = 0x40000000;

    public static final int SIGHUP = 1;
    public static final int SIGINT = 2;
    public static final int SIGKILL = 9;
    public static final int SIGUSR1 = 10;
    public static final int SIGUSR2 = 12;
    public static final int SIGTRAP = 5;
    public static final int SIGCHLD = 17;
    public static final int SIGCONT = 18;
    public static final int SIGSTOP = 19;
    public static final int SIGTSTP = 20;
    public static final int SIGTTIN = 21;
    public static final int SIGTTOU = 22;

    private Ptrace() {}

    /** True for the signals whose default action is to stop the process (they start a group-stop). */
    public static boolean isStopSignal(int sig) {
        return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
    }
}
