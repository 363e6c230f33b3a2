package dev.suture.elf;

import dev.suture.testing.Gcc;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * Runs {@code readelf -W} on a file and turns its tables into normalized lines, and renders what ElfFile decoded
 * into the same lines, so a test can compare the two line by line.
 */
final class Readelf {
    private Readelf() {}

    private static final Pattern SECTION = Pattern.compile(
            "^\\s*\\[\\s*(\\d+)\\]\\s+(?:(\\S+)\\s+)?(\\S+)\\s+([0-9a-f]{16})\\s+([0-9a-f]+)\\s+([0-9a-f]+)\\s+"
                    + "([0-9a-f]+)\\s+(\\S*)\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)$");
    private static final Pattern SEGMENT = Pattern.compile(
            "^\\s+(\\S+)\\s+0x([0-9a-f]+)\\s0x([0-9a-f]+)\\s0x([0-9a-f]+)\\s0x([0-9a-f]+)\\s0x([0-9a-f]+)\\s(.{3})"
                    + "\\s0x([0-9a-f]+)$");
    private static final Pattern SYMTAB_HEADER = Pattern.compile("^Symbol table '(.*)' contains (\\d+) entr");
    private static final Pattern SYMBOL = Pattern.compile(
            "^\\s*(\\d+):\\s([0-9a-f]{16})\\s+(\\S+)\\s(\\S+)\\s+(\\S+)\\s+(\\S+)\\s+(\\S+)\\s?(.*)$");
    private static final Pattern RELOC_HEADER = Pattern.compile("^Relocation section '(.*)' at offset 0x[0-9a-f]+ "
            + "contains (\\d+) entr");
    private static final Pattern RELOC = Pattern.compile(
            "^([0-9a-f]{16})\\s+([0-9a-f]{16})\\s+(\\S+)\\s+(?:([0-9a-f]{16})\\s(.*?)\\s([+-])\\s([0-9a-f]+)|(-?[0-9a-f]+))$");

    static String run(Path file, String... options) throws IOException {
        var cmd = new ArrayList<String>(List.of("readelf", "-W"));
        cmd.addAll(List.of(options));
        cmd.add(file.toString());
        return Gcc.run(file.getParent() == null ? Path.of("/") : file.getParent(), cmd);
    }

    // ---- sections ----

    static List<String> sections(Path file) throws IOException {
        var out = new ArrayList<String>();
        for (String line : run(file, "-S").split("\n")) {
            var m = SECTION.matcher(line);
            if (m.matches()) {
                out.add(String.join(" ", m.group(1), m.group(2) == null ? "" : m.group(2), m.group(3),
                        hex(m.group(4)), hex(m.group(5)), hex(m.group(6)), hex(m.group(7)), m.group(8), m.group(9),
                        m.group(10), m.group(11)));
            }
        }
        return out;
    }

    static List<String> sections(ElfFile elf) {
        var out = new ArrayList<String>();
        for (var s : elf.sections()) {
            out.add(String.join(" ", Integer.toString(s.index()), s.name(), s.typeName(), hex(s.sh_addr()),
                    hex(s.sh_offset()), hex(s.sh_size()), hex(s.sh_entsize()), s.flagString(),
                    Integer.toString(s.sh_link()), Integer.toString(s.sh_info()), Long.toString(s.sh_addralign())));
        }
        return out;
    }

    // ---- segments ----

    static List<String> segments(Path file) throws IOException {
        var out = new ArrayList<String>();
        for (String line : run(file, "-l").split("\n")) {
            var m = SEGMENT.matcher(line);
            if (m.matches()) {
                out.add(String.join(" ", m.group(1), hex(m.group(2)), hex(m.group(3)), hex(m.group(4)),
                        hex(m.group(5)), hex(m.group(6)), m.group(7).replace(' ', '_'), hex(m.group(8))));
            }
        }
        return out;
    }

    static List<String> segments(ElfFile elf) {
        var out = new ArrayList<String>();
        for (var p : elf.programHeaders()) {
            out.add(String.join(" ", p.typeName(), hex(p.p_offset()), hex(p.p_vaddr()), hex(p.p_paddr()),
                    hex(p.p_filesz()), hex(p.p_memsz()), p.flagString().replace(' ', '_'), hex(p.p_align())));
        }
        return out;
    }

