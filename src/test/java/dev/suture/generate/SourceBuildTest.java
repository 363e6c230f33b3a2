package dev.suture.generate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.testing.Gcc;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The scratch builds of {@code suture build}: copies, patch(1), the compiler wrapper, and each target's objects. */
class SourceBuildTest {

    @TempDir
    Path dir;

    private Path work() throws IOException {
        return Files.createDirectories(dir.resolve("work"));
    }

    @Test
    void multiFileProjectGivesEachTargetItsObjects() throws IOException {
        Path src = BuildProjects.multi(dir);
        Path diff = BuildProjects.file(dir, "multi-fix.diff");
        var prepared = SourceBuild.prepare(BuildProjects.request(src, List.of(diff), "make prog tool libgreet.so",
                "prog", "libgreet.so", "tool"), work());
        Map<String, SourceBuild.TargetObjects> byTarget = prepared.targets().stream()
                .collect(Collectors.toMap(t -> t.target().path(), Function.identity()));

        var prog = byTarget.get("prog");
        // main.o and util.o from the command line; add.o and mul.o pulled out of libmath.a; unused.o is in the
        // archive but nothing references it, so it is not part of prog.
        assertEquals(List.of("main.o", "util.o", "mul.o", "add.o"), names(prog.original()), prog.toString());
        assertEquals(names(prog.original()), names(prog.patched()));
        assertEquals(List.of("tree:main.o", "tree:mul.o"), prog.changed());

        var lib = byTarget.get("libgreet.so");
        assertEquals(List.of("pic/greet.o", "pic/fmt.o"), relative(prepared.workDir().resolve("original").resolve(src.getFileName()),
                lib.original()));
        assertEquals(List.of("tree:pic/fmt.o"), lib.changed());

        var tool = byTarget.get("tool");
        assertEquals(List.of("tool.o", "add.o"), names(tool.original()));
        assertEquals(List.of(), tool.changed());

        // The objects come from the scratch copies, compiled with one section per function.
        assertTrue(prog.patched().getFirst().path().startsWith(prepared.workDir().resolve("patched").toRealPath()));
        String sections = Gcc.run(dir, "readelf", "-SW", prog.patched().get(2).path().toString());
        assertTrue(sections.contains(".text.mul"), sections);
        // Source paths in the objects name --src, not the scratch copy.
        String strings = Gcc.run(dir, "strings", "-a", prog.original().get(2).path().toString());
        assertTrue(!strings.contains(prepared.workDir().toString()), strings);
    }

    @Test
    void oneLineCommandKeepsTheObjectGccWouldDelete() throws IOException {
        Path src = Files.createDirectories(dir.resolve("single"));
        Files.writeString(src.resolve("prog.c"), """
                #include <stdio.h>
                int answer(void) { return 41; }
                int main(void) { printf("%d\\n", answer()); return 0; }
                """);
        Path diff = Files.writeString(dir.resolve("fix.diff"), """
                --- a/prog.c
                +++ b/prog.c
                @@ -1,3 +1,3 @@
                 #include <stdio.h>
                -int answer(void) { return 41; }
                +int answer(void) { return 42; }
                 int main(void) { printf("%d\\n", answer()); return 0; }
                """);
        var prepared = SourceBuild.prepare(BuildProjects.request(src, List.of(diff), "gcc -O2 -o prog prog.c",
                "prog"), work());
        var prog = prepared.targets().getFirst();
        assertEquals(1, prog.original().size(), prog.toString());
        assertEquals(1, prog.patched().size(), prog.toString());
        assertEquals(List.of("compiled:prog:prog.c"), prog.changed());
        String sections = Gcc.run(dir, "readelf", "-SW", prog.patched().getFirst().path().toString());
        assertTrue(sections.contains(".text.answer"), sections);
        // The linked programs behave as their sources say.
        assertEquals("41\n", Gcc.run(dir, prog.originalOutput().toString()));
        assertEquals("42\n", Gcc.run(dir, prog.patchedOutput().toString()));
    }

