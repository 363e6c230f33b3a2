package dev.suture.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.suture.elf.ElfFile;
import dev.suture.elf.Symbol;
import dev.suture.testing.Commands;
import dev.suture.testing.StackTargets;
import dev.suture.testing.Target;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code suture stacks} against gdb, frame by frame, on a target whose threads sit in nanosleep, a futex wait,
 * read, a busy loop, a signal handler and a shared library, built several ways.
 *
 * <p>Normalization, and why:
 * <ul>
 * <li>Both tools use no separate debug files (gdb: {@code debug-file-directory} empty, debuginfod off; suture:
 *     {@code --no-debug-files}), so both see the same symbol tables: with libc's debug file gdb adds inline and
 *     tail-call frames, which no CFI unwinder can know. gdb runs with {@code backtrace past-main}/{@code past-entry}
 *     on, so it shows whole stacks as we do.</li>
 * <li>Where several symbols share an address (glibc: {@code nanosleep}, {@code __nanosleep}), the names match
 *     when both resolve to the same address in the module's .symtab/.dynsym.</li>
 * <li>gdb's {@code <signal handler called>} matches our frame marked as a signal trampoline.</li>
 * </ul>
 */
class StacksCommandTest {
    private static final Pattern THREAD = Pattern.compile("^Thread \\d+ \\(.*?LWP (\\d+)\\)");
    private static final Pattern FRAME = Pattern.compile("^#(\\d+)\\s+(?:0x[0-9a-f]+ in )?(\\S+)");

    @TempDir
    Path dir;

    @Test
    void agreesWithGdbAtO0Pie() throws Exception {
        compareWithGdb("o0pie", "-O0", "-fPIE", "-pie");
    }

    @Test
    void agreesWithGdbAtO2NoPie() throws Exception {
        compareWithGdb("o2nopie", "-O2", "-fno-pie", "-no-pie");
    }

    @Test
    void agreesWithGdbAtO2WithoutFramePointers() throws Exception {
        compareWithGdb("o2nofp", "-O2", "-fomit-frame-pointer", "-fPIE", "-pie");
    }

    @Test
    @Tag("slow")
    void agreesWithGdbAtO0NoPie() throws Exception {
        compareWithGdb("o0nopie", "-O0", "-fno-pie", "-no-pie");
    }

    @Test
    @Tag("slow")
    void agreesWithGdbAtO2PieWithFramePointers() throws Exception {
        compareWithGdb("o2fp", "-O2", "-fno-omit-frame-pointer", "-fPIE", "-pie");
    }

    @Test
    void textOutputShowsEveryThread() throws Exception {
        Path exe = StackTargets.build(dir, "text", "-O2");
        try (var target = Target.start(exe)) {
            target.awaitLine("ready", Duration.ofSeconds(20));
            var out = new StringWriter();
            var cl = Main.commandLine();
            cl.setOut(new PrintWriter(out));
            assertEquals(0, cl.execute("stacks", "-p", Long.toString(target.pid())));
            String text = out.toString();
            for (String s : List.of("\"sleeper\"", "\"waiter\"", "\"reader\"", "\"spinner\"", "\"signalled\"",
                    "\"library\"", "sleeper_inner", "spin_inner", "lib_sleep_in_lib", "<signal handler called>",
                    "[registers]", "[cfi]", "stopped for")) {
                assertTrue(text.contains(s), s + " in:\n" + text);
            }
        }
    }

    @Test
    void namesLocalFunctionsFromTheSeparateDebugFile() throws Exception {
        Path exe = StackTargets.build(dir, "debuglink", "-O2");
        StackTargets.stripLibrary(dir);
        try (var target = Target.start(exe)) {
            target.awaitLine("ready", Duration.ofSeconds(20));
            List<String> with = libraryThread(stacksJson(target.pidInt(), true));
            List<String> without = libraryThread(stacksJson(target.pidInt(), false));
            int at = with.indexOf("lib_hidden_sleep");
            assertTrue(at > 0, with.toString());
            assertEquals("lib_sleep_in_lib", with.get(at + 1), with.toString());
            assertEquals("??", without.get(at), without.toString());
            assertEquals(with.size(), without.size());
        }
    }

