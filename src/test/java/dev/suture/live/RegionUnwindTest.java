package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.suture.cli.Cli;
import dev.suture.proc.Maps;
import dev.suture.proc.RemoteMemory;
import dev.suture.proc.Tracer;
import dev.suture.testing.Target;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A thread inside a patch's new code unwinds by the CFI the patch brought (its relocated .eh_frame, which the region
 * header locates): {@code suture stacks} shows the new function and its callers to _start, every frame by CFI, in
 * code built without frame pointers; revert and a patch applied on top name the frame that unwind found. A region
 * whose .eh_frame was corrupted in the target unwinds without it, and nothing trusts that unwind.
 */
class RegionUnwindTest {
    /** slow() returns at once; its fix never returns, sleeping in nap(), so the main thread stays in the new code. */
    static final String PROGRAM = """
            #include <stdio.h>
            #include <time.h>
            #include <unistd.h>

            __attribute__((noipa)) void nap(long ms) {
                struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
                nanosleep(&t, 0);
            }

            __attribute__((noipa)) int slow(volatile int *stop) {
                return 1;
            }

            static volatile int never;

            int main(void) {
                alarm(120);
                setvbuf(stdout, 0, _IOLBF, 0);
                for (;;) {
                    printf("slow %d\\n", slow(&never));
                    nap(20);
                }
            }
            """;
    static final String FIXED = PROGRAM.replace("""
            int slow(volatile int *stop) {
                return 1;
            """, """
            int slow(volatile int *stop) {
                puts("in new slow");
                while (!*stop)
                    nap(20);
                return 2;
            """);
    static final String ID = "slow-cfi";

    /** busy() sleeps inside itself and is called again at once: a window finds the thread in it, or in its fix. */
    static final String BUSY = """
            #include <stdio.h>
            #include <time.h>
            #include <unistd.h>

            __attribute__((noipa)) void nap(long ms) {
                struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
                nanosleep(&t, 0);
            }

            __attribute__((noipa)) int busy(void) {
                nap(20);
                return 1;
            }

            int main(void) {
                alarm(120);
                setvbuf(stdout, 0, _IOLBF, 0);
                for (;;)
                    printf("busy %d\\n", busy());
            }
            """;

    @TempDir
    static Path dir;
    static Path exe;
    static Path patch;
    static Path onTop;
    static Path busyExe;
    static Path busy2;
    static Path busy3;

    @BeforeAll
    static void build() throws IOException {
        String[] flags = {"-O2", "-fomit-frame-pointer", "-fPIE"};
        Path orig = Fixture.object(dir, "orig", "prog", PROGRAM, flags);
        exe = Fixture.link(dir, "prog", List.of(orig), "-pie");
        patch = dir.resolve(ID + ".suture");
        Fixture.diff(exe, List.of(orig), List.of(Fixture.object(dir, "patched", "prog", FIXED, flags)), ID, patch);
        onTop = dir.resolve("slow-3.suture");
        Fixture.diff(exe, List.of(orig), List.of(Fixture.object(dir, "again", "prog",
                FIXED.replace("return 2;", "return 3;"), flags)), "slow-3", onTop);
        Path busyOrig = Fixture.object(dir, "orig", "busy", BUSY, flags);
        busyExe = Fixture.link(dir, "busy", List.of(busyOrig), "-pie");
        busy2 = dir.resolve("busy-2.suture");
        Fixture.diff(busyExe, List.of(busyOrig), List.of(Fixture.object(dir, "patched", "busy",
                BUSY.replace("nap(20);\n    return 1;", "nap(300);\n    return 2;"), flags)), "busy-2", busy2);
        busy3 = dir.resolve("busy-3.suture");
        Fixture.diff(busyExe, List.of(busyOrig), List.of(Fixture.object(dir, "again", "busy",
                BUSY.replace("nap(20);\n    return 1;", "nap(300);\n    return 3;"), flags)), "busy-3", busy3);
    }

