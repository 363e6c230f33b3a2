package dev.suture.elf;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * A NUL-terminated string table in a file: reads names by offset, never past the table's end. The positions of
 * the NULs are found in one pass on first use, so a table whose strings overlap or lack terminators costs linear
 * time, however many symbols point into it.
 */
final class StringTable {
    private final ByteBuffer data; // absolute offsets into the file
    private final int start;
    private final int size;
    private final String file;
    private final String what;
    private volatile int[] nuls; // table-relative positions of every NUL, ascending; computed once
    /**
     * Bytes decoded so far, against a budget of a few times the table: names that all point into one long string
     * would otherwise cost (symbols x string length) bytes of copies.
     */
    private long decoded;
    private final long budget;

    StringTable(ByteBuffer data, int start, int size, String file, String what) {
        this(data, start, size, file, what, 8L * size + (1 << 20));
    }

    private StringTable(ByteBuffer data, int start, int size, String file, String what, long budget) {
        this.budget = budget;
        this.data = data;
        this.start = start;
        this.size = size;
        this.file = file;
        this.what = what;
    }

    /**
     * The same table without a budget, for one kept for the file's lifetime and asked again and again (the
     * dynamic string table): its few lookups are each bounded by the table.
     */
    StringTable unbudgeted() {
        return new StringTable(data, start, size, file, what, Long.MAX_VALUE);
    }

    /** The string at {@code offset}; an offset past the table or a string without its NUL is a format error. */
    String at(long offset, String user) {
        if (offset < 0 || offset >= size) {
            if (offset == 0 && size == 0) {
                return "";
            }
            throw new ElfFormatException(file, user + ": name offset 0x" + Long.toHexString(offset) + " is outside "
                    + what + " (size 0x" + Integer.toHexString(size) + ")");
        }
        int from = (int) offset;
        int end = nextNul(from);
        if (end < 0) {
            throw new ElfFormatException(file, user + ": the name at offset 0x" + Long.toHexString(offset)
                    + " in " + what + " is not NUL-terminated");
        }
        if (end == from) {
            return "";
        }
        decoded += end - from;
        if (decoded > budget) {
            throw new ElfFormatException(file, user + ": the names in " + what + " overlap so much that reading"
                    + " them would copy more than 8 times its " + size + " bytes; the file is corrupt or hostile");
        }
        byte[] b = new byte[end - from];
        data.get(start + from, b);
        return new String(b, StandardCharsets.UTF_8);
    }

    private int nextNul(int from) {
        int[] nuls = this.nuls;
        if (nuls == null) {
            int count = 0;
            for (int i = 0; i < size; i++) {
                if (data.get(start + i) == 0) {
                    count++;
                }
            }
            int[] found = new int[count];
            for (int i = 0, k = 0; i < size; i++) {
                if (data.get(start + i) == 0) {
                    found[k++] = i;
                }
            }
            this.nuls = nuls = found;
        }
        int i = Arrays.binarySearch(nuls, from);
        if (i < 0) {
            i = -i - 1;
        }
        return i < nuls.length ? nuls[i] : -1;
    }
}