    @Test
    void unwindsThroughDebugFrameOfASeparateDebugFile() throws Exception {
        // no .eh_frame for the library's code and no frame pointers: only .debug_frame in the debug file describes it
        StackTargets.buildLibrary(dir, "-O2", "-fomit-frame-pointer", "-fno-asynchronous-unwind-tables",
                "-fno-unwind-tables");
        Path exe = StackTargets.build(dir, "debugframe", "-O2");
        StackTargets.stripLibrary(dir);
        try (var target = Target.start(exe)) {
            target.awaitLine("ready", Duration.ofSeconds(20));
            JsonNode thread = thread(stacksJson(target.pidInt(), true), "library");
            List<String> names = libraryThread(stacksJson(target.pidInt(), true));
            int at = names.indexOf("lib_hidden_sleep");
            assertTrue(at > 0, names.toString());
            assertEquals(List.of("lib_hidden_sleep", "lib_sleep_in_lib", "in_library"),
                    names.subList(at, at + 3), names.toString());
            assertEquals("outermost", thread.get("end").asText(), names.toString());
            for (int i = at + 1; i <= at + 3; i++) {
                assertEquals("cfi", thread.get("frames").get(i).get("method").asText(), names.toString());
            }
            // without the debug file the library has no CFI: frame pointers, which this code does not keep
            JsonNode bare = thread(stacksJson(target.pidInt(), false), "library");
            JsonNode next = bare.get("frames").get(at + 1);
            assertTrue(next == null ? bare.get("end").asText().equals("error")
                    : next.get("method").asText().equals("frame-pointer"), bare.toString());
        }
    }

    private static JsonNode thread(JsonNode stacks, String name) {
        for (JsonNode t : stacks.get("threads")) {
            if (t.get("name").asText().equals(name)) {
                return t;
            }
        }
        throw new AssertionError("no thread named " + name + " in " + stacks);
    }

    private static List<String> libraryThread(JsonNode stacks) {
        for (JsonNode t : stacks.get("threads")) {
            if (t.get("name").asText().equals("library")) {
                var names = new ArrayList<String>();
                for (JsonNode f : t.get("frames")) {
                    names.add(f.get("symbol") == null || f.get("symbol").isNull() ? "??" : f.get("symbol").asText());
                }
                return names;
            }
        }
        throw new AssertionError("no thread named library in " + stacks);
    }

    @Test
    void aPidThatNamesNoProcessIsBadInput() {
        var err = new StringWriter();
        var cl = Main.commandLine();
        cl.setErr(new PrintWriter(err));
        cl.setOut(new PrintWriter(new StringWriter()));
        assertEquals(ExitCodes.BAD_INPUT, cl.execute("stacks", "-p", "999999999"));
        assertTrue(err.toString().contains("no process 999999999"), err.toString());
    }

    private void compareWithGdb(String name, String... flags) throws Exception {
        Path exe = StackTargets.build(dir, name, flags);
        try (var target = Target.start(exe)) {
            target.awaitLine("ready", Duration.ofSeconds(20));
            int pid = target.pidInt();
            Map<Integer, List<String>> gdb = gdbBacktraces(pid);
            JsonNode ours = stacksJson(pid);
            Map<Integer, JsonNode> byTid = new HashMap<>();
            for (JsonNode t : ours.get("threads")) {
                byTid.put(t.get("tid").asInt(), t);
            }
            assertEquals(gdb.keySet(), byTid.keySet(), "threads");
            assertEquals(7, gdb.size());
            var names = new ArrayList<String>();
            for (var e : gdb.entrySet()) {
                JsonNode thread = byTid.get(e.getKey());
                names.add(thread.get("name").asText());
                JsonNode frames = thread.get("frames");
                List<String> theirs = e.getValue();
                String context = name + " thread " + e.getKey() + " \"" + thread.get("name").asText() + "\"\n  gdb:    "
                        + theirs + "\n  suture: " + describe(frames);
                assertEquals(theirs.size(), frames.size(), "frame count, " + context);
                for (int i = 0; i < theirs.size(); i++) {
                    assertTrue(sameFunction(theirs.get(i), frames.get(i)), "frame #" + i + ", " + context);
                }
                assertEquals("outermost", thread.get("end").asText(), context);
            }
            assertTrue(names.containsAll(List.of("sleeper", "waiter", "reader", "spinner", "signalled", "library")),
                    names.toString());
            assertRunsOn(target);
        }
    }

