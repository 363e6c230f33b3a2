package dev.suture.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.suture.testing.Gcc;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code suture diff} and {@code suture inspect PATCH} from the command line, on a real two-build change. */
class DiffCommandTest {
    @TempDir
    Path dir;

    private static final String SRC = """
            #include <stdio.h>
            int counter = 41;
            __attribute__((noinline)) void say(void) { printf("counter %d\\n", counter + 1); }
            __attribute__((noinline)) void other(void) { printf("other %d\\n", counter); }
            int main(void) { say(); other(); return 0; }
            """;

    private final StringWriter out = new StringWriter();
    private final StringWriter err = new StringWriter();

    @BeforeEach
    void builds() throws Exception {
        for (String build : new String[] {"orig", "patched"}) {
            Path d = Files.createDirectories(dir.resolve(build));
            Files.writeString(d.resolve("prog.c"), build.equals("orig") ? SRC : SRC.replace("counter + 1", "counter - 1"));
            Gcc.run(d, "gcc", "-O2", "-c", "-ffunction-sections", "-fdata-sections", "-o", "prog.o", "prog.c");
        }
        Gcc.run(dir, "gcc", "-no-pie", "-o", "prog", "orig/prog.o");
    }

    private int run(String... args) {
        var cl = Main.commandLine();
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        return cl.execute(args);
    }

    private String p(String name) {
        return dir.resolve(name).toString();
    }

    @Test
    void diffWritesThePatchAndInspectShowsIt() throws Exception {
        assertEquals(0, run("diff", "--target", p("prog"), "--orig", p("orig/prog.o"), "--patched",
                p("patched/prog.o"), "-o", p("fix.suture"), "--name", "counter-fix"), err.toString());
        assertTrue(out.toString().contains("replaced: say"), out.toString());
        out.getBuffer().setLength(0);
        assertEquals(0, run("inspect", p("fix.suture")), err.toString());
        String text = out.toString();
        assertTrue(text.contains("patch counter-fix"), text);
        String say = Gcc.run(dir, "nm", p("prog")).lines().filter(l -> l.endsWith(" say")).findFirst().orElseThrow();
        assertTrue(text.contains("0x" + say.substring(0, 16).replaceFirst("^0+", "")), text);
        assertTrue(text.contains("undefined external symbols: printf@GLIBC_2.2.5"), text);
        assertTrue(!text.contains(" other "), text);

        out.getBuffer().setLength(0);
        assertEquals(0, run("inspect", "--json", p("fix.suture")), err.toString());
        var json = new ObjectMapper().readTree(out.toString());
        assertEquals("say", json.at("/patch/replaced/0/symbol").asText());
        assertEquals(64, json.at("/patch/replaced/0/sha256").asText().length());
    }

    @Test
    void oneObjectEachPairsWhateverTheirNames() throws Exception {
        Files.copy(dir.resolve("patched/prog.o"), dir.resolve("prog-fixed.o"));
        assertEquals(0, run("diff", "--target", p("prog"), "--orig", p("orig/prog.o"), "--patched",
                p("prog-fixed.o"), "-o", p("fix.suture")), err.toString());
        assertTrue(out.toString().contains("replaced: say"), out.toString());
    }

    @Test
    void aPatchedObjectWithoutAnOriginalIsNamedWhenNothingChanged() throws Exception {
        Files.copy(dir.resolve("orig/prog.o"), dir.resolve("orig/other.o"));
        Files.copy(dir.resolve("patched/prog.o"), dir.resolve("patched/prog-fixed.o"));
        Files.copy(dir.resolve("orig/prog.o"), dir.resolve("patched/other.o"));
        assertEquals(3, run("diff", "--target", p("prog"), "--orig", p("orig/prog.o"), p("orig/other.o"),
                "--patched", p("patched/prog-fixed.o"), p("patched/other.o"), "-o", p("fix.suture")));
        assertTrue(err.toString().contains("no original object corresponds to " + p("patched/prog-fixed.o")),
                err.toString());
    }

    @Test
    void diffJsonListsReplacedFunctions() throws Exception {
        assertEquals(0, run("diff", "--json", "--target", p("prog"), "--orig", p("orig/prog.o"), "--patched",
                p("patched/prog.o"), "-o", p("fix.suture")), err.toString());
        var json = new ObjectMapper().readTree(out.toString());
        assertEquals("say", json.at("/replaced/0").asText());
        assertTrue(json.at("/id").asText().startsWith("prog-"), out.toString());
    }

    @Test
    void nothingChangedExitsThree() {
        assertEquals(ExitCodes.DOES_NOT_FIT, run("diff", "--target", p("prog"), "--orig", p("orig/prog.o"),
                "--patched", p("orig/prog.o"), "-o", p("fix.suture")));
        assertTrue(err.toString().contains("no function changed"), err.toString());
    }

    @Test
    void missingObjectIsBadInput() {
        assertEquals(ExitCodes.BAD_INPUT, run("diff", "--target", p("prog"), "--orig", p("nope.o"),
                "--patched", p("patched/prog.o")));
    }
}
