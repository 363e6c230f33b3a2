package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.cli.Cli;
import dev.suture.patch.PatchFile;
import dev.suture.testing.Target;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A fix that starts using data of another module the program never referenced: {@code stderr} and {@code environ}
 * of libc and a variable of a library of the project (loaded, stored, compared, and a double moved through SSE),
 * through {@code suture build} and {@code suture apply}, in a PIE executable, a non-PIE one and a shared library.
 * gcc reaches them in the executables with 32-bit fields the live patch cannot fill; the diff routes each through a
 * thunk that takes the address from a GOT slot.
 */
class OtherModuleDataTest {
    @TempDir
    Path dir;

    static final String VAR_H = """
            extern int lib_counter;
            extern double lib_scale;
            int lib_get(void);
            double lib_scale_get(void);
            void report(int n);
            """;

    static final String VAR_C = """
            int lib_counter = 40;
            double lib_scale = 1.0;
            int lib_get(void) { return lib_counter; }
            double lib_scale_get(void) { return lib_scale; }
            """;

    static final String REPORT = """
            #include <stdio.h>
            #include "var.h"
            void report(int n) { printf("report %d get %d\\n", n, lib_get()); fflush(stdout); }
            """;

    static final String REPORT_FIXED = """
            #include <stdio.h>
            #include <string.h>
            #include "var.h"
            extern char **environ;
            void report(int n) {
                lib_counter += 2;
                if (lib_counter > 100000) lib_counter = 0;
                lib_scale = lib_scale * 2.0;
                if (lib_scale > 1e9) lib_scale = 1.0;
                const char *v = "none";
                for (char **e = environ; *e; e++) if (strncmp(*e, "FARDATA=", 8) == 0) v = *e + 8;
                FILE *saved = stderr;
                stderr = stdout;
                fprintf(stderr, "patched %d counter %d get %d scale %s env %s\\n", n, lib_counter, lib_get(),
                        lib_scale == lib_scale_get() ? "same" : "differs", v);
                stderr = saved;
                if (stderr != stdout) fprintf(stderr, "stderr is its own again\\n");
                fflush(stdout);
            }
            """;

    static final String MAIN = """
            #include <stdlib.h>
            #include <unistd.h>
            #include "var.h"
            int main(void) {
                alarm(120);
                setenv("FARDATA", "hello", 1);
                for (int i = 0;; i++) { report(i); usleep(20000); }
            }
            """;

    /** The project: libvar.so, and report() in the program itself or in libreport.so. */
    private static Map<String, String> files(boolean reportInLibrary, String cflags) {
        String link = "-L. -Wl,--no-as-needed -Wl,-rpath,'$$ORIGIN'";
        String makefile = reportInLibrary
                ? "prog: main.c report.c var.c\n"
                  + "\tgcc -O2 -fPIC -shared -o libvar.so var.c\n"
                  + "\tgcc -O2 -fPIC -shared -o libreport.so report.c " + link + " -lvar\n"
                  + "\tgcc -O2 -o prog main.c " + link + " -lreport -lvar\n"
                : "prog: main.c report.c var.c\n"
                  + "\tgcc -O2 -fPIC -shared -o libvar.so var.c\n"
                  + "\tgcc -O2 " + cflags + " -o prog main.c report.c " + link + " -lvar\n";
        return Map.of("var.h", VAR_H, "var.c", VAR_C, "report.c", REPORT, "main.c", MAIN, "Makefile", makefile);
    }

    private void fixesAndReverts(String name, boolean reportInLibrary, String cflags) throws Exception {
        var project = Fixture.project(dir, name, files(reportInLibrary, cflags), Map.of("report.c", REPORT_FIXED));
        String module = reportInLibrary ? "libreport.so" : "prog";
        Path patch = project.built(module, dir.resolve(name + "-out"));
        // the executables reach the data with 32-bit fields, which go through thunks; -fPIC code through the GOT
        boolean thunks = PatchFile.read(patch).sections().stream().anyMatch(s -> s.name().equals(".text.suture.far"));
        assertEquals(!reportInLibrary, thunks);
        try (var t = Target.start(project.deployed().resolve("prog"))) {
            t.awaitLine(l -> l.startsWith("report 3 get 40"), Duration.ofSeconds(15));
            String pid = Long.toString(t.pid());
            var apply = Cli.run("apply", "-p", pid, patch.toString());
            assertEquals(0, apply.code(), apply.out() + apply.err());
            int mark = t.lines().size();
            String first = t.awaitLine(l -> l.startsWith("patched "), Duration.ofSeconds(15), mark);
            String later = t.awaitLine(l -> l.startsWith("patched ") && !l.equals(first), Duration.ofSeconds(15),
                    mark);
            Matcher a = PATCHED.matcher(first);
            Matcher b = PATCHED.matcher(later);
            assertTrue(a.matches(), first);
            assertTrue(b.matches(), later);
            // stored into the library's variable, read back the same by the library; the double moved through SSE
            assertEquals(a.group(2), a.group(3), first);
            assertTrue(Integer.parseInt(a.group(2)) >= 42, first);
            assertTrue(Integer.parseInt(b.group(2)) > Integer.parseInt(a.group(2)), later);
            assertTrue(t.lines().stream().skip(mark).anyMatch(l -> l.equals("stderr is its own again")));
            var revert = Cli.run("revert", "-p", pid, "--all");
            assertEquals(0, revert.code(), revert.out() + revert.err());
            int after = t.lines().size();
            String back = t.awaitLine(l -> l.startsWith("report "), Duration.ofSeconds(15), after);
            // the original code again, reading the counter the fix left in the library
            Matcher r = Pattern.compile("report \\d+ get (\\d+)").matcher(back);
            assertTrue(r.matches(), back);
            assertTrue(Integer.parseInt(r.group(1)) >= Integer.parseInt(b.group(2)), back);
            assertTrue(t.alive());
        }
    }

    static final Pattern PATCHED = Pattern.compile("patched (\\d+) counter (\\d+) get (\\d+) scale same env hello");

    @Test
    void pieExecutable() throws Exception {
        fixesAndReverts("pie", false, "-fPIE -pie");
    }

    @Test
    void nonPieExecutable() throws Exception {
        fixesAndReverts("nopie", false, "-fno-pie -no-pie");
    }

    @Test
    void sharedLibrary() throws Exception {
        fixesAndReverts("shared", true, "");
    }

    @Test
    void anAccessTheThunksCannotMakeIsRefusedAtDiffTime() throws Exception {
        var project = Fixture.project(dir, "push", files(false, ""), Map.of("report.c", """
                #include <stdio.h>
                #include "var.h"
                void report(int n) {
                    long v;
                    __asm__ volatile("pushq lib_counter(%%rip)\\n\\tpopq %0" : "=r"(v));
                    printf("report %d pushed %ld\\n", n, v);
                }
                """));
        var build = project.build("prog", dir.resolve("push-out"));
        assertEquals(3, build.code(), build.out() + build.err());
        assertTrue(build.err().contains("report") && build.err().contains("lib_counter")
                && build.err().contains("ff 35"), build.err());
    }
}
