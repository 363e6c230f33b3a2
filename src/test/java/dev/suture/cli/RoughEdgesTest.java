package dev.suture.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.suture.testing.Commands;
import dev.suture.testing.Gcc;
import dev.suture.testing.SutureProcess;
import dev.suture.testing.Target;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** The rough edges a new user met (issue 18), each through the command line as that user would meet it. */
class RoughEdgesTest {
    static final String PROGRAM = """
            #include <stdio.h>
            #include <unistd.h>
            __attribute__((noinline)) void say(int i) { printf("value %d\\n", i); }
            int main(void) {
                alarm(120);
                setvbuf(stdout, 0, _IOLBF, 0);
                for (int i = 0;; i++) { say(i); usleep(20000); }
            }
            """;

    @TempDir
    static Path dir;
    static Path exe;
    static Path patch;

    @BeforeAll
    static void buildProgramAndPatch() throws Exception {
        for (String variant : List.of("orig", "patched")) {
            Path d = Files.createDirectories(dir.resolve(variant));
            Files.writeString(d.resolve("prog.c"), variant.equals("orig") ? PROGRAM
                    : PROGRAM.replace("value %d", "patched %d"));
            Gcc.run(d, "gcc", "-g", "-O1", "-fPIE", "-ffunction-sections", "-fdata-sections", "-c", "prog.c",
                    "-o", "prog.o");
        }
        exe = dir.resolve("prog");
        Gcc.run(dir, "gcc", "-pie", "-o", exe.toString(), dir.resolve("orig/prog.o").toString());
        patch = dir.resolve("say.suture");
        var r = Cli.run("diff", "--target", exe.toString(), "--orig", dir.resolve("orig/prog.o").toString(),
                "--patched", dir.resolve("patched/prog.o").toString(), "-o", patch.toString(), "--name", "say-fix");
        assertEquals(0, r.code(), r.err());
    }

    private static List<CommandLine> commands() {
        return List.copyOf(Main.commandLine().getSubcommands().values());
    }

    /** Every summary in `suture --help` is whole (they were cut mid-sentence), and heads the command's --help. */
    @Test
    void everyCommandHasAWholeOneLineSummary() {
        var help = Cli.run("--help");
        assertEquals(0, help.code());
        for (var cl : commands()) {
            String name = cl.getCommandName();
            String[] header = cl.getCommandSpec().usageMessage().header();
            assertEquals(1, header.length, name + " has a one-line header");
            assertTrue(header[0].endsWith("."), name + ": " + header[0]);
            assertTrue(help.out().lines().anyMatch(l -> l.matches("\\s+" + name + "\\s+" + java.util.regex.Pattern
                    .quote(header[0]))), name + " in:\n" + help.out());
            var own = Cli.run(name, "--help");
            assertEquals(header[0], own.out().lines().findFirst().orElseThrow(), name + " --help starts with it");
        }
    }

    /** Descriptions are sentences: a capital first, a full stop last (they mixed "the process" and "The process."). */
    @Test
    void optionDescriptionsAreSentences() {
        var problems = new ArrayList<String>();
        for (var cl : commands()) {
            var spec = cl.getCommandSpec();
            var args = new ArrayList<CommandLine.Model.ArgSpec>(spec.options());
            args.addAll(spec.positionalParameters());
            for (var a : args) {
                String[] d = a.description();
                String text = String.join(" ", d).strip();
                if (text.isEmpty() || !Character.isUpperCase(text.charAt(0)) || !text.endsWith(".")) {
                    problems.add(cl.getCommandName() + " " + a.paramLabel() + ": " + text);
                }
            }
        }
        assertEquals(List.of(), problems);
    }

    /** No insider words: "the seed's scenario" meant nothing to a newcomer. */
    @Test
    void helpSpeaksToNewcomers() {
        for (var cl : commands()) {
            var own = Cli.run(cl.getCommandName(), "--help");
            assertFalse(own.out().toLowerCase(java.util.Locale.ROOT).contains("seed"), own.out());
        }
        assertFalse(Cli.run("--help").out().contains("seed"));
    }

