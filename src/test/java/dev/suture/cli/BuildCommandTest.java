package dev.suture.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.suture.patch.PatchFile;
import dev.suture.patch.ReplacedFunction;
import dev.suture.testing.Gcc;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code suture build} end to end: real make, gcc and patch; patches checked by reading them back. */
class BuildCommandTest {
    private static final List<String> MULTI = List.of("Makefile", "add.c", "mul.c", "unused.c", "greet.c", "fmt.c",
            "util.c", "main.c", "tool.c");

    @TempDir
    Path dir;

    private static Cli.Result suture(String... args) {
        return Cli.run(args);
    }

    private static byte[] resource(String name) throws IOException {
        try (InputStream in = BuildCommandTest.class.getResourceAsStream("/dev/suture/generate/" + name)) {
            if (in == null) {
                throw new IOException("missing test resource " + name);
            }
            return in.readAllBytes();
        }
    }

    private Path multi(String name) throws IOException {
        Path project = Files.createDirectories(dir.resolve(name));
        for (String f : MULTI) {
            Files.write(project.resolve(f), resource("multi/" + f));
        }
        return project;
    }

    private Path diff(String name) throws IOException {
        return Files.write(dir.resolve(name), resource(name));
    }

    private static Set<String> replaced(Path patch) {
        return PatchFile.read(patch).replaced().stream().map(ReplacedFunction::symbol).collect(Collectors.toSet());
    }

    @Test
    void multiFileProjectGivesOnePatchPerChangedTarget() throws IOException {
        Path src = multi("src");
        // The running binaries: built from the same sources by the project's own make, without the wrapper.
        Path deployed = multi("deployed");
        Gcc.run(deployed, "make", "-s", "prog", "tool");
        Path out = dir.resolve("out");
        var run = suture("build", "--src", src.toString(), "--diff", diff("multi-fix.diff").toString(),
                "--target", "prog=" + deployed.resolve("prog"), "--target", "libgreet.so=" + deployed.resolve("libgreet.so"),
                "--target", "tool=" + deployed.resolve("tool"), "-o", out.toString(), "--json");
        assertEquals(0, run.code(), run.err());
        JsonNode doc = new ObjectMapper().readTree(run.out());
        JsonNode prog = doc.get("targets").get(0);
        JsonNode lib = doc.get("targets").get(1);
        JsonNode tool = doc.get("targets").get(2);

        assertEquals("prog", prog.get("target").asText());
        Path progPatch = Path.of(prog.get("patch").asText());
        assertEquals(out.resolve(buildId(deployed.resolve("prog")) + ".suture"), progPatch);
        // mul comes from libmath.a, report from main.o; main calls report and is left alone.
        assertEquals(Set.of("report", "mul"), replaced(progPatch));
        assertEquals(List.of("main.o", "mul.o"), strings(prog.get("changedObjects")));

        Path libPatch = Path.of(lib.get("patch").asText());
        assertEquals(out.resolve(buildId(deployed.resolve("libgreet.so")) + ".suture"), libPatch);
        assertEquals(Set.of("fmt_name"), replaced(libPatch));

        assertFalse(tool.get("changed").asBoolean());
        try (var files = Files.list(out)) {
            assertEquals(2, files.count(), "one patch per changed target, none for tool");
        }
        // The source tree is left as it was: not patched, not built.
        assertFalse(Files.exists(src.resolve("prog")));
        assertTrue(Files.readString(src.resolve("fmt.c")).contains("\"world\""));
    }

    @Test
    void oneLineCommandProjectInText() throws IOException {
        Path src = Files.createDirectories(dir.resolve("single"));
        Files.writeString(src.resolve("prog.c"), """
                #include <stdio.h>
                __attribute__((noinline)) int answer(int x) { int s = 0; while (x--) s += x * 3; return s + 41; }
                int main(int argc, char **argv) { printf("%d\\n", answer(argc)); return 0; }
                """);
        Path fix = Files.writeString(dir.resolve("fix.diff"), """
                --- prog.c
                +++ prog.c
                @@ -1,3 +1,3 @@
                 #include <stdio.h>
                -__attribute__((noinline)) int answer(int x) { int s = 0; while (x--) s += x * 3; return s + 41; }
                +__attribute__((noinline)) int answer(int x) { int s = 0; while (x--) s += x * 3; return s + 42; }
                 int main(int argc, char **argv) { printf("%d\\n", answer(argc)); return 0; }
                """);
        Path out = dir.resolve("out");
        var run = suture("build", "--src", src.toString(), "--diff", fix.toString(), "--strip", "0",
                "--make", "gcc -O2 -o prog prog.c", "--target", "prog", "-o", out.toString());
        assertEquals(0, run.code(), run.err());
        assertTrue(run.out().contains("replaced: answer"), run.out());
        try (var files = Files.list(out)) {
            Path patch = files.findFirst().orElseThrow();
            assertEquals(Set.of("answer"), replaced(patch));
        }
    }

