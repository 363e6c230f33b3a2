package dev.suture.proc;

import dev.suture.sys.Errno;
import dev.suture.sys.ProcessVanishedException;
import dev.suture.sys.Ptrace;
import dev.suture.sys.SysException;
import dev.suture.sys.Syscalls;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * The memory of a traced process: reads with process_vm_readv (on any thread, the process running or not), writes
 * through /proc/PID/mem, which writes even read-only text (a private copy of the page, as a debugger's breakpoint
 * does), with PTRACE_POKEDATA on a held thread as the fallback.
 */
final class ProcessMemory {
    private final int pid;
    private final TracedThreads threads;
    private final StopTheWorld holds;
    private int memFd = -1;

    ProcessMemory(TracedThreads threads, StopTheWorld holds) {
        this.pid = threads.pid();
        this.threads = threads;
        this.holds = holds;
    }

    /** Opens /proc/PID/mem once the threads are seized; without it, writes go through PTRACE_POKEDATA. */
    void open() {
        try {
            memFd = Syscalls.open("/proc/" + pid + "/mem", Syscalls.O_RDWR);
        } catch (SysException e) {
            memFd = -1;
        }
    }

    void close() {
        if (memFd >= 0) {
            Syscalls.close(memFd);
            memFd = -1;
        }
    }

    /** Reads up to {@code length} bytes at {@code address} into {@code dst}; returns how many were readable. */
    int read(long address, byte[] dst, int offset, int length) {
        try {
            return Syscalls.readMemory(pid, address, dst, offset, length);
        } catch (SysException e) {
            return (int) unreadable(e);
        }
    }

    /** {@link Tracer#readRanges}. */
    long readRanges(long[] addresses, int[] lengths, int count, byte[] dst) {
        try {
            return Syscalls.readMemoryRanges(pid, addresses, lengths, count, dst);
        } catch (SysException e) {
            return unreadable(e);
        }
    }

    /** A failed process_vm_readv: the process vanished (thrown), or nothing was readable (EFAULT: 0 bytes). */
    private long unreadable(SysException e) {
        if (e instanceof ProcessVanishedException) {
            throw ProcessVanishedException.process(pid, "memory read");
        }
        if (e.errno() == Errno.EFAULT) {
            return 0;
        }
        throw e;
    }

    /** Writes {@code bytes} at {@code address}: on the tracer thread. */
    void write(long address, byte[] bytes) {
        if (threads.vanished()) {
            throw threads.gone("memory write");
        }
        if (memFd >= 0) {
            try {
                int done = 0;
                while (done < bytes.length) {
                    int n = Syscalls.pwrite(memFd, slice(bytes, done), 0, bytes.length - done, address + done);
                    if (n <= 0) {
                        break;
                    }
                    done += n;
                }
                if (done == bytes.length) {
                    return;
                }
            } catch (SysException e) {
                if (!Files.isDirectory(Path.of("/proc/" + pid))) {
                    throw ProcessVanishedException.process(pid, "memory write");
                }
                // fall back to POKEDATA below
            }
        }
        poke(address, bytes);
    }

    private static byte[] slice(byte[] bytes, int from) {
        return from == 0 ? bytes : Arrays.copyOfRange(bytes, from, bytes.length);
    }

    /** Writes through PTRACE_PEEKDATA/POKEDATA on a held thread, a word at a time. */
    private void poke(long address, byte[] bytes) {
        boolean wasHeld = holds.isHeld();
        if (!wasHeld) {
            holds.stopAll("write", null, false);
        }
        try {
            int tid = threads.all().stream().filter(TracedThread::isStopped).findFirst()
                    .orElseThrow(() -> ProcessVanishedException.process(pid, "memory write")).tid();
            long start = address & ~7L;
            long end = (address + bytes.length + 7) & ~7L;
            for (long word = start; word < end; word += 8) {
                long value = Ptrace.peekData(tid, word);
                for (int b = 0; b < 8; b++) {
                    long at = word + b;
                    if (at >= address && at < address + bytes.length) {
                        long shift = 8L * b;
                        value = (value & ~(0xffL << shift)) | ((bytes[(int) (at - address)] & 0xffL) << shift);
                    }
                }
                Ptrace.pokeData(tid, word, value);
            }
        } finally {
            if (!wasHeld) {
                holds.resumeAll();
            }
        }
    }
}
