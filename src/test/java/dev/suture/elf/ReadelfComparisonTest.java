package dev.suture.elf;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.suture.testing.Gcc;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every section, segment, symbol (with version) and relocation the library decodes equals what {@code readelf -W}
 * prints, for system binaries and for executables, libraries and objects compiled here.
 */
class ReadelfComparisonTest {

    @TempDir
    static Path dir;

    static final String PROGRAM = """
            #include <stdio.h>
            #include <stdlib.h>
            __thread int tls_counter = 5;
            __thread char tls_buffer[32];
            static int hits;
            int values[3] = {4, 5, 6};
            const char *names[] = {"zero", "one", "two", "three", "four", "five"};
            static int classify(int x) {
                switch (x) { case 0: return 10; case 1: return 11; case 2: return 17; case 3: return 19;
                             case 4: return 23; case 5: return 29; default: return -1; }
            }
            int work(int n) { hits++; tls_counter += classify(n); return tls_counter + values[n % 3]; }
            int main(int argc, char **argv) {
                printf("%d %s %d\\n", work(argc), names[argc], hits);
                return getenv("NOPE") != NULL;
            }
            """;

    static final String LIBRARY = """
            #include <string.h>
            __thread int lib_tls = 3;
            int lib_data = 42;
            int old_foo(int x) { return x + 1; }
            int new_foo(int x) { return x + 2 + lib_tls; }
            __asm__(".symver old_foo,foo@V1");
            __asm__(".symver new_foo,foo@@V2");
            int bar(const char *s) { return (int) strlen(s) + lib_data; }
            static int helper(int x) { return x * 3; }
            int baz(int x) { return helper(x) + bar("abc"); }
            """;

    static final String VERSION_SCRIPT = """
            V1 { global: bar; foo; lib_data; local: *; };
            V2 { global: foo; baz; lib_tls; } V1;
            """;

    static final String USER = """
            #include <stdio.h>
            int foo(int);
            int baz(int);
            int main(void) { printf("%d %d\\n", foo(1), baz(2)); return 0; }
            """;

    static Path pie, noPie, library, libraryUser, objectPic, objectNoPic, objectPlain;

    @BeforeAll
    static void compile() throws IOException {
        pie = Gcc.compile(dir, "pie", PROGRAM, "-O1", "-fPIE", "-pie");
        noPie = Gcc.compile(dir, "nopie", PROGRAM, "-O1", "-fno-pie", "-no-pie");
        Files.writeString(dir.resolve("v.map"), VERSION_SCRIPT);
        library = Gcc.compile(dir, "libv.so", LIBRARY, "-O1", "-fPIC", "-shared", "-Wl,--version-script=v.map",
                "-Wl,-soname,libv.so.1");
        Files.writeString(dir.resolve("user.c"), USER);
        Gcc.run(dir, "gcc", "-O1", "-o", "user", "user.c", "-L.", "-l:libv.so");
        libraryUser = dir.resolve("user");
        Files.writeString(dir.resolve("obj.c"), PROGRAM);
        Gcc.run(dir, "gcc", "-c", "-g", "-O2", "-ffunction-sections", "-fdata-sections", "-fPIC",
                "-o", "obj-pic.o", "obj.c");
        Gcc.run(dir, "gcc", "-c", "-g", "-O0", "-ffunction-sections", "-fdata-sections", "-fno-pic",
                "-o", "obj-nopic.o", "obj.c");
        Files.writeString(dir.resolve("lib.c"), LIBRARY);
        Gcc.run(dir, "gcc", "-c", "-O2", "-ffunction-sections", "-fdata-sections", "-o", "lib.o", "lib.c");
        objectPic = dir.resolve("obj-pic.o");
        objectNoPic = dir.resolve("obj-nopic.o");
        objectPlain = dir.resolve("lib.o");
    }

    static Path libc() throws IOException {
        var m = Pattern.compile("libc\\.so\\.6 => (\\S+)").matcher(Gcc.run(Path.of("/"), "ldd", "/bin/ls"));
        return m.find() ? Path.of(m.group(1)) : Path.of("/lib/x86_64-linux-gnu/libc.so.6");
    }

    static Stream<Path> files() throws IOException {
        return Stream.of(Path.of("/bin/ls"), libc(), pie, noPie, library, libraryUser, objectPic, objectNoPic,
                objectPlain);
    }

    @ParameterizedTest
    @MethodSource("files")
    void sectionsMatch(Path file) throws IOException {
        try (var elf = ElfFile.open(file)) {
            assertLines(file + " sections", Readelf.sections(file), Readelf.sections(elf));
        }
    }

    @ParameterizedTest
    @MethodSource("files")
    void segmentsMatch(Path file) throws IOException {
        try (var elf = ElfFile.open(file)) {
            assertLines(file + " segments", Readelf.segments(file), Readelf.segments(elf));
        }
    }

