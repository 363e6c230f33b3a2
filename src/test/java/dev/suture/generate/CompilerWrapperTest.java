package dev.suture.generate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.elf.ElfFile;
import dev.suture.elf.LoadedSections;
import dev.suture.testing.Gcc;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The wrapper script itself: what it records for links and archives, and how {@link BuildRecord} reads it. */
class CompilerWrapperTest {

    @TempDir
    Path dir;
    Path tree;
    Path records;
    CompilerWrapper wrapper;

    @BeforeEach
    void setUp() throws IOException {
        tree = Files.createDirectories(dir.resolve("tree")).toRealPath();
        records = Files.createDirectories(dir.resolve("records"));
        wrapper = CompilerWrapper.create(dir.resolve("wrap"), System.getenv("PATH"));
        Files.writeString(tree.resolve("a.c"), """
                #ifdef CHANGED
                int a(void) { return 2; }
                #else
                int a(void) { return 1; }
                #endif
                """);
        Files.writeString(tree.resolve("a_member_name_longer_than_sixteen.c"), "int b(void) { return 3; }\n");
        Files.writeString(tree.resolve("main.c"), """
                int a(void);
                int b(void);
                int main(void) { return a() + b(); }
                """);
    }

    /** Runs a shell script in the tree with the wrapper in place, as a build would. */
    private BuildRecord build(String script) throws IOException {
        return build(script, Map.of());
    }

    /** {@link #build(String)} with {@code extra} in the build's environment. */
    private BuildRecord build(String script, Map<String, String> extra) throws IOException {
        var env = wrapper.environment(System.getenv(), tree, records, Path.of("/src/project"));
        env.putAll(extra);
        var outcome = ExternalCommand.run(List.of("/bin/sh", "-ec", script), tree, env, dir.resolve("build.log"),
                Duration.ofMinutes(2));
        assertTrue(outcome.ok(), outcome.tail(40));
        return BuildRecord.read(records, tree);
    }

    private List<String> keys(BuildRecord record, String output) throws IOException {
        var link = record.linkOf(tree.resolve(output)).orElseThrow(() -> new AssertionError("no link of " + output));
        return record.objectsOf(link).stream().map(BuildRecord.TargetObject::key).toList();
    }

    @Test
    void objectsComeInTheOrderTheLinkTookThemAndWithLineTables() throws IOException {
        // An archive between two objects: its member went in at its place, and the STT_FILE blocks of the output
        // follow that order (same-named files are told apart by it).
        var record = build("""
                cc -O2 -c main.c -o main.o
                cc -O2 -c a.c -o a.o
                cc -O2 -c a_member_name_longer_than_sixteen.c -o long.o
                ar rcs libx.a long.o
                cc -O2 -o prog main.o libx.a a.o
                """);
        assertEquals(List.of("tree:main.o", "tree:long.o", "tree:a.o"), keys(record, "prog"));
        String symbols = Gcc.run(dir, "readelf", "-sW", tree.resolve("prog").toString());
        var files = symbols.lines().filter(l -> l.contains(" FILE ")).map(l -> l.trim().split("\\s+"))
                .filter(f -> f.length >= 8).map(f -> f[7])
                .filter(f -> f.endsWith(".c") && !f.startsWith("crt")).toList();
        assertEquals(List.of("main.c", "a_member_name_longer_than_sixteen.c", "a.c"), files.subList(0, 3), symbols);
        // The build gave no -g: the wrapper added it, so the diff has line tables.
        String sections = Gcc.run(dir, "readelf", "-SW", tree.resolve("a.o").toString());
        assertTrue(sections.contains(".debug_line"), sections);
    }

    @Test
    void archiveMembersAreFollowedToTheirObjects() throws IOException {
        var record = build("""
                cc -O2 -c a.c -o a.o
                cc -O2 -c a_member_name_longer_than_sixteen.c -o long.o
                cp long.o a_member_name_longer_than_sixteen.o
                ar rcs libx.a a.o a_member_name_longer_than_sixteen.o
                cc -O2 -o prog main.c -L. -lx
                """);
        assertEquals(List.of("compiled:prog:main.c", "tree:a.o", "tree:a_member_name_longer_than_sixteen.o"),
                keys(record, "prog"));
        String sections = Gcc.run(dir, "readelf", "-SW", tree.resolve("a.o").toString());
        assertTrue(sections.contains(".text.a"), sections);
    }