    /** Every option of every command is in the README's table (build and stacks left some out). */
    @Test
    void theReadmeTableListsEveryOption() throws Exception {
        var readme = Files.readAllLines(Path.of("README.md"));
        var missing = new ArrayList<String>();
        for (var cl : commands()) {
            String name = cl.getCommandName();
            var row = readme.stream().filter(l -> l.startsWith("| `suture " + name + " ")
                    || l.startsWith("| `suture " + name + "`")).reduce((a, b) -> a + "\n" + b);
            if (row.isEmpty()) {
                missing.add(name + ": no row");
                continue;
            }
            for (var o : cl.getCommandSpec().options()) {
                String longest = o.longestName();
                if (o.usageHelp() || o.versionHelp() || longest.equals("--json")) {
                    continue; // every command's, said under the table
                }
                boolean named = java.util.Arrays.stream(o.names()).anyMatch(n -> java.util.regex.Pattern
                        .compile("(?<![\\w-])" + java.util.regex.Pattern.quote(n) + "(?![\\w-])").matcher(row.get())
                        .find());
                if (!named) {
                    missing.add(name + " " + longest);
                }
            }
        }
        assertEquals(List.of(), missing);
    }

    /** Times take a unit; plain numbers keep the unit each option had (ms for apply, s for build). */
    @Test
    void timesTakeAUnitAndPlainNumbersKeepTheirOldOne() throws Exception {
        assertEquals(Duration.ofSeconds(5), Durations.parse("5s", "milliseconds"));
        assertEquals(Duration.ofMillis(500), Durations.parse("500ms", "seconds"));
        assertEquals(Duration.ofMillis(1500), Durations.parse("1.5s", "milliseconds"));
        assertEquals(Duration.ofMinutes(2), Durations.parse("2m", "milliseconds"));
        assertEquals(Duration.ofMillis(300), Durations.parse("300", "milliseconds"));
        assertEquals(Duration.ofSeconds(300), Durations.parse("300", "seconds"));
        var bad = Cli.run("apply", "--all", "--timeout", "5 parsecs", patch.toString());
        assertEquals(ExitCodes.BAD_INPUT, bad.code());
        assertTrue(bad.err().contains("not a time") && bad.err().contains("500ms, 5s"), bad.err());
        var zero = Cli.run("apply", "--all", "--max-pause", "0s", patch.toString());
        assertEquals(ExitCodes.BAD_INPUT, zero.code());
        assertTrue(zero.err().contains("--max-pause must be longer than 0"), zero.err());
        // build --timeout: a plain number is seconds as before, and 300ms is 300 ms
        Path src = Files.createDirectories(dir.resolve("slow-src"));
        Files.writeString(src.resolve("a.c"), "int a;\n");
        Path diff = Files.writeString(dir.resolve("slow.diff"), """
                --- a/a.c
                +++ b/a.c
                @@ -1 +1 @@
                -int a;
                +int a = 1;
                """);
        var slow = Cli.run("build", "--src", src.toString(), "--diff", diff.toString(), "--target", "a",
                "--make", "sleep 20", "--timeout", "300ms", "-o", dir.resolve("slow-out").toString());
        assertEquals(ExitCodes.BAD_INPUT, slow.code(), slow.err());
        assertTrue(slow.err().contains("did not finish within 0.3 s"), slow.err());
    }

    /** A pid is checked before anything else, with one message for each kind of wrong pid (issue 18). */
    @Test
    void pidsThatNameNoProcessAreBadInput() {
        var zero = Cli.run("apply", "-p", "0", patch.toString());
        var minusOne = Cli.run("info", "-p", "-1");
        for (var r : List.of(zero, minusOne)) {
            assertEquals(ExitCodes.BAD_INPUT, r.code(), r.err());
            assertTrue(r.err().contains("is not a process id"), r.err());
        }
        for (String cmd : List.of("apply", "revert", "stacks", "info")) {
            for (String pid : List.of("2147483647", "2")) {
                var args = switch (cmd) {
                    case "apply" -> new String[] {"apply", "-p", pid, patch.toString()};
                    case "revert" -> new String[] {"revert", "-p", pid, "--all"};
                    default -> new String[] {cmd, "-p", pid};
                };
                var r = Cli.run(args);
                assertEquals(ExitCodes.BAD_INPUT, r.code(), String.join(" ", args) + ": " + r.err());
                assertTrue(r.err().contains(pid.equals("2") ? "is a kernel thread" : "no process " + pid), r.err());
            }
        }
        // a process root may not read says why, not only which file
        var one = Cli.run("info", "-p", "1");
        if (one.code() != 0) {
            assertFalse(one.err().strip().endsWith("/proc/1/maps"), one.err());
            assertTrue(one.err().contains("permission denied") || one.err().contains("no such"), one.err());
        }
        var noPid = Cli.run("revert", "--all");
        assertEquals(ExitCodes.BAD_INPUT, noPid.code());
        assertTrue(noPid.err().contains("give -p PID"), noPid.err());
    }

