package dev.suture.elf;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/** A NUL-terminated string table in a file: reads names by offset, never past the table's end. */
final class StringTable {
    private final ByteBuffer data; // absolute offsets into the file
    private final int start;
    private final int size;
    private final String file;
    private final String what;

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
        int from = start + (int) offset;
        int end = start + size;
        int p = from;
        while (p < end && data.get(p) != 0) {
            p++;
        }
        if (p == end) {
            throw new ElfFormatException(file, user + ": the name at offset 0x" + Long.toHexString(offset)
                    + " in " + what + " is not NUL-terminated");
        }
        if (p == from) {
            return "";
        }
        byte[] b = new byte[p - from];
        data.get(from, b);
        return new String(b, StandardCharsets.UTF_8);
    }
}
