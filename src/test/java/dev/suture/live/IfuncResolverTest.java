package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.cli.Cli;
import dev.suture.testing.SutureProcess;
import dev.suture.testing.Target;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A fix that calls IFUNCs of a library that nothing in the process called yet, so no module has resolved them:
 * apply calls the resolver inside the target, once, before the window. A resolver that crashes or never returns
 * fails the apply (exit 3) and leaves the program as it was: running, printing, untraced, nothing mapped.
 */
class IfuncResolverTest {
    @TempDir
    Path dir;

    static final String LIB_C = """
            #include <unistd.h>
            static int add_plain(int a, int b) { return a + b; }
            static int add_tuned(int a, int b) { return a + b + 1000; }
            static void *resolve_add(void) {
                __builtin_cpu_init();
                write(1, "resolved\\n", 9);
                return __builtin_cpu_supports("sse2") ? (void *) add_tuned : (void *) add_plain;
            }
            int lib_add(int a, int b) __attribute__((ifunc("resolve_add")));
            static void *resolve_crash(void) { volatile int *p = (int *) 16; return (void *) (long) *p; }
            int lib_crash(int a, int b) __attribute__((ifunc("resolve_crash")));
            static void *resolve_hang(void) { for (;;) { __asm__ volatile("" ::: "memory"); } }
            int lib_hang(int a, int b) __attribute__((ifunc("resolve_hang")));
            int lib_version(void) { return 7; }
            """;

    static final String LIB_H = """
            int lib_add(int a, int b);
            int lib_crash(int a, int b);
            int lib_hang(int a, int b);
            int lib_version(void);
            """;

    static final String PROG_C = """
            #include <stdio.h>
            #include <unistd.h>
            #include "lib.h"
            __attribute__((noinline)) void report(int n) {
                printf("report %d version %d\\n", n, lib_version()); fflush(stdout);
            }
            int main(void) { alarm(120); for (int i = 0;; i++) { report(i); usleep(20000); } }
            """;

    static final String MAKEFILE = "prog: prog.c lib.c lib.h\n"
            + "\tgcc -O2 -fPIC -shared -o libifn.so lib.c\n"
            + "\tgcc -O2 -o prog prog.c -L. -lifn -Wl,-rpath,'$$ORIGIN'\n";

    private static String fix(String call) {
        return PROG_C.replace("printf(\"report %d version %d\\n\", n, lib_version());",
                "printf(\"fixed %d sum %d\\n\", n, " + call + "(n, 2));");
    }

    private Fixture.Project project(String name, String call) throws Exception {
        return Fixture.project(dir, name, Map.of("lib.c", LIB_C, "lib.h", LIB_H, "prog.c", PROG_C,
                "Makefile", MAKEFILE), Map.of("prog.c", fix(call)));
    }

    @Test
    void theResolverRunsInTheTargetOnceAndItsChoiceIsCalled() throws Exception {
        var project = project("add", "lib_add");
        Path patch = project.built("prog", dir.resolve("add-out"));
        try (var t = Target.start(project.deployed().resolve("prog"))) {
            t.awaitLine(l -> l.startsWith("report 3 version 7"), Duration.ofSeconds(15));
            String pid = Long.toString(t.pid());
            var dry = Cli.run("apply", "-p", pid, "--dry-run", patch.toString());
            assertEquals(0, dry.code(), dry.out() + dry.err());
            assertTrue(dry.out().contains("call the IFUNC resolvers of lib_add"), dry.out());
            assertFalse(t.lines().contains("resolved"), "a dry run runs no resolver");
            var apply = Cli.run("apply", "-p", pid, patch.toString());
            assertEquals(0, apply.code(), apply.out() + apply.err());
            int mark = t.lines().size();
            // add_tuned, the one the resolver chose: sum = n + 2 + 1000
            String fixed = t.awaitLine(l -> l.startsWith("fixed "), Duration.ofSeconds(15), Math.max(0, mark - 5));
            String[] w = fixed.split(" ");
            assertEquals(Integer.parseInt(w[1]) + 1002, Integer.parseInt(w[3]), fixed);
            assertEquals(1, t.lines().stream().filter(l -> l.equals("resolved")).count(), "resolved once");
            var revert = Cli.run("revert", "-p", pid, "--all");
            assertEquals(0, revert.code(), revert.out() + revert.err());
            int after = t.lines().size();
            t.awaitLine(l -> l.startsWith("report ") && l.endsWith("version 7"), Duration.ofSeconds(15), after);
            assertEquals(1, t.lines().stream().filter(l -> l.equals("resolved")).count());
        }
    }

    @Test
    void aResolverThatCrashesLeavesTheProgramAsItWas() throws Exception {
        refusedAndUnharmed("crash", "lib_crash", "crashed (signal 11)");
    }

    @Test
    void aResolverThatNeverReturnsLeavesTheProgramAsItWas() throws Exception {
        refusedAndUnharmed("hang", "lib_hang", "did not return within");
    }

