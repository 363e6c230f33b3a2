package dev.suture.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.suture.testing.Gcc;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.ArrayList;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code suture inspect} text and JSON for a program compiled here, checked against readelf. */
class InspectCommandTest {

    @TempDir
    static Path dir;
    static Path exe;

    static final String SOURCE = """
            #include <stdio.h>
            __thread long per_thread = 11;
            int shared_counter = 1;
            int add_one(int x) { return x + 1; }
            int main(void) { printf("%d %ld\\n", add_one(shared_counter), per_thread); return 0; }
            """;

    @BeforeAll
    static void compile() throws Exception {
        exe = Gcc.compile(dir, "known", SOURCE, "-O1", "-pie", "-fPIE");
    }

    record Result(int code, String out, String err) {}

    static Result inspect(String... args) {
        var out = new StringWriter();
        var err = new StringWriter();
        var cl = Main.commandLine();
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        var all = new ArrayList<String>();
        all.add("inspect");
        all.addAll(java.util.List.of(args));
        int code = cl.execute(all.toArray(String[]::new));
        return new Result(code, out.toString(), err.toString());
    }

    static String readelf(String... args) throws Exception {
        var cmd = new ArrayList<String>(java.util.List.of("readelf", "-W"));
        cmd.addAll(java.util.List.of(args));
        return Gcc.run(dir, cmd);
    }

    static String buildId() throws Exception {
        var m = Pattern.compile("Build ID: ([0-9a-f]+)").matcher(readelf("-n", exe.toString()));
        assertTrue(m.find());
        return m.group(1);
    }

    @Test
    void textShowsTheFactsInAlignedColumns() throws Exception {
        var r = inspect(exe.toString());
        assertEquals(0, r.code(), r.err());
        String text = r.out();
        assertTrue(text.startsWith(exe + ": ELF64 position-independent executable, x86-64\n"), text);
        assertTrue(text.contains("\n  build-id     " + buildId() + "\n"), text);
        assertTrue(text.contains("\n  interpreter  /lib64/ld-linux-x86-64.so.2\n"), text);
        assertTrue(text.contains("\n  needed       libc.so.6\n"), text);
        assertTrue(Pattern.compile("\n  versions     needs libc.so.6: [^\n]*GLIBC_2.2.5").matcher(text).find(), text);
        assertTrue(Pattern.compile("\n  TLS          template at 0x[0-9a-f]+, 8 bytes initialized, 8 bytes total")
                .matcher(text).find(), text);
        // Every section line of the table starts its name in the same column.
        var lines = text.lines().dropWhile(l -> !l.startsWith("Sections (")).skip(1).toList();
        int nameColumn = lines.getFirst().indexOf("name");
        int sections = 0;
        for (String l : lines) {
            if (l.isBlank()) {
                break;
            }
            sections++;
            if (!l.trim().startsWith("0 ") && !l.trim().equals("#  name")) {
                assertTrue(l.charAt(nameColumn - 1) == ' ' && l.charAt(nameColumn) != ' ', l);
            }
        }
        var header = Pattern.compile("There are (\\d+) section headers").matcher(readelf("-S", exe.toString()));
        assertTrue(header.find());
        assertEquals(Integer.parseInt(header.group(1)) + 1, sections, "header line + one line per section");
    }

    @Test
    void symbolsAndRelocationsInText() throws Exception {
        var r = inspect("--symbols", "--relocs", exe.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(Pattern.compile("\n +\\d+ +0x[0-9a-f]+ +\\d+ +FUNC +GLOBAL +DEFAULT +\\.text +add_one\n")
                .matcher(r.out()).find(), r.out());
        assertTrue(Pattern.compile("FUNC +GLOBAL +DEFAULT +UND +printf +needs GLIBC_2.2.5\n").matcher(r.out()).find(),
                r.out());
        assertTrue(r.out().contains("Relocations in .rela.dyn"), r.out());
        assertTrue(Pattern.compile("R_X86_64_GLOB_DAT +__gmon_start__ +0\n").matcher(r.out()).find(), r.out());
    }

    @Test
    void jsonHasTheSameFactsAsReadelf() throws Exception {
        var r = inspect("--json", "--symbols", "--relocs", exe.toString());
        assertEquals(0, r.code(), r.err());
        JsonNode doc = new ObjectMapper().readTree(r.out());
        assertEquals(buildId(), doc.get("buildId").asText());
        assertEquals("DYN", doc.get("type").asText());
        assertEquals("/lib64/ld-linux-x86-64.so.2", doc.get("interpreter").asText());
        assertEquals("libc.so.6", doc.get("needed").get(0).asText());
        assertEquals(8, doc.get("tls").get("memsz").asLong());
        String sectionTable = readelf("-S", exe.toString());
        for (JsonNode s : doc.get("sections")) {
            if (s.get("index").asInt() > 0) {
                assertTrue(Pattern.compile("\\]\\s" + Pattern.quote(s.get("name").asText()) + "\\s+"
                        + s.get("type").asText() + "\\s").matcher(sectionTable).find(), s.toString());
            }
        }
        boolean found = false;
        for (JsonNode s : doc.get("symbols").get("dynsym")) {
            if (s.get("name").asText().equals("printf")) {
                found = true;
                assertEquals("GLIBC_2.2.5", s.get("version").asText());
                assertEquals("UND", s.get("section").asText());
            }
        }
        assertTrue(found, "printf in dynsym");
        int relocs = 0;
        for (JsonNode rs : doc.get("relocations")) {
            relocs += rs.get("entries").size();
        }
        var m = Pattern.compile("contains (\\d+) entr").matcher(readelf("-r", exe.toString()));
        int expected = 0;
        while (m.find()) {
            expected += Integer.parseInt(m.group(1));
        }
        assertEquals(expected, relocs);
    }

    @Test
    void binLsBuildIdInJson() throws Exception {
        var r = inspect("--json", "/bin/ls");
        assertEquals(0, r.code(), r.err());
        var m = Pattern.compile("Build ID: ([0-9a-f]+)").matcher(readelf("-n", "/bin/ls"));
        assertTrue(m.find());
        assertEquals(m.group(1), new ObjectMapper().readTree(r.out()).get("buildId").asText());
    }

    @Test
    void notElfIsBadInput() throws Exception {
        Path f = Files.writeString(dir.resolve("text.txt"), "just text");
        var r = inspect(f.toString());
        assertEquals(ExitCodes.BAD_INPUT, r.code());
        assertTrue(r.err().contains("text.txt: not a valid ELF file"), r.err());
        var missing = inspect(dir.resolve("missing").toString());
        assertEquals(ExitCodes.BAD_INPUT, missing.code());
        assertTrue(missing.err().contains("no such file"), missing.err());
    }

    /** What is no regular file is refused before it is opened: a FIFO would block, /dev/zero never end. */
    @Test
    void aFifoOrADeviceIsRefusedAtOnce() throws Exception {
        Path fifo = dir.resolve("fifo");
        assertEquals(0, new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor());
        for (String file : List.of(fifo.toString(), "/dev/zero", "/proc/self/mem", dir.toString())) {
            var r = org.junit.jupiter.api.Assertions.assertTimeoutPreemptively(java.time.Duration.ofSeconds(10),
                    () -> inspect(file), file);
            assertEquals(ExitCodes.BAD_INPUT, r.code(), file + ": " + r.err());
            assertTrue(r.err().contains(file) && (r.err().contains("not a regular file")
                    || r.err().contains("is empty") || r.err().contains("is a directory")), r.err());
            assertEquals("", r.out(), "nothing on stdout before the failure");
        }
    }
}