    @Test
    void diffThatDoesNotApplyIsBadInput() throws IOException {
        Path src = multi("src");
        Path stale = Files.writeString(dir.resolve("stale.diff"), """
                --- a/add.c
                +++ b/add.c
                @@ -1 +1 @@
                -int add(long a, long b) { return a + b; }
                +int add(long a, long b) { return b + a; }
                """);
        var run = suture("build", "--src", src.toString(), "--diff", stale.toString(), "--target", "prog",
                "-o", dir.resolve("out").toString());
        assertEquals(ExitCodes.BAD_INPUT, run.code(), run.err());
        assertTrue(run.err().contains("does not apply"), run.err());
        assertTrue(run.err().contains("Hunk #1 FAILED"), run.err());
    }

    @Test
    void failedBuildIsBadInputWithTheLogsEnd() throws IOException {
        Path src = multi("src");
        Path broken = Files.writeString(dir.resolve("broken.diff"), """
                --- a/mul.c
                +++ b/mul.c
                @@ -5,3 +5,3 @@
                     int r = 0;
                -    for (int i = 0; i < b; i++)
                +    for (int i = 0; i < b; i++
                         r = add(r, a);
                """);
        var run = suture("build", "--src", src.toString(), "--diff", broken.toString(), "--target", "prog",
                "-o", dir.resolve("out").toString());
        assertEquals(ExitCodes.BAD_INPUT, run.code(), run.err());
        assertTrue(run.err().contains("the build of the patched tree (make) failed"), run.err());
        assertTrue(run.err().contains("mul.c:"), run.err());
        assertTrue(run.err().contains("make: ***"), run.err());
        assertTrue(run.err().contains("The original tree built; the diff breaks the build."), run.err());
        // The scratch copies are named as the source tree they copy, and nothing of them is left behind.
        assertTrue(run.err().contains(src + "/mul.c") || run.err().contains("mul.c:"), run.err());
        assertFalse(run.err().contains("suture-build-"), run.err());
    }

    @Test
    void nothingChangedIsExitThree() throws IOException {
        Path src = multi("src");
        // unused.c is in libmath.a, but no target takes it out of the archive; the blank line moves main.c's
        // line numbers (main.o differs in its debug information) but changes no function.
        Path blankLine = Files.writeString(dir.resolve("blank.diff"), """
                --- a/main.c
                +++ b/main.c
                @@ -1,2 +1,3 @@
                +
                 #include <stdio.h>
                 #include <unistd.h>
                """);
        var run = suture("build", "--src", src.toString(), "--diff", diff("multi-unused.diff").toString(),
                "--diff", blankLine.toString(), "--target", "prog", "--target", "tool",
                "-o", dir.resolve("out").toString());
        assertEquals(ExitCodes.DOES_NOT_FIT, run.code(), run.err());
        assertTrue(run.err().contains("change no function in any target"), run.err());
        assertTrue(run.err().contains("prog: objects differ but no function changed"), run.err());
        assertTrue(run.err().contains("tool: no object differs"), run.err());
        assertFalse(Files.exists(dir.resolve("out")) && dir.resolve("out").toFile().list().length > 0);
    }

    private static List<String> strings(JsonNode array) {
        var out = new java.util.ArrayList<String>();
        array.forEach(n -> out.add(n.asText()));
        return out;
    }

    private String buildId(Path binary) throws IOException {
        String notes = Gcc.run(dir, "readelf", "-n", binary.toString());
        return notes.lines().filter(l -> l.contains("Build ID:")).findFirst().orElseThrow()
                .replaceAll(".*Build ID:\\s*", "").trim();
    }
}
