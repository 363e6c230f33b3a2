package dev.suture.generate;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.SequencedSet;
import java.util.regex.Pattern;

/**
 * The archive members a link took, and the order it loaded its inputs in, read from the GNU ld map file the
 * wrapper asks for. A static library contributes only the members that resolved a reference, and only those belong
 * to the target. {@code loads} are the input files as ld loaded them ({@code LOAD} lines: objects and archives in
 * command-line order); an archive's members went in at its place, in the order of {@code archiveMembers}.
 */
record LinkMap(List<ArchiveMember> archiveMembers, List<String> thinMembers, List<String> loads) {

    /** {@code archive(member)} as ld prints it: the archive as it found it, the member's name in the archive. */
    record ArchiveMember(String archive, String member) {}

    private static final Pattern MEMBER = Pattern.compile("(\\S+)\\(([^()\\s]+)\\)");
    private static final String INCLUDED = "Archive member included to satisfy reference by file (symbol)";

    /**
     * Reads every {@code archive(member)} in the map, in order of first mention (the memory map names members
     * that --whole-archive took too), and the members of thin archives, which ld names by their own path in the
     * "Archive member included" list. Linker-script patterns such as {@code *(.text)} also look like
     * {@code archive(member)}; the caller keeps only archives the build made.
     */
    static LinkMap read(Path map) throws IOException {
        SequencedSet<ArchiveMember> members = new LinkedHashSet<>();
        SequencedSet<String> thin = new LinkedHashSet<>();
        SequencedSet<String> loads = new LinkedHashSet<>();
        // Decoded leniently: a stray byte in some symbol name must not make the whole map unreadable.
        String text = new String(Files.readAllBytes(map), StandardCharsets.UTF_8);
        // The "included" list is the heading, a blank line, one entry per member (long names wrap onto an
        // indented second line), and a blank line.
        int includedState = 0;          // 0 before, 1 after the heading, 2 in the entries, 3 after
        for (String line : text.split("\n")) {
            if (includedState == 0 && line.equals(INCLUDED)) {
                includedState = 1;
                continue;
            }
            if (includedState == 1 || includedState == 2) {
                if (line.isBlank()) {
                    includedState++;
                } else if (!Character.isWhitespace(line.charAt(0))) {
                    includedState = 2;
                    String first = line.split("\\s+", 2)[0];
                    if (first.indexOf('(') < 0) {
                        thin.add(first);
                    }
                }
            }
            if (line.startsWith("LOAD ")) {
                loads.add(line.substring(5).strip());
                continue;
            }
            if (line.indexOf('(') < 0) {
                continue;
            }
            var m = MEMBER.matcher(line);
            while (m.find()) {
                String archive = m.group(1);
                if (!archive.startsWith("*") && !archive.equals("KEEP") && !archive.startsWith("SORT")) {
                    members.add(new ArchiveMember(archive, m.group(2)));
                }
            }
        }
        return new LinkMap(List.copyOf(members), List.copyOf(thin), List.copyOf(loads));
    }
}
