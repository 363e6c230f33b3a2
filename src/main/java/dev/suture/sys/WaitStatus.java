package dev.suture.sys;

/**
 * One waitpid(2) result: which thread and its decoded status (the W* macros of &lt;sys/wait.h&gt; and the ptrace
 * event bits above them).
 */
public record WaitStatus(int tid, int status) {
    public boolean exited() {
        return (status & 0x7f) == 0;
    }

    public int exitCode() {
        return (status >> 8) & 0xff;
    }

    public boolean killed() {
        return ((status & 0x7f) + 1) >> 1 > 0 && (status & 0xff) != 0x7f;
    }

    public int termSignal() {
        return status & 0x7f;
    }

    /** The thread is gone: it exited or a signal killed it. */
    public boolean gone() {
        return exited() || killed();
    }

    public boolean stopped() {
        return (status & 0xff) == 0x7f;
    }

    public int stopSignal() {
        return (status >> 8) & 0xff;
    }

    /** The PTRACE_EVENT_* of this stop, 0 for a plain signal-delivery stop. */
    public int event() {
        return (status >>> 16) & 0xff;
    }

    /** A syscall-enter or -exit stop (needs PTRACE_O_TRACESYSGOOD). */
    public boolean syscallStop() {
        return stopped() && stopSignal() == (Ptrace.SIGTRAP | 0x80);
    }

    @Override
    public String toString() {
        if (exited()) {
            return "thread " + tid + " exited " + exitCode();
        }
        if (killed()) {
            return "thread " + tid + " killed by signal " + termSignal();
        }
        if (stopped()) {
            return "thread " + tid + " stopped, signal " + stopSignal() + (event() != 0 ? ", event " + event() : "");
        }
        return "thread " + tid + " status 0x" + Integer.toHexString(status);
    }
}