    /** The target with the fix applied and its main thread inside the new slow(). */
    private static Target patched() throws IOException {
        var t = Target.start(exe);
        try {
            Fixture.await(t, 0, "slow 1", 2);
            var r = Cli.run("apply", "-p", Long.toString(t.pid()), patch.toString());
            assertEquals(0, r.code(), r.out() + r.err());
            Fixture.await(t, 0, "in new slow", 1);
            return t;
        } catch (RuntimeException | Error | IOException e) {
            t.close();
            throw e;
        }
    }

    private static JsonNode mainThread(Target t) throws IOException {
        var r = Cli.run("stacks", "-p", Long.toString(t.pid()), "--json", "--no-debug-files");
        assertEquals(0, r.code(), r.out() + r.err());
        for (JsonNode thread : new ObjectMapper().readTree(r.out()).get("threads")) {
            if (thread.get("tid").asLong() == t.pid()) {
                return thread;
            }
        }
        throw new AssertionError("no main thread in " + r.out());
    }

    /** The index of the frame in the new slow(). */
    private static int newCode(JsonNode thread) {
        JsonNode frames = thread.get("frames");
        for (int i = 0; i < frames.size(); i++) {
            if (frames.get(i).get("module").asText().equals("[patch " + ID + "]")) {
                return i;
            }
        }
        throw new AssertionError("no frame in the patch region: " + thread);
    }

    @Test
    void stacksShowsTheNewCodeAndItsCallersByCfi() throws Exception {
        try (var t = patched()) {
            JsonNode thread = mainThread(t);
            JsonNode frames = thread.get("frames");
            int k = newCode(thread);
            assertTrue(k >= 2, "nanosleep and nap run above the new code: " + thread);
            assertEquals("slow", frames.get(k).get("symbol").asText(), thread.toString());
            assertEquals("nap", frames.get(k - 1).get("symbol").asText(), thread.toString());
            assertEquals("main", frames.get(k + 1).get("symbol").asText(), thread.toString());
            assertEquals("_start", frames.get(frames.size() - 1).get("symbol").asText(), thread.toString());
            assertEquals("outermost", thread.get("end").asText(), thread.toString());
            for (int i = 1; i < frames.size(); i++) {
                assertEquals("cfi", frames.get(i).get("method").asText(), "frame #" + i + " of " + thread);
            }
            var text = Cli.run("stacks", "-p", Long.toString(t.pid()), "--no-debug-files");
            assertTrue(text.out().contains("[patch " + ID + "]") && text.out().contains(" slow+0x"), text.out());
        }
    }

    @Test
    void revertAndAPatchOnTopNameTheFrameTheCfiFound() throws Exception {
        try (var t = patched()) {
            int k = newCode(mainThread(t));
            // the conservative stack scan, used when an unwind is not trusted, names every hit frame #1
            assertNotEquals(1, k);
            String pid = Long.toString(t.pid());
            var revert = Cli.run("revert", "-p", pid, "--timeout", "300", ID);
            assertEquals(4, revert.code(), revert.out() + revert.err());
            assertTrue(revert.err().contains("patch " + ID) && revert.err().contains("frame #" + k + ";"),
                    revert.err());
            var apply = Cli.run("apply", "-p", pid, "--timeout", "300", onTop.toString());
            assertEquals(4, apply.code(), apply.out() + apply.err());
            assertTrue(apply.err().contains("slow") && apply.err().contains("frame #" + k + ";"), apply.err());
            assertEquals(List.of(ID), Patcher.applied(t.pidInt()).stream().map(Patcher.AppliedPatch::patchId)
                    .toList());
            assertTrue(t.alive());
        }
    }

    private static Regions.Found region(Target t) {
        try (var memory = RemoteMemory.open(t.pidInt())) {
            return Regions.scan(t.pidInt(), Maps.read(t.pidInt()), memory).getFirst();
        }
    }

