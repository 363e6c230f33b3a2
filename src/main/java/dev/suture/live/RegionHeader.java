package dev.suture.live;

import dev.suture.SutureException;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The header at the start of every patch region in a target (DESIGN.md principle 8): who the patch is, what it is
 * bound to, where its parts lie, and for every replaced function the entry address and the bytes our jump
 * overwrote. {@code info} and {@code revert} read it back from the target's memory alone. The byte layout is
 * specified in docs/region-format.md; this class is its only encoder and decoder.
 */
public record RegionHeader(
        int formatVersion,
        State state,
        int headerSize,
        long regionSize,
        long createdNanos,
        long appliedNanos,
        long moduleBias,
        int sequence,
        Layout layout,
        String patchId,
        String buildId,
        String modulePath,
        String targetName,
        List<Function> functions) {

    /** "SUTURE" NUL 'R': the first 8 bytes of every region. */
    static final byte[] MAGIC = {'S', 'U', 'T', 'U', 'R', 'E', 0, 'R'};
    public static final int FORMAT_VERSION = 1;
    static final int FIXED_SIZE = 0x80;
    static final int FUNCTION_SIZE = 0x30;
    /** A jump-table entry: a jump (absolute thunk or {@code jmp *slot(%rip)}) padded with int3. */
    static final int JUMP_ENTRY_SIZE = 16;
    static final int GOT_ENTRY_SIZE = 8;
    /** A header larger than this is treated as corrupt rather than read. */
    static final int MAX_HEADER_SIZE = 1 << 20;

    /** Where a transaction stands; recover and info read it. */
    public enum State {
        /** Body written, no jump installed yet: an interrupted apply left it (nothing to undo in the code). */
        PREPARED(1),
        /** The jumps are installed. */
        APPLIED(2),
        /** Revert began: some entries may hold the saved bytes again. */
        REVERTING(3);

        final int code;

        State(int code) {
            this.code = code;
        }

        static State of(int code) {
            for (State s : values()) {
                if (s.code == code) {
                    return s;
                }
            }
            return null;
        }
    }

    /**
     * Offsets (from the region start) and sizes of the region's parts. The patch's relocated {@code .eh_frame} lies
     * inside the text ({@code ehFrameOffset} and {@code ehFrameSize} both 0 when the patch has none, and in regions
     * written before suture recorded it). {@code framesOffset} is the block in the data through which that CFI is
     * registered with the target's unwinder ({@link FrameRegistration}), 0 when it is not.
     */
    public record Layout(int textOffset, int textSize, int jumpTableOffset, int jumpTableCount, int gotOffset,
                         int gotCount, int dataOffset, int dataSize, int ehFrameOffset, int ehFrameSize,
                         int framesOffset) {
        /** Whether the region records where its {@code .eh_frame} lies. */
        public boolean hasEhFrame() {
            return ehFrameSize > 0;
        }

        /** Whether the region has the block and the helper through which its CFI is registered. */
        public boolean hasFrames() {
            return framesOffset != 0;
        }

        /** Where the helper of {@link FrameRegistration} lies: the last bytes of the text. */
        public int framesHelperOffset() {
            return textOffset + textSize - FrameRegistration.HELPER_SPACE;
        }
    }

    /**
     * One replaced function: its entry in the target, the replacement in this region, the region whose jump this
     * patch overwrote (0 if the entry held the original code), and the bytes before and after.
     */
    public record Function(String name, long oldAddress, int oldSize, long newAddress, int newSize,
                           long previousRegion, byte[] savedBytes, byte[] installedBytes) {
        public Function {
            if (savedBytes.length != 5 || installedBytes.length != 5) {
                throw new IllegalArgumentException("saved and installed entries are 5 bytes");
            }
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Function f && name.equals(f.name) && oldAddress == f.oldAddress
                    && oldSize == f.oldSize && newAddress == f.newAddress && newSize == f.newSize
                    && previousRegion == f.previousRegion
                    && Arrays.equals(savedBytes, f.savedBytes) && Arrays.equals(installedBytes, f.installedBytes);
        }

        @Override
        public int hashCode() {
            return Long.hashCode(oldAddress) * 31 + name.hashCode();
        }
    }

    public RegionHeader {
        functions = List.copyOf(functions);
    }

    /** The same header in another state (the apply and revert transactions flip it in the target). */
    public RegionHeader withState(State s, long appliedAt) {
        return new RegionHeader(formatVersion, s, headerSize, regionSize, createdNanos, appliedAt, moduleBias,
                sequence, layout, patchId, buildId, modulePath, targetName, functions);
    }

    /** Size of the encoded header for these strings and functions, rounded to 64 bytes. */
    public static int sizeFor(String patchId, String buildId, String modulePath, String targetName,
                              List<String> functionNames) {
        int strings = 0;
        for (String s : List.of(patchId, buildId, modulePath, targetName)) {
            strings += utf8(s).length + 1;
        }
        for (String n : functionNames) {
            strings += utf8(n).length + 1;
        }
        int raw = FIXED_SIZE + functionNames.size() * FUNCTION_SIZE + strings;
        return (raw + 63) & ~63;
    }

    /** Offset of the state field, so a transaction can flip it with one small write. */
    public static final int STATE_OFFSET = 0x0a;
    /** Offset of the applied timestamp. */
    public static final int APPLIED_OFFSET = 0x20;

    /** The encoded header: exactly {@link #headerSize()} bytes. */
    public byte[] encode() {
        var strings = new StringTable();
        int idPatch = strings.add(patchId);
        int idBuild = strings.add(buildId);
        int idModule = strings.add(modulePath);
        int idTarget = strings.add(targetName);
        int[] names = new int[functions.size()];
        for (int i = 0; i < names.length; i++) {
            names[i] = strings.add(functions.get(i).name());
        }
        int functionsOffset = FIXED_SIZE;
        int stringsOffset = functionsOffset + functions.size() * FUNCTION_SIZE;
        byte[] table = strings.bytes();
        if (stringsOffset + table.length > headerSize) {
            throw new SutureException(SutureException.Kind.INTERNAL, "region header of " + headerSize
                    + " bytes cannot hold " + (stringsOffset + table.length) + " bytes");
        }
        var b = ByteBuffer.allocate(headerSize).order(ByteOrder.LITTLE_ENDIAN);
        b.put(MAGIC);
        b.putShort(0x08, (short) formatVersion);
        b.putShort(0x0a, (short) state.code);
        b.putInt(0x0c, headerSize);
        b.putLong(0x10, regionSize);
        b.putLong(0x18, createdNanos);
        b.putLong(0x20, appliedNanos);
        b.putLong(0x28, moduleBias);
        b.putInt(0x30, sequence);
        b.putInt(0x34, functions.size());
        b.putInt(0x38, layout.textOffset());
        b.putInt(0x3c, layout.textSize());
        b.putInt(0x40, layout.jumpTableOffset());
        b.putInt(0x44, layout.jumpTableCount());
        b.putInt(0x48, layout.gotOffset());
        b.putInt(0x4c, layout.gotCount());
        b.putInt(0x50, layout.dataOffset());
        b.putInt(0x54, layout.dataSize());
        b.putInt(0x58, stringsOffset);
        b.putInt(0x5c, table.length);
        b.putInt(0x60, idPatch);
        b.putInt(0x64, idBuild);
        b.putInt(0x68, idModule);
        b.putInt(0x6c, idTarget);
        b.putInt(0x70, functionsOffset);
        b.putInt(0x74, layout.ehFrameOffset());
        b.putInt(0x78, layout.ehFrameSize());
        b.putInt(0x7c, layout.framesOffset());
        for (int i = 0; i < functions.size(); i++) {
            Function f = functions.get(i);
            int at = functionsOffset + i * FUNCTION_SIZE;
            b.putLong(at, f.oldAddress());
            b.putLong(at + 0x08, f.newAddress());
            b.putLong(at + 0x10, f.previousRegion());
            b.putInt(at + 0x18, f.oldSize());
            b.putInt(at + 0x1c, f.newSize());
            b.putInt(at + 0x20, names[i]);
            b.put(at + 0x24, f.savedBytes());
            b.put(at + 0x29, f.installedBytes());
        }
        b.put(stringsOffset, table);
        return b.array();
    }

    /** True if {@code bytes} start with the region magic. */
    public static boolean hasMagic(byte[] bytes) {
        return bytes.length >= MAGIC.length && Arrays.equals(bytes, 0, MAGIC.length, MAGIC, 0, MAGIC.length);
    }

    /** The header size an encoded header claims (valid after {@link #hasMagic}); bytes needed for {@link #decode}. */
    public static int claimedSize(byte[] fixedPart) {
        if (fixedPart.length < 0x10) {
            return -1;
        }
        return ByteBuffer.wrap(fixedPart).order(ByteOrder.LITTLE_ENDIAN).getInt(0x0c);
    }

    /**
     * Decodes a header read from the target at {@code where} (for messages). Every offset is checked against the
     * bytes: a corrupt header is a {@link RegionFormatException}, never an index error.
     */
    public static RegionHeader decode(byte[] bytes, String where) {
        if (!hasMagic(bytes)) {
            throw new RegionFormatException(where + ": no suture region header (magic missing)");
        }
        if (bytes.length < FIXED_SIZE) {
            throw new RegionFormatException(where + ": region header truncated at " + bytes.length + " bytes");
        }
        var b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        int version = b.getShort(0x08) & 0xffff;
        if (version != FORMAT_VERSION) {
            throw new RegionFormatException(where + ": region format version " + version
                    + " is not supported (this suture reads " + FORMAT_VERSION + "); use the suture that applied it");
        }
        State state = State.of(b.getShort(0x0a) & 0xffff);
        if (state == null) {
            throw new RegionFormatException(where + ": unknown region state " + (b.getShort(0x0a) & 0xffff));
        }
        int headerSize = b.getInt(0x0c);
        if (headerSize < FIXED_SIZE || headerSize > bytes.length || headerSize > MAX_HEADER_SIZE) {
            throw new RegionFormatException(where + ": region header size " + headerSize + " is invalid");
        }
        long regionSize = b.getLong(0x10);
        int count = b.getInt(0x34);
        var layout = new Layout(b.getInt(0x38), b.getInt(0x3c), b.getInt(0x40), b.getInt(0x44), b.getInt(0x48),
                b.getInt(0x4c), b.getInt(0x50), b.getInt(0x54), b.getInt(0x74), b.getInt(0x78), b.getInt(0x7c));
        int stringsOffset = b.getInt(0x58);
        int stringsSize = b.getInt(0x5c);
        int functionsOffset = b.getInt(0x70);
        if (!within(stringsOffset, stringsSize, headerSize) || count < 0
                || !within(functionsOffset, (long) count * FUNCTION_SIZE, headerSize)) {
            throw new RegionFormatException(where + ": region header tables lie outside the header");
        }
        checkLayout(layout, regionSize, where);
        var strings = new StringReader(bytes, stringsOffset, stringsSize, where);
        var functions = new ArrayList<Function>(count);
        for (int i = 0; i < count; i++) {
            int at = functionsOffset + i * FUNCTION_SIZE;
            functions.add(new Function(strings.at(b.getInt(at + 0x20)), b.getLong(at), b.getInt(at + 0x18),
                    b.getLong(at + 0x08), b.getInt(at + 0x1c), b.getLong(at + 0x10),
                    Arrays.copyOfRange(bytes, at + 0x24, at + 0x29), Arrays.copyOfRange(bytes, at + 0x29, at + 0x2e)));
        }
        return new RegionHeader(version, state, headerSize, regionSize, b.getLong(0x18), b.getLong(0x20),
                b.getLong(0x28), b.getInt(0x30), layout, strings.at(b.getInt(0x60)), strings.at(b.getInt(0x64)),
                strings.at(b.getInt(0x68)), strings.at(b.getInt(0x6c)), functions);
    }

    private static void checkLayout(Layout l, long regionSize, String where) {
        boolean ok = regionSize > 0 && regionSize < (1L << 40)
                && within(l.textOffset(), l.textSize(), regionSize)
                && within(l.jumpTableOffset(), (long) l.jumpTableCount() * JUMP_ENTRY_SIZE, regionSize)
                && within(l.gotOffset(), (long) l.gotCount() * GOT_ENTRY_SIZE, regionSize)
                && within(l.dataOffset(), l.dataSize(), regionSize)
                && (l.ehFrameOffset() == 0 && l.ehFrameSize() == 0
                    || l.ehFrameSize() > 0 && l.ehFrameOffset() >= l.textOffset()
                    && within(l.ehFrameOffset() - l.textOffset(), l.ehFrameSize(), l.textSize()))
                && (l.framesOffset() == 0
                    || l.hasEhFrame() && l.framesOffset() % 8 == 0 && l.framesOffset() >= l.dataOffset()
                    && within(l.framesOffset() - (long) l.dataOffset(), FrameRegistration.BLOCK_SIZE, l.dataSize())
                    // the helper after the .eh_frame and its zero terminator, at the end of the text
                    && l.ehFrameOffset() + (long) l.ehFrameSize() + 4 <= l.framesHelperOffset());
        if (!ok) {
            throw new RegionFormatException(where + ": region layout does not fit its " + regionSize + " bytes");
        }
    }

    private static boolean within(long offset, long size, long limit) {
        return offset >= 0 && size >= 0 && offset + size <= limit;
    }

    private static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /** NUL-terminated strings, deduplicated. */
    private static final class StringTable {
        private final Map<String, Integer> offsets = new LinkedHashMap<>();
        private final ByteArrayOutputStream out = new ByteArrayOutputStream();

        int add(String s) {
            return offsets.computeIfAbsent(s, k -> {
                int at = out.size();
                out.writeBytes(utf8(k));
                out.write(0);
                return at;
            });
        }

        byte[] bytes() {
            return out.toByteArray();
        }
    }

    private record StringReader(byte[] bytes, int offset, int size, String where) {
        String at(int index) {
            if (index < 0 || index >= size) {
                throw new RegionFormatException(where + ": string index " + index + " outside the string table");
            }
            int start = offset + index;
            int end = start;
            while (end < offset + size && bytes[end] != 0) {
                end++;
            }
            if (end == offset + size) {
                throw new RegionFormatException(where + ": unterminated string in the region header");
            }
            return new String(bytes, start, end - start, StandardCharsets.UTF_8);
        }
    }
}