    @ParameterizedTest
    @MethodSource("files")
    void symbolsMatch(Path file) throws IOException {
        try (var elf = ElfFile.open(file)) {
            Map<String, List<String>> expected = Readelf.symbols(file);
            var symtab = elf.section(".symtab");
            var dynsym = elf.section(".dynsym");
            assertEquals(expected.containsKey(".symtab"), symtab.isPresent(), file + ": .symtab presence");
            assertEquals(expected.containsKey(".dynsym"), dynsym.isPresent(), file + ": .dynsym presence");
            if (symtab.isPresent()) {
                assertLines(file + " .symtab", expected.get(".symtab"), Readelf.symbols(elf, elf.symbols()));
            }
            if (dynsym.isPresent()) {
                assertLines(file + " .dynsym", expected.get(".dynsym"), Readelf.symbols(elf, elf.dynamicSymbols()));
            }
        }
    }

    @ParameterizedTest
    @MethodSource("files")
    void relocationsMatch(Path file) throws IOException {
        try (var elf = ElfFile.open(file)) {
            var expected = Readelf.relocations(file);
            var actual = Readelf.relocations(elf);
            assertEquals(List.copyOf(expected.keySet()), List.copyOf(actual.keySet()), file + ": relocation sections");
            for (var e : expected.entrySet()) {
                assertLines(file + " " + e.getKey(), e.getValue(), actual.get(e.getKey()));
            }
        }
    }

    @ParameterizedTest
    @MethodSource("files")
    void dynamicInformationMatches(Path file) throws IOException {
        try (var elf = ElfFile.open(file)) {
            String notes = Readelf.run(file, "-n");
            var id = Pattern.compile("Build ID: ([0-9a-f]+)").matcher(notes);
            assertEquals(id.find() ? id.group(1) : null, elf.buildId().orElse(null), file + ": build-id");
            String program = Readelf.run(file, "-l");
            var interp = Pattern.compile("Requesting program interpreter: ([^\\]]+)\\]").matcher(program);
            assertEquals(interp.find() ? interp.group(1) : null, elf.interpreter().orElse(null), file + ": interp");
            String dynamic = Readelf.run(file, "-d");
            var needed = new ArrayList<String>();
            var nm = Pattern.compile("\\(NEEDED\\)\\s+Shared library: \\[([^\\]]+)\\]").matcher(dynamic);
            while (nm.find()) {
                needed.add(nm.group(1));
            }
            assertEquals(needed, elf.needed(), file + ": needed");
            var so = Pattern.compile("\\(SONAME\\)\\s+Library soname: \\[([^\\]]+)\\]").matcher(dynamic);
            assertEquals(so.find() ? so.group(1) : null, elf.soname().orElse(null), file + ": soname");
            var count = Pattern.compile("Dynamic section at offset 0x[0-9a-f]+ contains (\\d+) entr").matcher(dynamic);
            int entries = count.find() ? Integer.parseInt(count.group(1)) : 0;
            assertEquals(entries, elf.dynamic().size(), file + ": dynamic entries up to DT_NULL");
            boolean hasTls = program.lines().anyMatch(l -> l.trim().startsWith("TLS "));
            assertEquals(hasTls, elf.tls().isPresent(), file + ": PT_TLS");
        }
    }

    @Test
    void versionedLibrarySymbols() throws IOException {
        try (var elf = ElfFile.open(library)) {
            var foo = elf.dynamicSymbols().stream().filter(s -> s.name().equals("foo")).toList();
            assertEquals(2, foo.size(), foo.toString());
            assertTrue(foo.stream().anyMatch(s -> "V1".equals(s.version()) && s.versionHidden()), foo.toString());
            assertTrue(foo.stream().anyMatch(s -> "V2".equals(s.version()) && !s.versionHidden()), foo.toString());
            assertEquals("libv.so.1", elf.soname().orElseThrow());
        }
        try (var elf = ElfFile.open(libraryUser)) {
            var foo = elf.dynamicSymbols().stream().filter(s -> s.name().equals("foo")).findFirst().orElseThrow();
            assertTrue(foo.isUndefined());
            assertEquals("V2", foo.version());
            assertTrue(elf.needed().contains("libv.so.1"), elf.needed().toString());
        }
    }

    @Test
    void tlsSegmentMatchesTheTlsSections() throws IOException {
        try (var elf = ElfFile.open(pie)) {
            var tls = elf.tls().orElseThrow();
            var tdata = elf.section(".tdata").orElseThrow();
            var tbss = elf.section(".tbss").orElseThrow();
            assertEquals(tdata.sh_addr(), tls.p_vaddr());
            assertEquals(tdata.sh_size(), tls.p_filesz());
            assertTrue(tls.p_memsz() >= tdata.sh_size() + tbss.sh_size());
            assertFalse(elf.ehFrame().isEmpty());
            assertFalse(elf.ehFrameHdr().isEmpty());
        }
    }

    /** Compares line by line and reports the first difference, not a wall of text. */
    static void assertLines(String what, List<String> expected, List<String> actual) {
        assertFalse(expected == null, what + ": readelf printed no such table");
        for (int i = 0; i < Math.min(expected.size(), actual.size()); i++) {
            if (!expected.get(i).equals(actual.get(i))) {
                fail(what + ": line " + i + " differs\n readelf: " + expected.get(i) + "\n suture:  " + actual.get(i));
            }
        }
        assertEquals(expected.size(), actual.size(), what + ": number of entries");
    }
}
