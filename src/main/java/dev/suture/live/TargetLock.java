package dev.suture.live;

import dev.suture.SutureException;
import dev.suture.proc.ProcessIds;
import dev.suture.sys.TrustedFiles;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Instant;

/**
 * One suture at a time per target: an fcntl lock on {@code <pid>.lock} in the run directory, held for a whole
 * transaction. The kernel drops it when its holder dies, so a killed suture never blocks the next one; while held,
 * the file names the holder, so the loser can say who holds the process and since when.
 */
final class TargetLock implements AutoCloseable {
    private final Path file;
    private final FileChannel channel;
    private final FileLock lock;

    private TargetLock(Path file, FileChannel channel, FileLock lock) {
        this.file = file;
        this.channel = channel;
        this.lock = lock;
    }

    /** Takes the lock of {@code pid} for {@code what}, or fails at once naming the suture that holds it. */
    static TargetLock acquire(int pid, String what) {
        ProcessIds.requireUserProcess(pid); // before any file is made for it
        Path file = RunDirectory.ensure().resolve(pid + ".lock");
        String me = "suture pid " + ProcessHandle.current().pid() + " (" + what + ") since " + Instant.now();
        FileChannel channel = null;
        try {
            channel = TrustedFiles.openOrCreate(file, "the lock", RunDirectory.FILE_ADVICE);
            FileLock lock;
            try {
                lock = channel.tryLock();
            } catch (OverlappingFileLockException e) {
                lock = null; // held by another thread of this very JVM
            }
            if (lock == null) {
                // read through the same channel: closing any other descriptor of the file would drop the
                // locks this JVM holds on it (POSIX record locks belong to the process, not the descriptor)
                String holder = read(channel);
                throw new SutureException(SutureException.Kind.NOT_PERMITTED, "pid " + pid + " is being changed by"
                        + " another suture" + (holder.isBlank() ? "" : ": " + holder) + "; wait for it to finish,"
                        + " then try again");
            }
            channel.truncate(0);
            channel.write(ByteBuffer.wrap(me.getBytes(StandardCharsets.UTF_8)), 0);
            channel.force(false);
            return new TargetLock(file, channel, lock);
        } catch (IOException e) {
            closeQuietly(channel);
            throw RunDirectory.cannotWrite(file, e);
        } catch (RuntimeException e) {
            closeQuietly(channel);
            throw e;
        }
    }

    /**
     * Empties the file and releases the lock. The file stays: deleting it would let a suture that opened it just
     * before lock an orphan while a third one locks a new file of the same name.
     */
    @Override
    public void close() {
        try {
            channel.truncate(0);
            lock.release();
        } catch (IOException ignored) {
            // the lock dies with the channel anyway
        } finally {
            closeQuietly(channel);
        }
    }

    private static String read(FileChannel channel) throws IOException {
        var buf = ByteBuffer.allocate(4096);
        channel.read(buf, 0);
        return new String(buf.array(), 0, buf.position(), StandardCharsets.UTF_8).strip();
    }

    private static void closeQuietly(FileChannel channel) {
        if (channel != null) {
            try {
                channel.close();
            } catch (IOException ignored) {
                // nothing held through it any more
            }
        }
    }
}