    // ---- symbols ----

    /** Table name -> normalized symbol lines, for .symtab and .dynsym. */
    static Map<String, List<String>> symbols(Path file) throws IOException {
        var out = new LinkedHashMap<String, List<String>>();
        List<String> current = null;
        for (String line : run(file, "-s").split("\n")) {
            var h = SYMTAB_HEADER.matcher(line);
            if (h.find()) {
                current = new ArrayList<>();
                out.put(h.group(1), current);
                continue;
            }
            var m = SYMBOL.matcher(line);
            if (current != null && m.matches()) {
                String size = m.group(3);
                long sz = size.startsWith("0x") ? Long.parseUnsignedLong(size.substring(2), 16) : Long.parseLong(size);
                // Undefined versioned references print " (N)", the version index: not part of the name.
                String name = m.group(8).replaceFirst(" \\(\\d+\\)$", "");
                current.add(String.join(" ", m.group(1), hex(m.group(2)), Long.toString(sz), m.group(4), m.group(5),
                        m.group(6), m.group(7), name));
            }
        }
        return out;
    }

    static List<String> symbols(ElfFile elf, List<Symbol> symbols) {
        var out = new ArrayList<String>();
        for (var s : symbols) {
            out.add(String.join(" ", Integer.toString(s.index()), hex(s.st_value()), Long.toString(s.st_size()),
                    s.typeName(), s.bindName(), s.visibilityName(), s.sectionIndexName(), displayName(elf, s)));
        }
        return out;
    }

    /** readelf shows a section symbol by its section's name, and a dynamic symbol with its version. */
    static String displayName(ElfFile elf, Symbol s) {
        if (s.isSection() && s.name().isEmpty() && s.inSection() && s.st_shndx() < elf.sections().size()) {
            return elf.sections().get(s.st_shndx()).name();
        }
        return s.versionedName();
    }

    // ---- relocations ----

    static Map<String, List<String>> relocations(Path file) throws IOException {
        var out = new LinkedHashMap<String, List<String>>();
        List<String> current = null;
        boolean relr = false;
        for (String line : run(file, "-r").split("\n")) {
            var h = RELOC_HEADER.matcher(line);
            if (h.find()) {
                current = new ArrayList<>();
                out.put(h.group(1), current);
                relr = line.contains(".relr");
                continue;
            }
            if (relr && current != null && line.matches("[0-9a-f]{16}")) {
                current.add(hex(line));
                continue;
            }
            var m = RELOC.matcher(line);
            if (current != null && m.matches()) {
                String sym;
                long addend;
                if (m.group(8) != null) {
                    sym = "-";
                    addend = parseSignedHex(m.group(8));
                } else {
                    sym = m.group(5);
                    addend = Long.parseUnsignedLong(m.group(7), 16) * (m.group(6).equals("-") ? -1 : 1);
                }
                current.add(String.join(" ", hex(m.group(1)), hex(m.group(2)), m.group(3), sym, Long.toString(addend)));
            }
        }
        return out;
    }

    static Map<String, List<String>> relocations(ElfFile elf) {
        var out = new LinkedHashMap<String, List<String>>();
        for (var rs : elf.relocationSections()) {
            var lines = new ArrayList<String>();
            if (rs.isRelr()) {
                rs.relocations().forEach(r -> lines.add(hex(r.r_offset())));
                out.put(rs.section().name(), lines);
                continue;
            }
            for (var r : rs.relocations()) {
                long info = ((long) r.symbolIndex() << 32) | Integer.toUnsignedLong(r.type());
                String sym = r.symbol() == null ? "-" : displayName(elf, r.symbol());
                lines.add(String.join(" ", hex(r.r_offset()), hex(info), r.typeName(), sym, Long.toString(r.r_addend())));
            }
            out.put(rs.section().name(), lines);
        }
        return out;
    }

    private static long parseSignedHex(String s) {
        return s.startsWith("-") ? -Long.parseUnsignedLong(s.substring(1), 16) : Long.parseUnsignedLong(s, 16);
    }

    private static String hex(String s) {
        return Long.toHexString(Long.parseUnsignedLong(s, 16));
    }

    private static String hex(long v) {
        return Long.toHexString(v);
    }
}
