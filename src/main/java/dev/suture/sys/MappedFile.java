package dev.suture.sys;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;

/**
 * A range of a file mapped into this JVM (MAP_SHARED): a store lands in the file's page cache as a write(2) would,
 * without a system call. Unmapped by the thread that mapped it; closed from another thread it stays mapped until
 * the JVM exits (a few KB of address space).
 */
public final class MappedFile implements AutoCloseable {
    private final Arena arena;
    private final MemorySegment bytes;

    private MappedFile(Arena arena, MemorySegment bytes) {
        this.arena = arena;
        this.bytes = bytes;
    }

    /** Maps {@code length} bytes of {@code channel} (opened for reading and writing) at {@code offset}. */
    public static MappedFile map(FileChannel channel, long offset, int length) throws IOException {
        var arena = Arena.ofConfined();
        try {
            return new MappedFile(arena, channel.map(FileChannel.MapMode.READ_WRITE, offset, length, arena));
        } catch (IOException | RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    public long length() {
        return bytes.byteSize();
    }

    public void set(long offset, byte value) {
        bytes.set(ValueLayout.JAVA_BYTE, offset, value);
    }

    /** Stores {@code length} bytes of {@code src} from {@code srcOffset} at {@code offset}, in ascending order. */
    public void store(byte[] src, int srcOffset, long offset, int length) {
        MemorySegment.copy(src, srcOffset, bytes, ValueLayout.JAVA_BYTE, offset, length);
    }

    @Override
    public void close() {
        try {
            arena.close();
        } catch (WrongThreadException e) {
            // mapped by another thread: stays mapped until the JVM exits
        }
    }
}
