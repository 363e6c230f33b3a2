package dev.suture.live;

import dev.suture.proc.InjectionLog;
import dev.suture.sys.MappedFile;
import dev.suture.sys.TrustedFiles;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.util.Arrays;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.Set;

/**
 * What a transaction is about to do to a process, written and fsync'd before it does it (principle 3), so that
 * {@code suture recover} can finish or undo it after suture died at any instant: the region it maps, every byte
 * it will write with the bytes to put back, the regions it will unmap, and each thread it borrows for a system
 * call with that thread's registers. One append-only text file per target, {@code <pid>.journal} in
 * {@link RunDirectory}, deleted when the transaction has ended either way. docs/journal.md is its specification.
 *
 * <p>Every record is written before the action it describes, and nothing is written inside the stop-the-world
 * window: the window's writes are recorded before the threads stop, its end after they run again. Records written
 * while the target runs are also forced to the disk.
 */
final class Journal implements InjectionLog, AutoCloseable {
    static final String MAGIC = "suture-journal 1";
    private static final HexFormat HEX = HexFormat.of();

    enum Operation { APPLY, REVERT }

    private final Path file;
    private final FileChannel channel;
    private boolean ended;
    private boolean scratch;
    /** Threads borrowed and not given back; a thread recorded again (new registers) is still one. */
    private final Set<Integer> borrowed = new HashSet<>();
    private int synced;
    private long syncedNanos;
    private int unsynced;
    private long unsyncedNanos;
    private static final boolean DEBUG = System.getenv("SUTURE_DEBUG") != null;

    private Journal(Path file, FileChannel channel) {
        this.file = file;
        this.channel = channel;
    }

    /** Larger than any journal a transaction and its recoveries write; a larger file is damage or an attack. */
    static final int MAX_BYTES = 4 << 20;
    static final String ROLE = "the journal";

