package dev.suture.proc;

import dev.suture.SutureException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AccessDeniedException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Reads a process's memory: through a tracer while attached, or through /proc/PID/mem without attaching. The one
 * interface for it: the transactions, recovery and the unwinder's reads past its stack copy all use it.
 */
public interface RemoteMemory extends AutoCloseable {
    /** Reads up to {@code length} bytes at {@code address}; returns how many were readable. */
    int read(long address, byte[] dst, int offset, int length);

    @Override
    default void close() {}

    /** Reads through the tracer (process_vm_readv while it holds the process). */
    static RemoteMemory of(Tracer tracer) {
        return tracer::read;
    }

    /** Opens /proc/PID/mem for reading (needs the same permission as ptrace, but stops nothing). */
    static RemoteMemory open(int pid) {
        Path mem = Path.of("/proc/" + pid + "/mem");
        try {
            FileChannel ch = FileChannel.open(mem, StandardOpenOption.READ);
            return new RemoteMemory() {
                @Override
                public int read(long address, byte[] dst, int offset, int length) {
                    try {
                        var buf = ByteBuffer.wrap(dst, offset, length);
                        int total = 0;
                        while (buf.hasRemaining()) {
                            int n = ch.read(buf, address + total);
                            if (n <= 0) {
                                break;
                            }
                            total += n;
                        }
                        return total;
                    } catch (IOException e) {
                        return 0; // EIO: the range is not mapped
                    }
                }

                @Override
                public void close() {
                    try {
                        ch.close();
                    } catch (IOException ignored) {
                        // read-only: nothing to lose
                    }
                }
            };
        } catch (NoSuchFileException e) {
            throw new SutureException(SutureException.Kind.VANISHED, "process " + pid + " does not exist");
        } catch (AccessDeniedException e) {
            throw new SutureException(SutureException.Kind.NOT_PERMITTED, "process " + pid
                    + ": reading its memory was refused; run as its owner or as root (CAP_SYS_PTRACE)");
        } catch (IOException e) {
            throw new SutureException(SutureException.Kind.NOT_PERMITTED, "process " + pid + ": cannot open "
                    + mem + ": " + e.getMessage());
        }
    }
}