    @Test
    void memberRebuiltAfterArchivingIsTakenFromTheArchive() throws IOException {
        var record = build("""
                cc -O2 -c a.c -o a.o
                cc -O2 -c a_member_name_longer_than_sixteen.c -o b.o
                ar rcs libx.a a.o b.o
                cc -O2 -DCHANGED -c a.c -o a.o
                cc -O2 -o prog main.c libx.a
                """);
        var link = record.linkOf(tree.resolve("prog")).orElseThrow();
        var objects = record.objectsOf(link);
        assertEquals(List.of("compiled:prog:main.c", "member:libx.a(a.o)", "tree:b.o"),
                objects.stream().map(BuildRecord.TargetObject::key).toList());
        byte[] member = ArArchive.read(tree.resolve("libx.a")).member("a.o").orElseThrow().bytes();
        // held in memory for the diff, not extracted to a file
        assertArrayEquals(member, objects.get(1).image());
        assertEquals("libx.a(a.o)", objects.get(1).path().getFileName().toString());
    }

    @Test
    void thinArchivesAndPartialLinks() throws IOException {
        var record = build("""
                cc -c a.c -o a.o
                cc -c a_member_name_longer_than_sixteen.c -o b.o
                ar rcT libthin.a b.o
                cc -r -o combined.o a.o
                cc -c main.c -o main.o
                cc -o prog main.o combined.o libthin.a
                """);
        assertEquals(List.of("tree:main.o", "tree:a.o", "tree:b.o"), keys(record, "prog"));
    }

    @Test
    void sharedLibraryAndCxx() throws IOException {
        Files.writeString(tree.resolve("hello.cc"), """
                #include <cstdio>
                namespace greeting { int say(int n) { std::printf("%d\\n", n); return n; } }
                int main() { return greeting::say(7) - 7; }
                """);
        var record = build("""
                cc -fPIC -shared -o libab.so a.c a_member_name_longer_than_sixteen.c
                c++ -O2 -o hello hello.cc
                """);
        assertEquals(List.of("compiled:libab.so:a.c", "compiled:libab.so:a_member_name_longer_than_sixteen.c"),
                keys(record, "libab.so"));
        var hello = record.objectsOf(record.linkOf(tree.resolve("hello")).orElseThrow());
        String sections = Gcc.run(dir, "readelf", "-SW", hello.getFirst().path().toString());
        assertTrue(sections.contains(".text._ZN8greeting3sayEi"), sections);
        assertEquals("7\n", Gcc.run(tree, tree.resolve("hello").toString()));
    }

    @Test
    void toolQueriesPassThroughUnrecorded() throws IOException {
        var record = build("""
                cc --version > /dev/null
                cc -print-prog-name=ld > /dev/null
                cc -E a.c -o a.i
                ar t /dev/null 2>/dev/null || true
                """);
        assertEquals(List.of(), record.links());
    }

    @Test
    void compilerNamesWithTargetPrefixAndVersion() {
        for (String name : List.of("cc", "gcc", "c++", "g++", "ar", "gcc-12", "g++-12", "x86_64-linux-gnu-gcc",
                "x86_64-linux-gnu-gcc-12", "x86_64-linux-gnu-g++-12", "x86_64-linux-gnu-ar", "x86_64-pc-linux-gnu-cc",
                "gcc-12.2")) {
            assertTrue(CompilerWrapper.isToolName(name), name);
        }
        for (String name : List.of("gcc-ar", "gcc-ar-12", "x86_64-linux-gnu-gcc-ar-12", "x86_64-linux-gnu-gcc-nm",
                "clang", "distcc", "gcc-", "cc1", "gccgo-12", "ld")) {
            assertFalse(CompilerWrapper.isToolName(name), name);
        }
    }