    @Test
    void targetTheBuildDidNotLinkIsNamed() throws IOException {
        Path src = BuildProjects.multi(dir);
        Path diff = BuildProjects.file(dir, "multi-fix.diff");
        var e = assertThrows(SourceBuildException.class, () -> SourceBuild.prepare(
                BuildProjects.request(src, List.of(diff), "make tool", "prog"), work()));
        assertTrue(e.getMessage().contains("did not produce it; it linked tool"), e.getMessage());
    }

    private static List<String> names(List<BuildRecord.TargetObject> objects) {
        return objects.stream().map(o -> o.path().getFileName().toString()).toList();
    }

    private static List<String> relative(Path tree, List<BuildRecord.TargetObject> objects) throws IOException {
        Path real = tree.toRealPath();
        return objects.stream().map(o -> real.relativize(o.path()).toString()).toList();
    }

    /**
     * --target NAME=DEPLOYED where DEPLOYED is stripped and has no debug file (as a distribution ships it, built by
     * the project's own Makefile without the wrapper): the build links objects as compiled so that it reproduces
     * the deployed file, whose symbols then come from the rebuild.
     */
    @Test
    void strippedDeployedLibraryTakesItsSymbolsFromTheRebuild() throws IOException {
        Path src = BuildProjects.multi(dir);
        Path plain = dir.resolve("plain");
        var copy = ExternalCommand.run(List.of("cp", "-a", src.toString(), plain.toString()), dir, null,
                dir.resolve("cp.log"), Duration.ofMinutes(1));
        assertTrue(copy.ok(), copy.tail(10));
        var built = ExternalCommand.run(List.of("make", "libgreet.so"), plain, null, dir.resolve("plain.log"),
                Duration.ofMinutes(2));
        assertTrue(built.ok(), built.tail(20));
        Path deployed = dir.resolve("libgreet.so.deployed");
        Gcc.run(dir, "objcopy", "--strip-all", plain.resolve("libgreet.so").toString(), deployed.toString());

        Path diff = BuildProjects.file(dir, "multi-fix.diff");
        var result = SourceBuild.run(BuildProjects.request(src, List.of(diff), "make libgreet.so",
                "libgreet.so=" + deployed));
        var lib = result.targets().getFirst();
        assertEquals(SymbolSource.REBUILD, lib.diff().symbols(), lib.toString());
        assertEquals(List.of("fmt_name"), lib.diff().replaced());
        try (var elf = dev.suture.elf.ElfFile.open(deployed)) {
            assertEquals(elf.buildId().orElseThrow(), lib.diff().targetBuildId());
        }
    }

    /** An output linked by a compiler the wrapper does not stand in for is reported with the command that did. */
    @Test
    void targetLinkedOutsideTheWrapperIsReportedWithItsCommand() throws IOException {
        String gcc = CompilerWrapper.which("gcc", System.getenv("PATH")).orElseThrow().toString();
        Path src = Files.createDirectories(dir.resolve("bypass"));
        Files.writeString(src.resolve("prog.c"), "int answer(void) { return 41; }\nint main(void) { return answer(); }\n");
        Files.writeString(src.resolve("Makefile"), "prog: prog.c\n\t" + gcc + " -O2 -o prog prog.c\n");
        Path diff = Files.writeString(dir.resolve("fix.diff"), """
                --- a/prog.c
                +++ b/prog.c
                @@ -1,2 +1,2 @@
                -int answer(void) { return 41; }
                +int answer(void) { return 42; }
                 int main(void) { return answer(); }
                """);
        var e = assertThrows(SourceBuildException.class, () -> SourceBuild.prepare(
                BuildProjects.request(src, List.of(diff), "make", "prog"), work()));
        assertTrue(e.getMessage().contains("was not linked through the compiler wrapper"), e.getMessage());
        assertTrue(e.getMessage().contains("The build linked it with:\n  " + gcc + " -O2 -o prog prog.c"),
                e.getMessage());
    }
}