    /** Key files: a binary --key says it is no PEM file; keygen -o into a directory it may not write says why. */
    @Test
    void keyFilesAreExplained() throws Exception {
        Path binary = Files.write(dir.resolve("binary.key"), new byte[] {(byte) 0xff, (byte) 0xfe, 0, 1});
        var r = Cli.run("sign", patch.toString(), "--key", binary.toString());
        assertEquals(ExitCodes.BAD_INPUT, r.code());
        assertTrue(r.err().contains("not a PEM key file"), r.err());
        assertFalse(r.err().contains("Input length"), r.err());
        var proc = Cli.run("keygen", "-o", "/proc/1");
        assertEquals(ExitCodes.BAD_INPUT, proc.code());
        assertTrue(proc.err().contains("cannot write keys to /proc/1: "), proc.err());
        assertFalse(proc.err().contains("no such directory"), proc.err());
    }

    /** A build command that fails without a word says so, instead of "the last lines of its log:" and nothing. */
    @Test
    void aSilentFailedBuildSaysItPrintedNothing() throws Exception {
        Path src = Files.createDirectories(dir.resolve("false-src"));
        Files.writeString(src.resolve("a.c"), "int a;\n");
        Path diff = Files.writeString(dir.resolve("false.diff"), "--- a/a.c\n+++ b/a.c\n@@ -1 +1 @@\n-int a;\n+int a = 2;\n");
        var r = Cli.run("build", "--src", src.toString(), "--diff", diff.toString(), "--target", "a", "--make", "false",
                "-o", dir.resolve("false-out").toString());
        assertEquals(ExitCodes.BAD_INPUT, r.code());
        assertTrue(r.err().contains("failed (exit 1); it printed nothing"), r.err());
        assertFalse(r.err().strip().endsWith("log:"), r.err());
    }

    /** A truncated patch prints nothing on stdout before its error. */
    @Test
    void aTruncatedPatchPrintsOnlyTheError() throws Exception {
        byte[] whole = Files.readAllBytes(patch);
        int failures = 0;
        for (int keep = whole.length - 1; keep > 64; keep -= Math.max(1, whole.length / 40)) {
            Path cut = Files.write(dir.resolve("cut.suture"), java.util.Arrays.copyOf(whole, keep));
            var r = Cli.run("inspect", cut.toString());
            if (r.code() != 0) {
                failures++;
                assertEquals("", r.out(), keep + " bytes: " + r.err());
                assertTrue(r.err().contains(cut.toString()), r.err());
            }
        }
        assertTrue(failures > 10, "most truncations are refused: " + failures);
    }

    /** With --json, a failure is also one JSON object on stdout; its message stays on stderr. */
    @Test
    void jsonErrorsAreJsonOnStdout() throws Exception {
        var mapper = new ObjectMapper();
        var missing = Cli.run("inspect", "--json", dir.resolve("nothing-here").toString());
        assertEquals(ExitCodes.BAD_INPUT, missing.code());
        var doc = mapper.readTree(missing.out());
        assertEquals(ExitCodes.BAD_INPUT, doc.get("exitCode").asInt());
        assertTrue(doc.get("error").asText().contains("nothing-here"), doc.toString());
        assertTrue(missing.err().contains("nothing-here"), missing.err());
        var usage = Cli.run("apply", "--json", "--no-such-option", patch.toString());
        assertEquals(ExitCodes.BAD_INPUT, usage.code());
        assertTrue(mapper.readTree(usage.out()).get("error").asText().contains("--no-such-option"), usage.out());
        var vanished = Cli.run("stacks", "--json", "-p", "2147483647");
        assertEquals(ExitCodes.BAD_INPUT, mapper.readTree(vanished.out()).get("exitCode").asInt(), vanished.out());
        // without --json, stdout stays empty
        assertEquals("", Cli.run("inspect", dir.resolve("nothing-here").toString()).out());
    }