    /**
     * Principle 3 for the call: suture kills itself at every step from the call stub's first write to its removal
     * (the thread borrowed, the resolver run with its own write(2), the result read, the thread given back); each
     * time the program lives on untraced, and after {@code recover} runs the original or the fix, with no region
     * and no journal left and the text of every module as it was (the call stub removed).
     */
    @Test
    void aKillAtEveryStepOfTheCallLeavesTheProgramConsistentAfterRecover() throws Exception {
        var project = project("kill", "lib_add");
        Path patch = project.built("prog", dir.resolve("kill-out"));
        Path runDir = Files.createDirectories(dir.resolve("run"));
        Path exe = project.deployed().resolve("prog");
        System.setProperty("suture.runDir", runDir.toString());
        try (var t = Target.start(exe)) {
            t.awaitLine(l -> l.startsWith("report 3 version 7"), Duration.ofSeconds(15));
            int pid = t.pidInt();
            var text = allText(pid);
            Path log = dir.resolve("steps.log");
            var counted = SutureProcess.run(dir, Duration.ofSeconds(60), Map.of("SUTURE_RUN_DIR", runDir.toString(),
                    "SUTURE_FAULT_LOG", log.toString()), "apply", "-p", Integer.toString(pid), patch.toString());
            assertEquals(0, counted.status(), counted.toString());
            Patcher.revert(pid, List.of(), true, Duration.ofSeconds(5));
            var steps = Files.readAllLines(log);
            int first = -1;
            int last = -1;
            String site = null;
            int writesThere = 0;
            for (int i = 0; i < steps.size() && last < 0; i++) {
                String[] f = steps.get(i).split(" ");
                boolean write = f[1].equals("pwrite") || f[1].equals("process_vm_writev");
                if (write && site == null) {
                    site = f[3];
                    first = i + 1;
                }
                if (write && f[3].equals(site) && ++writesThere == 3) {
                    last = i + 2; // the stub's removal, and one step after
                }
            }
            assertTrue(first > 0 && last > first + 5, "the call's steps: " + first + "-" + last + " of " + steps);
            var outcomes = new ArrayList<String>();
            for (int k = first; k <= last; k++) {
                String what = "killed at step " + k + " (" + steps.get(k - 1) + ")";
                var recovered = Fixture.killAndRecover(dir, runDir, t, k, what, "apply", "-p", Integer.toString(pid),
                        patch.toString());
                boolean patched = !Patcher.applied(pid).isEmpty();
                int mark = t.lines().size();
                String line = t.awaitLine(l -> l.startsWith(patched ? "fixed " : "report "), Duration.ofSeconds(15),
                        mark + 1);
                if (patched) {
                    String[] w = line.split(" ");
                    assertEquals(Integer.parseInt(w[1]) + 1002, Integer.parseInt(w[3]), what + ": " + line);
                    Patcher.revert(pid, List.of(), true, Duration.ofSeconds(5));
                } else {
                    assertTrue(line.endsWith("version 7"), what + ": " + line);
                }
                assertEquals(text, allText(pid), what + ": the text of some module changed");
                outcomes.add(k + ": " + (patched ? "patched" : "original") + " " + recovered.outcome());
            }
            System.out.println("IFUNC call kill points: " + outcomes);
            assertTrue(t.alive());
        } finally {
            System.clearProperty("suture.runDir");
        }
    }

    /** The executable code of every module of {@code pid}, by path, in hex: where a stub could be left. */
    private static Map<String, String> allText(int pid) throws Exception {
        var text = new java.util.TreeMap<String, String>();
        for (var m : dev.suture.proc.Maps.read(pid)) {
            if (m.executable() && m.path().startsWith("/")) {
                text.merge(m.path(), java.util.HexFormat.of().formatHex(Fixture.text(pid, Path.of(m.path()))),
                        (a, b) -> a);
            }
        }
        return text;
    }

    private void refusedAndUnharmed(String name, String call, String why) throws Exception {
        var project = project(name, call);
        Path patch = project.built("prog", dir.resolve(name + "-out"));
        try (var t = Target.start(project.deployed().resolve("prog"))) {
            t.awaitLine(l -> l.startsWith("report 3 version 7"), Duration.ofSeconds(15));
            String pid = Long.toString(t.pid());
            String maps = Files.readString(Path.of("/proc/" + pid + "/maps"));
            var apply = Cli.run("apply", "-p", pid, patch.toString());
            assertEquals(3, apply.code(), apply.out() + apply.err());
            assertTrue(apply.err().contains(call) && apply.err().contains(why), apply.err());
            int mark = t.lines().size();
            t.awaitLine(l -> l.startsWith("report ") && l.endsWith("version 7"), Duration.ofSeconds(15), mark);
            t.awaitLine(l -> l.startsWith("report ") && l.endsWith("version 7"), Duration.ofSeconds(15), mark + 1);
            assertTrue(t.alive());
            assertTrue(t.lines().stream().noneMatch(l -> l.startsWith("fixed")));
            assertEquals(maps, Files.readString(Path.of("/proc/" + pid + "/maps")), "nothing mapped or left");
            assertTrue(Files.readString(Path.of("/proc/" + pid + "/status")).contains("TracerPid:\t0"));
        }
    }
}
