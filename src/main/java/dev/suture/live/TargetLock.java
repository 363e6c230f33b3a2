package dev.suture.live;

import dev.suture.SutureException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Instant;

/**
 * One suture at a time per target: an fcntl lock on {@code <pid>.lock} in the run directory, held for a whole
 * transaction. The kernel drops it when its holder dies, so a killed suture never blocks the next one; the file
 * names the holder, so the loser can say who holds the process and since when.
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
        Path file = Journal.ensureDirectory().resolve(pid + ".lock");
        String me = "suture pid " + ProcessHandle.current().pid() + " (" + what + ") since " + Instant.now();
        for (int attempt = 0; attempt < 5; attempt++) {
            FileChannel channel = null;
            try {
                channel = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.READ,
                        StandardOpenOption.WRITE);
                FileLock lock;
                try {
                    lock = channel.tryLock();
                } catch (java.nio.channels.OverlappingFileLockException e) {
                    lock = null; // held by another thread of this very JVM
                }
                if (lock == null) {
                    String holder = readQuietly(file);
                    channel.close();
                    throw new SutureException(SutureException.Kind.NOT_PERMITTED, "pid " + pid + " is being changed"
                            + " by another suture" + (holder.isBlank() ? "" : ": " + holder) + "; wait for it to"
                            + " finish, then try again");
                }
                channel.truncate(0);
                channel.write(ByteBuffer.wrap(me.getBytes(StandardCharsets.UTF_8)), 0);
                // The holder before us may have deleted the file after we opened it: then our lock is on an
                // orphan, and the name belongs to whoever created it again. Ours only if the name shows our words.
                if (readQuietly(file).equals(me)) {
                    return new TargetLock(file, channel, lock);
                }
                lock.release();
                channel.close();
            } catch (IOException e) {
                closeQuietly(channel);
                throw new SutureException(SutureException.Kind.NOT_PERMITTED, "cannot lock " + file + " ("
                        + e.getMessage() + "); run as root, or point SUTURE_RUN_DIR at a directory you can write");
            } catch (RuntimeException e) {
                closeQuietly(channel);
                throw e;
            }
        }
        throw new SutureException(SutureException.Kind.NOT_PERMITTED, "pid " + pid + ": the lock " + file
                + " kept changing hands; another suture is working on it, try again");
    }

    /** Deletes the lock file while still holding it, then releases it. */
    @Override
    public void close() {
        try {
            Files.deleteIfExists(file);
            lock.release();
        } catch (IOException ignored) {
            // the lock dies with the channel anyway
        } finally {
            closeQuietly(channel);
        }
    }

    private static String readQuietly(Path file) {
        try {
            return Files.readString(file, StandardCharsets.UTF_8).strip();
        } catch (NoSuchFileException e) {
            return "";
        } catch (IOException e) {
            return "";
        }
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
