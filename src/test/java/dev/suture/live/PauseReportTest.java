package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.suture.cli.Cli;
import dev.suture.proc.Hold;
import dev.suture.testing.Procs;
import dev.suture.testing.Target;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What apply and revert report of their holds (issue 20, principle 10): every hold of the transaction (the
 * injected mmap on a sleeping thread, the window, the release), which of them held a running thread, the longest
 * of those, and how long the window held every thread at once; in the API, the text and --json.
 */
class PauseReportTest {
    /** The main thread spins, calling value(); one thread sleeps. */
    static final String PROGRAM = """
            #include <pthread.h>
            #include <stdio.h>
            #include <time.h>
            #include <unistd.h>

            int value(int x) {
                return x + 1;
            }

            static void *sleeper(void *arg) {
                struct timespec t = {1, 0};
                for (;;)
                    nanosleep(&t, 0);
                return arg;
            }

            int main(void) {
                alarm(120);
                setvbuf(stdout, 0, _IOLBF, 0);
                pthread_t t;
                pthread_create(&t, 0, sleeper, 0);
                for (unsigned long n = 0; ; n++)
                    if ((n & 0xffffff) == 0)
                        printf("value [%d]\\n", value(10));
                    else
                        value(0);
            }
            """;

    @TempDir
    static Path dir;
    static Fixture.Built built;

    @BeforeAll
    static void build() throws IOException {
        built = Fixture.program(dir, "spin", PROGRAM, PROGRAM.replace("return x + 1;", "return x + 100;"), "spin",
                false);
        System.setProperty("suture.runDir", Files.createDirectories(dir.resolve("run")).toString());
    }

    @AfterAll
    static void clear() {
        System.clearProperty("suture.runDir");
    }

    @AfterEach
    void nothingLeftTraced() {
        assertEquals(List.of(), Procs.tracedByThisJvm(), "threads left traced by this JVM");
    }

    @Test
    void applyReportsEveryHoldAndTheLongestHoldOfARunningThread() throws Exception {
        try (var t = Target.start(built.exe())) {
            Fixture.await(t, 0, "value [11]", 2);
            int pid = t.pidInt();
            var r = Patcher.apply(pid, built.patch(), Patcher.ApplyOptions.defaults());
            Fixture.await(t, 0, "value [110]", 2);
            var pause = r.pause();
            // two windows in a row may catch the spinning thread in value(): it is then held at value's return
            // until the third (docs/apply.md), a hold named "return"
            var steps = pause.holds().stream().map(Hold::step).filter(s -> !s.equals("return")).distinct().toList();
            assertEquals(List.of("mmap", "window", "release"), steps, pause.toString());
            assertTrue(pause.holds().stream().filter(h -> h.step().equals("return"))
                    .allMatch(h -> h.thread() == pid && h.running()), pause.toString());
            var mmap = pause.holds().stream().filter(h -> h.step().equals("mmap")).toList();
            assertEquals(1, mmap.size(), "the mmap borrows one thread: " + mmap);
            assertTrue(mmap.getFirst().thread() != pid && !mmap.getFirst().running(),
                    "the mmap borrows the sleeping thread: " + mmap);
            var main = pause.holds().stream().filter(h -> h.thread() == pid).toList();
            assertTrue(main.stream().allMatch(Hold::running), "the spinning thread was running: " + main);
            assertEquals(main.stream().mapToLong(Hold::nanos).max().orElseThrow(), pause.longestRunningNanos(),
                    "the longest hold of a running thread is the spinning thread's: " + pause);
            assertTrue(pause.allStoppedNanos() > 0 && pause.allStoppedNanos() <= r.pauseNanos(), pause.toString());

            var revert = Cli.run("revert", "-p", Integer.toString(pid), "spin", "--json");
            assertEquals(0, revert.code(), revert.toString());
            JsonNode reverted = new ObjectMapper().readTree(revert.out()).get("reverted").get(0);
            Fixture.await(t, t.lines().size(), "value [11]", 2);
            var jsonSteps = new ArrayList<String>();
            double longest = 0;
            for (var h : reverted.get("holds")) {
                jsonSteps.add(h.get("step").asText());
                if (h.get("thread").asInt() == pid) {
                    assertTrue(h.get("running").asBoolean(), h.toString());
                    longest = Math.max(longest, h.get("micros").asDouble());
                }
            }
            assertEquals(List.of("window", "munmap", "release"), jsonSteps.stream().filter(s -> !s.equals("return"))
                    .distinct().toList(),
                    reverted.toString());
            assertEquals(longest, reverted.get("longestRunningHoldMicros").asDouble(), reverted.toString());
            assertTrue(reverted.get("allStoppedMicros").asDouble() > 0, reverted.toString());

            var text = Cli.run("apply", "-p", Integer.toString(pid), built.patchFile().toString());
            assertEquals(0, text.code(), text.toString());
            assertTrue(text.out().contains("(the longest hold of a running thread; all threads stopped "),
                    text.out());
            assertFalse(text.out().contains("no running thread"), text.out());
        }
    }
}
