package dev.suture.generate;

import dev.suture.SutureException.Kind;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;

/**
 * The members of a Unix {@code ar} archive (GNU and BSD long names, and GNU thin archives), so a static library
 * produced by a build can be followed back to the objects in it.
 */
record ArArchive(Path path, boolean thin, List<Member> members) {

    /** One member: its name as {@code ar t} prints it, and its bytes (empty for a thin archive's members). */
    record Member(String name, byte[] bytes) {}

    private static final byte[] MAGIC = "!<arch>\n".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] THIN_MAGIC = "!<thin>\n".getBytes(StandardCharsets.US_ASCII);
    private static final int HEADER_SIZE = 60;

    static ArArchive read(Path path) throws IOException {
        byte[] data = Files.readAllBytes(path);
        boolean thin;
        if (startsWith(data, MAGIC)) {
            thin = false;
        } else if (startsWith(data, THIN_MAGIC)) {
            thin = true;
        } else {
            throw malformed(path, "no ar magic (not a static library)");
        }
        var members = new ArrayList<Member>();
        byte[] longNames = new byte[0];
        int pos = MAGIC.length;
        while (pos + HEADER_SIZE <= data.length) {
            String rawName = ascii(data, pos, 16).stripTrailing();
            String sizeField = ascii(data, pos + 48, 10).trim();
            if (data[pos + 58] != '`' || data[pos + 59] != '\n') {
                throw malformed(path, "bad member header at offset " + pos);
            }
            long size;
            try {
                size = Long.parseLong(sizeField);
            } catch (NumberFormatException e) {
                throw malformed(path, "bad member size '" + sizeField + "' at offset " + pos);
            }
            int start = pos + HEADER_SIZE;
            boolean special = rawName.equals("/") || rawName.equals("//") || rawName.equals("/SYM64/")
                    || rawName.startsWith("__.SYMDEF");
            // A thin archive stores only its symbol and name tables; the members stay where they were.
            boolean hasData = !thin || special;
            if (size < 0 || (hasData && size > data.length - start)) {
                throw malformed(path, "member at offset " + pos + " runs past the end of the file");
            }
            int length = (int) size;
            String name = rawName;
            int dataStart = start;
            if (rawName.equals("//")) {
                longNames = Arrays.copyOfRange(data, start, start + length);
            } else if (!special) {
                if (rawName.startsWith("#1/")) {                       // BSD: the name opens the data
                    int nameLength = parseInt(path, rawName.substring(3));
                    if (nameLength > length) {
                        throw malformed(path, "BSD member name longer than the member at offset " + pos);
                    }
                    name = ascii(data, start, nameLength).replace("\0", "");
                    dataStart += nameLength;
                    length -= nameLength;
                } else if (rawName.startsWith("/")) {                  // GNU: offset into the // table
                    name = longName(path, longNames, parseInt(path, rawName.substring(1)));
                } else if (rawName.endsWith("/")) {
                    name = rawName.substring(0, rawName.length() - 1);
                }
                byte[] bytes = hasData ? Arrays.copyOfRange(data, dataStart, dataStart + length) : new byte[0];
                members.add(new Member(name, bytes));
            }
            long next = (long) start + (hasData ? size : 0);
            pos = (int) Math.min(data.length, next + (next & 1));
        }
        return new ArArchive(path, thin, List.copyOf(members));
    }

    Optional<Member> member(String name) {
        return members.stream().filter(m -> m.name().equals(name)).findFirst();
    }

    private static String longName(Path path, byte[] table, int offset) {
        if (offset < 0 || offset >= table.length) {
            throw malformed(path, "long member name offset " + offset + " outside the name table");
        }
        int end = offset;
        while (end < table.length && table[end] != '\n') {
            end++;
        }
        String name = new String(table, offset, end - offset, StandardCharsets.UTF_8);
        return name.endsWith("/") ? name.substring(0, name.length() - 1) : name;
    }

    private static int parseInt(Path path, String s) {
        try {
            return Integer.parseInt(s.trim());
        } catch (NumberFormatException e) {
            throw malformed(path, "bad number '" + s + "' in a member name");
        }
    }

    private static boolean startsWith(byte[] data, byte[] prefix) {
        return data.length >= prefix.length && Arrays.equals(data, 0, prefix.length, prefix, 0, prefix.length);
    }

    private static String ascii(byte[] data, int offset, int length) {
        return new String(data, offset, length, StandardCharsets.ISO_8859_1);
    }

    private static SourceBuildException malformed(Path path, String why) {
        return new SourceBuildException(Kind.BAD_INPUT, "static library " + path + " is malformed: " + why);
    }
}
