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
    private int[] nuls; // table-relative positions of every NUL, ascending

    StringTable(ByteBuffer data, int start, int size, String file, String what) {
        this.data = data;
        this.start = start;
        this.size = size;
        this.file = file;
        this.what = what;
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
        byte[] b = new byte[end - from];
        data.get(start + from, b);
        return new String(b, StandardCharsets.UTF_8);
    }

    private int nextNul(int from) {
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
            nuls = found;
        }
        int i = Arrays.binarySearch(nuls, from);
        if (i < 0) {
            i = -i - 1;
        }
        return i < nuls.length ? nuls[i] : -1;
    }
}
