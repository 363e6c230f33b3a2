package dev.suture.build;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.SequencedSet;
import java.util.regex.Pattern;

/**
 * The archive members a link took, read from the GNU ld map file the wrapper asks for. A static library
 * contributes only the members that resolved a reference, and only those belong to the target.
 */
final class LinkMap {
    /** {@code archive(member)} as ld prints it: the archive as it found it, the member's name in the archive. */
    record ArchiveMember(String archive, String member) {}

    private static final Pattern MEMBER = Pattern.compile("(\\S+)\\(([^()\\s]+)\\)");

    private LinkMap() {}

    /**
     * Every {@code archive(member)} in the map, in order of first mention. Linker-script patterns such as
     * {@code *(.text)} match too; the caller keeps only archives the build made.
     */
    static List<ArchiveMember> archiveMembers(Path map) throws IOException {
        SequencedSet<ArchiveMember> found = new LinkedHashSet<>();
        // Decoded leniently: a stray byte in some symbol name must not make the whole map unreadable.
        String text = new String(Files.readAllBytes(map), StandardCharsets.UTF_8);
        for (String line : text.split("\n")) {
            if (line.indexOf('(') < 0) {
                continue;
            }
            var m = MEMBER.matcher(line);
            while (m.find()) {
                String archive = m.group(1);
                if (!archive.startsWith("*") && !archive.equals("KEEP") && !archive.startsWith("SORT")) {
                    found.add(new ArchiveMember(archive, m.group(2)));
                }
            }
        }
        return List.copyOf(found);
    }
}
