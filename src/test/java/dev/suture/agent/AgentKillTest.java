package dev.suture.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.live.Fixture;
import dev.suture.testing.Target;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The agent SIGKILLed at spread moments while it holds and patches a new process: the process survives (it is
 * never killed, never left traced), and once the agent is back it runs the patched code and status says so.
 */
class AgentKillTest {
    @TempDir
    Path dir;

    @Test
    void aKilledAgentLeavesEveryNewProcessAliveAndConsistentAfterItsRestart() throws Exception {
        var built = Fixture.program(dir, "versioned", AgentTest.ORIGINAL, AgentTest.PATCHED, "kill-v2", true);
        try (var agent = new AgentRun(dir)) {
            agent.add(built.patchFile(), AgentTest.buildId(built));
            for (long delayMicros : List.of(0L, 500L, 1000L, 2000L, 4000L, 8000L, 15000L, 30000L, 60000L)) {
                agent.start();
                try (var t = Target.start(built.exe())) {
                    if (delayMicros > 0) {
                        java.util.concurrent.locks.LockSupport.parkNanos(delayMicros * 1000);
                    }
                    agent.kill();
                    Fixture.sleep(100);
                    assertTrue(t.alive(), "killing the agent " + delayMicros + " µs after the exec killed pid "
                            + t.pid() + ":\n" + t.output());
                    agent.start();
                    Fixture.await(t, 0, "tick 2", 1);
                    int seen = t.lines().size();
                    Fixture.await(t, seen, "tick 2", 2);
                    assertTrue(t.alive());
                    AgentTest.assertNotTraced(t.pid());
                    var status = agent.status("--json");
                    assertEquals(List.of("patched"), AgentTest.states(AgentTest.json(status.out()), t.pid()),
                            "after a kill " + delayMicros + " µs after the exec:\n" + status + "\nagent log:\n"
                                    + agent.log());
                    assertEquals(0, status.status(), status.toString());
                }
                agent.kill();
            }
        }
    }

    @Test
    void aKilledAgentLeavesEveryThreadThatLoadsALibraryAliveAndConsistentAfterItsRestart() throws Exception {
        Path a = Fixture.object(dir, "orig", "libv", AgentTest.LIBRARY, "-fPIC");
        Path b = Fixture.object(dir, "patched", "libv", AgentTest.LIBRARY.replace("return 1;", "return 2;"), "-fPIC");
        Path lib = Fixture.link(dir, "libv.so", List.of(a), "-shared");
        Path patchFile = dir.resolve("libkill-v2.suture");
        var patch = Fixture.diff(lib, List.of(a), List.of(b), "libkill-v2", patchFile);
        Path exe = Fixture.link(dir, "dlopener", List.of(Fixture.object(dir, "main", "dlopener", AgentTest.DLOPENER)),
                "-ldl");
        try (var agent = new AgentRun(dir); var early = Target.start(exe, lib.toString())) {
            Fixture.await(early, 0, "tick 1", 1); // the agent learns the library's file from this one
            agent.add(patchFile, patch.targetBuildId());
            // the program dlopens 300 ms after it starts
            for (long delayMillis : List.of(290L, 300L, 303L, 306L, 310L, 320L, 350L)) {
                agent.start();
                try (var t = Target.start(exe, lib.toString())) {
                    t.awaitLine("ready", Fixture.WAIT);
                    Fixture.sleep(delayMillis);
                    agent.kill();
                    Fixture.sleep(100);
                    assertTrue(t.alive(), "killing the agent " + delayMillis + " ms after the start killed pid "
                            + t.pid() + ":\n" + t.output());
                    agent.start();
                    Fixture.await(t, 0, "tick 2", 1);
                    assertTrue(t.alive());
                    assertTrue(Fixture.linesWith(t, 0, "dlopen:").isEmpty(), t.output());
                    AgentTest.assertNotTraced(t.pid());
                    var status = agent.status("--json");
                    assertEquals(List.of("patched"), AgentTest.states(AgentTest.json(status.out()), t.pid()),
                            status + "\nagent log:\n" + agent.log());
                }
                agent.kill();
            }
        }
    }
}