    /** "1 threads" no more; and on a terminal (not piped, not --json) apply --all and build show their progress. */
    @Test
    void countsAgreeAndATerminalShowsProgress() throws Exception {
        try (var t = Target.start(exe)) {
            t.awaitLine("value", Duration.ofSeconds(15));
            var stacks = Cli.run("stacks", "-p", Long.toString(t.pid()));
            assertEquals(0, stacks.code(), stacks.err());
            assertTrue(stacks.out().contains(": 1 thread, stopped for"), stacks.out());

            var piped = Cli.run("apply", "--all", "--dry-run", patch.toString());
            assertEquals(0, piped.code(), piped.err());
            assertFalse(piped.err().contains(" of "), "no progress when not on a terminal: " + piped.err());
            var onTerminal = terminal("apply", "--all", "--dry-run", patch.toString());
            assertEquals(0, onTerminal.status(), onTerminal.output());
            assertTrue(onTerminal.output().matches("(?s).*suture apply: \\[ *\\d+\\.\\d s\\] process \\d+ of \\d+: pid "
                    + t.pid() + " \\(prog\\).*"), onTerminal.output());
            var json = terminal("apply", "--all", "--dry-run", "--json", patch.toString());
            assertFalse(json.output().contains("suture apply: ["), "no progress with --json: " + json.output());
        }
        Path src = Files.createDirectories(dir.resolve("progress-src"));
        Files.writeString(src.resolve("a.c"), "int f(void) { return 1; }\nint main(void) { return f(); }\n");
        Files.writeString(src.resolve("Makefile"), "a: a.c\n\t$(CC) -O1 -o a a.c\n");
        Path diff = Files.writeString(dir.resolve("progress.diff"), """
                --- a/a.c
                +++ b/a.c
                @@ -1,2 +1,2 @@
                -int f(void) { return 1; }
                +int f(void) { return 2; }
                 int main(void) { return f(); }
                """);
        var build = terminal("build", "--src", src.toString(), "--diff", diff.toString(), "--target", "a", "-o",
                dir.resolve("progress-out").toString());
        assertEquals(0, build.status(), build.output());
        for (String stage : List.of("copying the tree twice", "building both trees (make, side by side)",
                "diffing a", "done")) {
            assertTrue(build.output().matches("(?s).*suture build: \\[ *\\d+\\.\\d s\\] " + java.util.regex.Pattern
                    .quote(stage) + ".*"), stage + " in:\n" + build.output());
        }
    }

    /** suture run in a JVM of its own on a pseudo-terminal (script(1)), as a person at a terminal runs it. */
    private static Commands.Result terminal(String... args) throws Exception {
        String command = SutureProcess.command(args).stream().map(RoughEdgesTest::quote)
                .collect(Collectors.joining(" "));
        return Commands.run(dir, Duration.ofSeconds(120), "script", "-qec", command, "/dev/null");
    }

    private static String quote(String s) {
        return "'" + s.replace("'", "'\\''") + "'";
    }

    @Test
    void aPatchPackageNeedsAGoodNameAndVersion() {
        var badName = Cli.run("package", patch.toString(), "--name", "Bad_Name", "--version", "1.0", "-o",
                dir.toString());
        assertEquals(ExitCodes.BAD_INPUT, badName.code());
        assertTrue(badName.err().contains("cannot name a Debian package"), badName.err());
        var badVersion = Cli.run("package", patch.toString(), "--name", "ok", "--version", "one", "-o", dir.toString());
        assertEquals(ExitCodes.BAD_INPUT, badVersion.code());
        assertTrue(badVersion.err().contains("is not a Debian version"), badVersion.err());
        var twice = Cli.run("package", patch.toString(), patch.toString(), "--name", "ok", "--version", "1", "-o",
                dir.toString());
        assertEquals(ExitCodes.BAD_INPUT, twice.code());
        assertTrue(twice.err().contains("one patch per binary"), twice.err());
        assertNotEquals(0, Cli.run("package", "--name", "ok", "--version", "1").code(), "a PATCH is required");
    }
}
