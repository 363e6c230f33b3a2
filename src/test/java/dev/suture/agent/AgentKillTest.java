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
}