    /**
     * A toolchain's names as Debian installs them (here links to this machine's gcc under made-up versions, so the
     * test does not depend on which are installed): the wrapper stands in for each, and for CC as the build is
     * told it.
     */
    @Test
    void prefixedAndVersionedCompilersGoThroughTheWrapper() throws IOException {
        Path tools = Files.createDirectories(dir.resolve("tools"));
        Path gcc = CompilerWrapper.which("gcc", System.getenv("PATH")).orElseThrow();
        for (String name : List.of("x86_64-linux-gnu-gcc-99", "gcc-99", "x86_64-linux-gnu-gcc-ar-99")) {
            Files.createSymbolicLink(tools.resolve(name), gcc);
        }
        String path = tools + ":" + System.getenv("PATH");
        wrapper = CompilerWrapper.create(dir.resolve("wrap-versioned"), path);
        assertTrue(wrapper.realTools().containsKey("x86_64-linux-gnu-gcc-99"), wrapper.realTools().toString());
        assertTrue(wrapper.realTools().containsKey("gcc-99"), wrapper.realTools().toString());
        assertFalse(wrapper.realTools().containsKey("x86_64-linux-gnu-gcc-ar-99"), wrapper.realTools().toString());

        var base = new HashMap<>(System.getenv());
        base.put("PATH", path);
        base.put("CC", "gcc-99");
        var env = wrapper.environment(base, tree, records, Path.of("/src/project"));
        assertEquals(wrapper.bin().resolve("gcc-99").toString(), env.get("CC"));
        base.put("CC", tools.resolve("gcc-99").toString());
        assertEquals(wrapper.bin().resolve("gcc-99").toString(),
                wrapper.environment(base, tree, records, Path.of("/src/project")).get("CC"));

        var record = build("""
                x86_64-linux-gnu-gcc-99 -O2 -c a.c -o a.o
                $CC -O2 -c a_member_name_longer_than_sixteen.c -o b.o
                x86_64-linux-gnu-gcc-99 -O2 -o prog main.c a.o b.o
                """, Map.of("PATH", wrapper.bin() + ":" + path, "CC", "gcc-99"));
        // In link order: main.c comes first on the command line.
        assertEquals(List.of("compiled:prog:main.c", "tree:a.o", "tree:b.o"), keys(record, "prog"));
        for (String object : List.of("a.o", "b.o")) {
            String sections = Gcc.run(dir, "readelf", "-SW", tree.resolve(object).toString());
            assertTrue(sections.contains(".text."), object + ":\n" + sections);
        }
    }

    /**
     * SUTURE_REPRODUCE: the link takes objects compiled exactly as asked (so it can reproduce a distribution's
     * binary), and the diff takes each one's twin with the section flags, found again after the build moved the
     * object (zlib compiles objs/x.o and renames it x.lo).
     */
    @Test
    void reproducingBuildLinksObjectsAsCompiledAndDiffsTheirTwins() throws IOException {
        var record = build("""
                mkdir -p objs
                cc -O2 -MD -c a.c -o objs/a.o
                mv objs/a.o a.lo
                cc -O2 -c a_member_name_longer_than_sixteen.c -o b.o
                cc -O2 -o prog main.c a.lo b.o
                """, Map.of("SUTURE_REPRODUCE", "1"));
        var link = record.linkOf(tree.resolve("prog")).orElseThrow();
        var objects = record.objectsOf(link);
        assertEquals(List.of("tree:a.lo", "tree:b.o", "compiled:prog:main.c"),
                objects.stream().map(BuildRecord.TargetObject::key).toList());
        for (String object : List.of("a.lo", "b.o")) {
            String sections = Gcc.run(dir, "readelf", "-SW", tree.resolve(object).toString());
            assertFalse(sections.contains(".text."), object + " was compiled with section flags:\n" + sections);
        }
        for (var o : objects) {
            assertTrue(o.path().startsWith(records), o.toString());
            String sections = Gcc.run(dir, "readelf", "-SW", o.path().toString());
            assertTrue(sections.contains(".text."), o + " has no function sections:\n" + sections);
        }
        // make's dependency file names the build's object, not the twin
        String deps = Files.readString(tree.resolve("objs/a.d"));
        assertTrue(deps.startsWith("objs/a.o:"), deps);
        // the linked program loads the bytes of the same build made without the wrapper
        String gcc = CompilerWrapper.which("gcc", System.getenv("PATH")).orElseThrow().toString();
        Path ref = Files.createDirectories(dir.resolve("ref"));
        Gcc.run(tree, gcc, "-O2", "-c", "a.c", "-o", ref.resolve("a.o").toString());
        Gcc.run(tree, gcc, "-O2", "-c", "a_member_name_longer_than_sixteen.c", "-o", ref.resolve("b.o").toString());
        Gcc.run(tree, gcc, "-O2", "-o", ref.resolve("prog").toString(), "main.c", ref.resolve("a.o").toString(),
                ref.resolve("b.o").toString());
        try (var built = ElfFile.open(tree.resolve("prog")); var plain = ElfFile.open(ref.resolve("prog"))) {
            assertEquals(List.of(), LoadedSections.compare(built, plain));
        }
    }
}
