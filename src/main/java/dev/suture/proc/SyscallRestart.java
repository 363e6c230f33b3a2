package dev.suture.proc;

import dev.suture.sys.SysException;
import dev.suture.sys.Syscalls;

/**
 * The kernel's restart of a thread's own interrupted system call (x86-64 {@code arch_do_signal_or_restart}), done
 * by hand when a borrowed thread is given back at its syscall-exit stop: its registers go back with {@code rip}
 * on its {@code syscall} instruction again and the number to run in {@code rax}, as the kernel would have set
 * them on its way out of the interrupt stop we took it from. That saves the borrowed thread a fourth trip through
 * the kernel, a park in an interrupt stop for the kernel to do it (docs/apply.md).
 *
 * <p>The kernel decides the restart while no signal is being delivered; a signal that comes between our decision
 * and the thread's {@code syscall} would meet the restarted call instead of the interrupted one (a handler
 * without SA_RESTART would then see its read restart rather than fail with EINTR). So the tracer puts the
 * interrupted state back at the thread's next stop if it has not run yet ({@link Tracer}'s {@code settle}):
 * every signal reaches a traced thread through such a stop, and from there the kernel applies its own rules.
 */
record SyscallRestart(long[] from, long[] registers, boolean byHand) {
    static final long ERESTARTSYS = 512;
    static final long ERESTARTNOINTR = 513;
    static final long ERESTARTNOHAND = 514;
    static final long ERESTART_RESTARTBLOCK = 516;
    private static final long NR_RESTART_SYSCALL = 219;
    private static final long X32_SYSCALL_BIT = 0x40000000L;
    private static final int RAX = 10;
    private static final int ORIG_RAX = 15;
    private static final int RIP = 16;

    /**
     * How a thread taken with registers {@code saved} ({@code from}) leaves a syscall-exit stop exactly as it
     * would have left its interrupt stop: with {@code registers} the same as {@code saved} when it was in no
     * system call or its call has a result ({@code byHand} false), restarted by hand when it was interrupted in
     * one (true); null when only the kernel's own path can restart it (a restart_syscall of a call made with
     * {@code int 0x80}, whose numbers differ).
     */
    static SyscallRestart of(int pid, long[] saved) {
        long error = saved[RAX];
        long nr;
        if (saved[ORIG_RAX] < 0) {
            return new SyscallRestart(saved, saved, false);
        } else if (error == -ERESTARTSYS || error == -ERESTARTNOINTR || error == -ERESTARTNOHAND) {
            nr = saved[ORIG_RAX]; // the same call again, whatever instruction made it (all are two bytes)
        } else if (error == -ERESTART_RESTARTBLOCK) {
            if (!isSyscall(pid, saved[RIP] - 2)) {
                return null;
            }
            nr = NR_RESTART_SYSCALL | (saved[ORIG_RAX] & X32_SYSCALL_BIT);
        } else {
            return new SyscallRestart(saved, saved, false);
        }
        long[] w = saved.clone();
        w[RAX] = nr;
        w[ORIG_RAX] = -1; // in user mode, about to make the call
        w[RIP] -= 2;
        return new SyscallRestart(saved, w, true);
    }

    private static boolean isSyscall(int pid, long address) {
        byte[] b = new byte[2];
        try {
            return Syscalls.readMemory(pid, address, b, 0, 2) == 2 && b[0] == 0x0f && b[1] == 0x05;
        } catch (SysException e) {
            return false;
        }
    }
}