    /**
     * Starts the journal of a transaction on {@code pid}. The caller holds the target's {@link TargetLock}; a
     * journal left by an earlier, interrupted transaction must have been recovered (see {@link #refusePending}).
     * The file appears under its name only with its header complete (written, forced, then linked in), so a
     * {@code <pid>.journal} never exists empty or headerless, even after a full disk or a kill at any instant.
     */
    static Journal begin(int pid, Operation op, String what) {
        Path dir = RunDirectory.ensure();
        Path file = dir.resolve(pid + ".journal");
        Path staging = dir.resolve(pid + ".journal." + ProcessHandle.current().pid() + STAGING_SUFFIX);
        FileChannel channel = null;
        try {
            Files.deleteIfExists(staging); // left by a dead suture that had our pid
            channel = TrustedFiles.createNew(staging); // READ too: FileChannel.map needs it (see stub)
            var journal = new Journal(file, channel);
            journal.append(MAGIC + "\nbegin " + op.name().toLowerCase(Locale.ROOT) + " pid=" + pid
                    + " start=" + startOf(pid).map(Instant::toString).orElse("-") + " tool="
                    + ProcessHandle.current().pid() + " at=" + Instant.now() + " what=" + escape(what));
            Files.createLink(file, staging); // atomic, and never over an existing journal
            Files.delete(staging);
            return journal;
        } catch (IOException | RuntimeException e) {
            if (channel != null) {
                try {
                    channel.close();
                    Files.deleteIfExists(staging);
                } catch (IOException suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            throw e instanceof IOException io ? RunDirectory.cannotWrite(file, io) : (RuntimeException) e;
        }
    }

    /** The suffix of a journal being started, before its header is complete: {@code <pid>.journal.<suture pid>.new}. */
    static final String STAGING_SUFFIX = ".new";

    /**
     * A journal that no recovery ever reads, deleted on close: {@code rehearsal-<our pid>.journal} in the run
     * directory (no process's journal: those are named by the target's pid alone). The rehearsal of a
     * {@link Preparation} records into it, so that its appends run the same code as a transaction's.
     */
    static Journal scratch() throws IOException {
        Path file = RunDirectory.ensure().resolve(REHEARSAL_PREFIX + ProcessHandle.current().pid() + ".journal");
        Files.deleteIfExists(file); // left by a dead suture that had our pid
        var journal = new Journal(file, TrustedFiles.createNew(file));
        journal.ended = true;
        journal.scratch = true;
        return journal;
    }

    static final String REHEARSAL_PREFIX = "rehearsal-";

    /** Reopens a journal left behind, to append what recovery does. */
    static Journal resume(JournalReader.Pending pending) {
        try {
            // not APPEND, which FileChannel refuses with READ (that FileChannel.map needs): this is the one writer
            var channel = TrustedFiles.openExisting(pending.file(), ROLE, RunDirectory.FILE_ADVICE,
                    StandardOpenOption.WRITE, StandardOpenOption.READ).orElseThrow(() -> new NoSuchFileException(
                    pending.file().toString()));
            channel.position(channel.size());
            return new Journal(pending.file(), channel);
        } catch (IOException e) {
            throw RunDirectory.cannotWrite(pending.file(), e);
        }
    }

    /** The region about to be mapped, and the part of it that holds code (forbidden on the stacks to undo it). */
    void region(long address, long size, long textStart, long textEnd) {
        append("region " + hex(address) + " " + hex(size) + " " + hex(textStart) + " " + hex(textEnd));
    }

    /** Code that must be on no stack before the writes can be completed (revert: the patch being removed). */
    void forbid(long start, long end) {
        append("forbid " + hex(start) + " " + hex(end));
    }

    /** The writes of the window, each with the bytes to put back. */
    void writes(List<ApplyTransaction.Write> writes) {
        var sb = new StringBuilder();
        for (var w : writes) {
            if (!sb.isEmpty()) {
                sb.append('\n');
            }
            sb.append("write ").append(hex(w.address())).append(' ').append(HEX.formatHex(w.bytes())).append(' ')
                    .append(HEX.formatHex(w.undo()));
        }
        if (!sb.isEmpty()) {
            append(sb.toString());
        }
    }

    /** The window's writes are all in: from here on the transaction can only be finished, not undone. */
    void committed() {
        append("committed");
    }

    /** A region the transaction will unmap once committed (an older patch replaced, a patch reverted). */
    void unmap(long address, long size, String patchId) {
        append("unmap " + hex(address) + " " + hex(size) + " " + escape(patchId));
    }

    /** The transaction's region is unmapped (the address may be handed out again). */
    void unmapped(long address) {
        append("unmapped " + hex(address));
    }

    /**
     * Not forced (an fsync would leave the next append cold). Then the room for that hold's {@code inject} record: a
     * blank line mapped into this JVM, its page touched now, so that {@link #borrowing} inside the hold stores the
     * record instead of calling write(2) (docs/apply.md); without the mapping, the record is appended.
     */
    @Override
    public void stub(long address, byte[] original, byte[] code) {
        append("stub " + hex(address) + " " + HEX.formatHex(original) + " " + HEX.formatHex(code), false);
        unmapBlank();
        try {
            long at = channel.size();
            write(ByteBuffer.wrap(BLANK), false);
            blank = MappedFile.map(channel, at, BLANK.length);
            blank.set(0, (byte) '#'); // the first store faults the page in: here, not later
            blankFree = true;
        } catch (IOException | RuntimeException e) {
            unmapBlank(); // the blank stays a blank; the record will be appended
        }
    }

    @Override
    public void unstub(long address) {
        unmapBlank();
        append("unstub " + hex(address), false);
    }

    /** A blank line that {@link #borrowing} may fill: {@code #}, spaces, a newline; longer than any record. */
    private static final byte[] BLANK = blank(640);
    private MappedFile blank;
    /** Whether {@link #blank} is mapped and still blank. */
    private boolean blankFree;

    private static byte[] blank(int length) {
        byte[] b = new byte[length];
        Arrays.fill(b, (byte) ' ');
        b[0] = '#';
        b[length - 1] = '\n';
        return b;
    }

    /**
     * Unmaps the blank line, filled or not. On the tracer thread, which maps it ({@link #stub}) and is the one to give
     * the thread back ({@link #returned}) and remove the stub ({@link #unstub}); a blank still mapped when another
     * thread closes the journal (an injection that failed in between) stays mapped until this JVM exits.
     */
    private void unmapBlank() {
        blankFree = false;
        if (blank != null) {
            var mapped = blank;
            blank = null;
            mapped.close();
        }
    }

    /**
     * Appended inside the hold, between the thread's stop and its first instruction of the stub: built into a
     * reused array with no string on the way, which is many times quicker (docs/apply.md).
     */
    @Override
    public void borrowing(int tid, long stub, byte[] stubOriginal, byte[] stubCode, long[] registers) {
        int at = ascii(0, "inject ");
        at = decimal(at, tid);
        at = ascii(at, " 0x");
        at = hex(at, stub);
        line[at++] = ' ';
        at = hex(at, stubOriginal);
        line[at++] = ' ';
        at = hex(at, stubCode);
        for (long r : registers) {
            line[at++] = ' ';
            at = hex(at, r);
        }
        line[at++] = '\n';
        if (blankFree && at <= BLANK.length) {
            // over the blank, its spaces and newline left as they are after the record; the first byte last,
            // so that a record cut short still reads as a blank line (x86 stores are seen in program order)
            blank.store(line, 1, 1, at - 2);
            blank.set(0, line[0]);
            blankFree = false; // unmapped once the thread is given back
        } else {
            write(ByteBuffer.wrap(line, 0, at), false);
        }
        borrowed.add(tid);
    }

    /** Where {@link #borrowing} builds its record (about 500 bytes at most; grown should it need more). */
    private byte[] line = new byte[1024];
    private static final byte[] DIGITS = "0123456789abcdef".getBytes(StandardCharsets.US_ASCII);

    /** Makes room for {@code more} bytes after {@code at} in {@link #line}. */
    private void room(int at, int more) {
        if (at + more > line.length) {
            line = Arrays.copyOf(line, Math.max(2 * line.length, at + more));
        }
    }

    private int ascii(int at, String s) {
        room(at, s.length());
        for (int i = 0; i < s.length(); i++) {
            line[at++] = (byte) s.charAt(i);
        }
        return at;
    }

    private int decimal(int at, int v) {
        return ascii(at, Integer.toString(v)); // a tid: small, and this allocation is the record's only one
    }

    /** {@code v} as {@link Long#toHexString} writes it: unsigned, lower case, no leading zeros. */
    private int hex(int at, long v) {
        int digits = Math.max(1, (67 - Long.numberOfLeadingZeros(v)) / 4);
        room(at, digits + 1);
        for (int i = digits - 1; i >= 0; i--, v >>>= 4) {
            line[at + i] = DIGITS[(int) (v & 15)];
        }
        return at + digits;
    }

    /** {@code bytes} as {@link HexFormat#formatHex} writes them. */
    private int hex(int at, byte[] bytes) {
        room(at, 2 * bytes.length + 1);
        for (byte b : bytes) {
            line[at++] = DIGITS[(b >> 4) & 15];
            line[at++] = DIGITS[b & 15];
        }
        return at;
    }

    @Override
    public void returned(int tid) {
        unmapBlank();
        append("returned " + tid, false);
        borrowed.remove(tid);
    }

    /** Threads borrowed and not (yet) given back. */
    int borrowed() {
        return borrowed.size();
    }

    /** The transaction ended, done or fully undone: the journal goes. */
    void end() {
        ended = true;
    }

    boolean isEnded() {
        return ended;
    }

    /** Deletes the file if the transaction {@link #end() ended}; otherwise leaves it for {@code suture recover}. */
    @Override
    public void close() {
        if (DEBUG && !scratch) {
            System.err.printf("journal: %d synced appends in %d us while the target ran; %d unsynced in %d us around"
                    + " injection stops (inside one, a record stored into its blank line, or appended); none in the"
                    + " window%n", synced, syncedNanos / 1000, unsynced,
                    unsyncedNanos / 1000);
        }
        unmapBlank();
        try {
            channel.close();
            if (ended) {
                Files.deleteIfExists(file);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private void append(String record) {
        append(record, true);
    }

    /**
     * Writes one record; {@code sync} also forces it to the disk. Once write(2) returns, the record is in the page
     * cache, which outlives suture: that is what recovery after suture's death needs. The force adds safety only
     * against the machine crashing, which takes the target with it; it costs milliseconds on a disk, so records
     * written while the target is stopped (a borrowed thread's) are not forced.
     */
    private void append(String record, boolean sync) {
        write(ByteBuffer.wrap((record + "\n").getBytes(StandardCharsets.UTF_8)), sync);
    }

    /** Writes one whole record ({@code buf}, newline included); see {@link #append(String, boolean)}. */
    private void write(ByteBuffer buf, boolean sync) {
        long start = System.nanoTime();
        try {
            while (buf.hasRemaining()) {
                channel.write(buf);
            }
            if (sync) {
                channel.force(false);
                synced++;
                syncedNanos += System.nanoTime() - start;
            } else {
                unsynced++;
                unsyncedNanos += System.nanoTime() - start;
            }
        } catch (IOException e) {
            throw RunDirectory.cannotWrite(file, e);
        }
    }

    static Optional<Instant> startOf(int pid) {
        return ProcessHandle.of(pid).flatMap(h -> h.info().startInstant());
    }


    private static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }


    /** Free text in a space-separated record: spaces, newlines and '%' as %XX. */
    private static String escape(String s) {
        var sb = new StringBuilder();
        for (char c : s.toCharArray()) {
            if (c == ' ' || c == '\n' || c == '%' || c == '\r' || c == '=') {
                sb.append('%').append(String.format("%02x", (int) c));
            } else {
                sb.append(c);
            }
        }
        return sb.toString();
    }

}