    @Test
    void aPatchOnTopAndRevertWaitForTheReturnOfTheNewCode() throws Exception {
        // the thread is inside busy()'s fix at every window: only its CFI gives the return to wait at
        try (var t = Target.start(busyExe)) {
            String pid = Long.toString(t.pid());
            Fixture.await(t, 0, "busy 1", 2);
            var first = Cli.run("apply", "-p", pid, "--timeout", "10s", busy2.toString());
            assertEquals(0, first.code(), first.out() + first.err());
            Fixture.await(t, 0, "busy 2", 2);
            var again = Cli.run("apply", "-p", pid, "--timeout", "10s", busy3.toString());
            assertEquals(0, again.code(), again.out() + again.err());
            assertTrue(again.out().contains("after waiting"), again.out());
            Fixture.await(t, 0, "busy 3", 2);
            // one at a time, newest first (revert --all of two patches of one function refuses: the older one's
            // entry holds the newer one's jump, not its own)
            for (String id : List.of("busy-3", "busy-2")) {
                int mark = t.lines().size();
                var revert = Cli.run("revert", "-p", pid, "--timeout", "10s", id);
                assertEquals(0, revert.code(), revert.out() + revert.err());
                assertTrue(revert.out().contains("after waiting"), revert.out());
                Fixture.await(t, mark, id.equals("busy-3") ? "busy 2" : "busy 1", 2);
            }
            assertEquals(List.of(), Patcher.applied(t.pidInt()));
        }
    }

    @Test
    void aCorruptEhFrameInTheTargetIsNeverTrusted() throws Exception {
        try (var t = patched()) {
            var region = region(t);
            var layout = region.header().layout();
            assertTrue(layout.hasEhFrame(), region.header().toString());
            // the attack: CFI that puts the caller's frame anywhere the stack says
            byte[] junk = new byte[layout.ehFrameSize()];
            Arrays.fill(junk, (byte) 0x41);
            try (var tracer = Tracer.attach(t.pidInt())) {
                tracer.write(region.address() + layout.ehFrameOffset(), junk);
            }
            JsonNode thread = mainThread(t);
            int k = newCode(thread);
            JsonNode after = thread.get("frames").get(k + 1);
            assertTrue(after == null || !after.get("method").asText().equals("cfi"), thread.toString());
            var revert = Cli.run("revert", "-p", Long.toString(t.pid()), "--timeout", "300", ID);
            assertEquals(4, revert.code(), revert.out() + revert.err());
            assertTrue(revert.err().contains("patch " + ID), revert.err());
            assertEquals(1, Patcher.applied(t.pidInt()).size(), "the patch is still applied");
            assertTrue(t.alive());
        }
    }

    @Test
    void aCorruptRegionHeaderLeavesStacksWorkingAndIsReported() throws Exception {
        try (var t = patched()) {
            var region = region(t);
            // eh_frame_size far past the text: the header no longer decodes
            try (var tracer = Tracer.attach(t.pidInt())) {
                tracer.write(region.address() + 0x78, new byte[] {(byte) 0xff, (byte) 0xff, (byte) 0xff, 0x7f});
            }
            JsonNode thread = mainThread(t);
            JsonNode frames = thread.get("frames");
            boolean inRegion = false;
            for (int i = 0; i < frames.size(); i++) {
                long pc = Long.decode(frames.get(i).get("pc").asText());
                if (pc >= region.address() && pc < region.end()) {
                    inRegion = true;
                    assertTrue(frames.get(i).get("module").isNull(), thread.toString());
                    JsonNode after = frames.get(i + 1);
                    assertTrue(after == null || !after.get("method").asText().equals("cfi"), thread.toString());
                }
            }
            assertTrue(inRegion, thread.toString());
            var info = Cli.run("info", "-p", Long.toString(t.pid()));
            assertEquals(2, info.code(), info.out() + info.err());
            assertTrue(info.err().contains("region at 0x" + Long.toHexString(region.address())), info.err());
            assertTrue(t.alive());
        }
    }
}