    /** gdb's function name per frame, per thread id (gdb run alone, then detached, before suture attaches). */
    private Map<Integer, List<String>> gdbBacktraces(int pid) throws IOException {
        var r = Commands.run(dir, Duration.ofSeconds(90), "gdb", "-batch", "-nx",
                "-iex", "set debuginfod enabled off", "-iex", "set debug-file-directory " + dir.resolve("no-debug"),
                "-ex", "set backtrace past-main on", "-ex", "set backtrace past-entry on",
                "-p", Integer.toString(pid), "-ex", "thread apply all bt");
        Map<Integer, List<String>> out = new LinkedHashMap<>();
        List<String> current = null;
        for (String line : r.output().lines().toList()) {
            var t = THREAD.matcher(line);
            if (t.find()) {
                current = new ArrayList<>();
                out.put(Integer.parseInt(t.group(1)), current);
                continue;
            }
            if (current != null && line.startsWith("#")) {
                if (line.contains("<signal handler called>")) {
                    current.add("<signal handler called>");
                    continue;
                }
                var f = FRAME.matcher(line);
                assertTrue(f.find(), line);
                current.add(f.group(2));
            }
        }
        assertTrue(!out.isEmpty(), "gdb printed no threads:\n" + r.output());
        return out;
    }

    private static JsonNode stacksJson(int pid) throws IOException {
        return stacksJson(pid, false);
    }

    private static JsonNode stacksJson(int pid, boolean debugFiles) throws IOException {
        var out = new StringWriter();
        var err = new StringWriter();
        var cl = Main.commandLine();
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        var args = new ArrayList<>(List.of("stacks", "-p", Integer.toString(pid), "--json"));
        if (!debugFiles) {
            args.add("--no-debug-files");
        }
        assertEquals(0, cl.execute(args.toArray(String[]::new)), err.toString());
        return new ObjectMapper().readTree(out.toString());
    }

    private final Map<String, ElfFile> elves = new HashMap<>();

    /** gdb's name and our frame name one function: equal, or aliases at one address of the frame's module. */
    private boolean sameFunction(String gdbName, JsonNode frame) {
        JsonNode symbol = frame.get("symbol");
        if (gdbName.equals("<signal handler called>")) {
            return frame.get("signalTrampoline") != null && frame.get("signalTrampoline").asBoolean();
        }
        if (gdbName.equals("??")) {
            return symbol == null || symbol.isNull();
        }
        if (symbol == null || symbol.isNull()) {
            return false;
        }
        if (gdbName.equals(symbol.asText())) {
            return true;
        }
        String module = frame.get("module").asText();
        ElfFile elf = elves.computeIfAbsent(module, m -> ElfFile.open(Path.of(m)));
        Set<Long> a = addresses(elf, gdbName);
        a.retainAll(addresses(elf, symbol.asText()));
        return !a.isEmpty();
    }

    private static Set<Long> addresses(ElfFile elf, String name) {
        var out = new HashSet<Long>();
        for (List<Symbol> table : List.of(elf.symbols(), elf.dynamicSymbols())) {
            for (Symbol s : table) {
                if (s.name().equals(name) && s.isDefined()) {
                    out.add(s.st_value());
                }
            }
        }
        return out;
    }

    private static String describe(JsonNode frames) {
        var l = new ArrayList<String>();
        for (JsonNode f : frames) {
            l.add(f.get("symbol") == null || f.get("symbol").isNull()
                    ? (f.path("signalTrampoline").asBoolean() ? "<signal handler called>" : "??")
                    : f.get("symbol").asText());
        }
        return l.toString();
    }

    /** After suture leaves: no thread traced or stopped, and the busy thread still burns CPU. */
    private static void assertRunsOn(Target target) throws Exception {
        int pid = target.pidInt();
        int spinner = -1;
        try (var tasks = Files.list(Path.of("/proc/" + pid + "/task"))) {
            for (Path task : tasks.toList()) {
                String status = Files.readString(task.resolve("status"));
                assertTrue(status.contains("TracerPid:\t0\n"), task + " still traced:\n" + status);
                assertTrue(!status.contains("State:\tt") && !status.contains("State:\tT"), task + " stopped");
                if (Files.readString(task.resolve("comm")).strip().equals("spinner")) {
                    spinner = Integer.parseInt(task.getFileName().toString());
                }
            }
        }
        assertTrue(spinner > 0);
        long before = cpuTicks(pid, spinner);
        long deadline = System.nanoTime() + Duration.ofSeconds(5).toNanos();
        while (cpuTicks(pid, spinner) == before) {
            assertTrue(System.nanoTime() < deadline, "the spinning thread made no progress after suture left");
            Thread.sleep(20);
        }
        assertTrue(target.alive());
    }

    private static long cpuTicks(int pid, int tid) throws IOException {
        String stat = Files.readString(Path.of("/proc/" + pid + "/task/" + tid + "/stat"));
        String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
        return Long.parseLong(f[11]) + Long.parseLong(f[12]);
    }
}
