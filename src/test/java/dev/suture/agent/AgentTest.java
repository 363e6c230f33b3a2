package dev.suture.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.suture.live.Fixture;
import dev.suture.testing.AgentClient;
import dev.suture.testing.Commands;
import dev.suture.testing.Stranger;
import dev.suture.testing.Target;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The agent keeps the store applied: a patch dropped into the store reaches the running processes, a new process of
 * the patched program runs the new code from its first call in main, removing the patch reverts them all, status
 * says so before and after, and gdb can attach to a process the agent patched (nothing stays traced).
 */
class AgentTest {
    static final String ORIGINAL = """
            #include <stdio.h>
            #include <time.h>
            #include <unistd.h>

            int version(void) { return 1; }

            int main(void) {
                alarm(120);
                setvbuf(stdout, 0, _IOLBF, 0);
                printf("first %d\\n", version());
                for (;;) {
                    printf("tick %d\\n", version());
                    struct timespec t = {0, 20000000L};
                    nanosleep(&t, 0);
                }
            }
            """;
    static final String PATCHED = ORIGINAL.replace("return 1;", "return 2;");

    @TempDir
    Path dir;

    static String buildId(Fixture.Built b) {
        return b.patch().targetBuildId();
    }

    static JsonNode json(String text) throws Exception {
        return new ObjectMapper().readTree(text);
    }

    /** The states status gives for {@code pid}'s modules. */
    static List<String> states(JsonNode status, long pid) {
        var out = new ArrayList<String>();
        for (var p : status.get("processes")) {
            if (p.get("pid").asLong() == pid) {
                p.get("modules").forEach(m -> out.add(m.get("state").asText()));
            }
        }
        return out;
    }

    static void assertNotTraced(long pid) throws Exception {
        for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/status"))) {
            if (line.startsWith("TracerPid:")) {
                assertEquals("0", line.substring(10).trim(), "pid " + pid + " is still traced");
            }
        }
    }

    @Test
    void storeReachesRunningAndNewProcessesAndRemovalRevertsAll() throws Exception {
        var built = Fixture.program(dir, "versioned", ORIGINAL, PATCHED, "agent-v2", true);
        var targets = new ArrayList<Target>();
        try (var agent = new AgentRun(dir)) {
            targets.add(Target.start(built.exe()));
            targets.add(Target.start(built.exe()));
            for (var t : targets) {
                Fixture.await(t, 0, "tick 1", 1);
            }
            agent.start();

            var before = agent.add(built.patchFile(), buildId(built)).getParent();
            assertEquals(agent.store, before);
            for (var t : targets) {
                Fixture.await(t, t.lines().size(), "tick 2", 2);
            }
            var status = agent.status("--json");
            assertEquals(0, status.status(), status.toString());
            var doc = json(status.out());
            for (var t : targets) {
                assertEquals(List.of("patched"), states(doc, t.pid()), status.out());
            }

            // a new process of the patched program: its first call in main runs the new code
            var fresh = Target.start(built.exe());
            targets.add(fresh);
            String first = fresh.awaitLine(l -> l.startsWith("first"), Fixture.WAIT);
            assertEquals("first 2", first, "the new process ran the old code first; agent log:\n" + agent.log());
            agent.awaitLog("pid " + fresh.pid() + " (versioned): new process patched before main");

            for (var t : targets) {
                assertNotTraced(t.pid());
            }
            // a debugger attaches to a process the agent patched
            var gdb = Commands.run(dir, Duration.ofSeconds(60), "gdb", "-batch", "-p", Long.toString(fresh.pid()),
                    "-ex", "info symbol version", "-ex", "detach");
            assertTrue(gdb.output().contains("version in section .text"), gdb.output());
            assertTrue(fresh.alive());

            // the patch leaves the store: reverted everywhere
            Files.delete(agent.store.resolve(buildId(built) + ".suture"));
            for (var t : targets) {
                Fixture.await(t, t.lines().size(), "tick 1", 2);
            }
            var after = agent.status("--json");
            assertEquals(0, after.status(), "no patch in the store: nothing is vulnerable\n" + after);
            assertEquals(0, json(after.out()).get("processes").size(), after.out());
            agent.awaitLog("reverted agent-v2");
        } finally {
            targets.forEach(Target::close);
        }
    }

    @Test
    void statusSaysWhichProcessesRunUnpatchedCode() throws Exception {
        var built = Fixture.program(dir, "versioned", ORIGINAL, PATCHED, "status-v2", false);
        try (var t = Target.start(built.exe()); var agent = new AgentRun(dir)) {
            Fixture.await(t, 0, "tick 1", 1);
            agent.add(built.patchFile(), buildId(built));
            var before = agent.status("--json");
            assertEquals(8, before.status(), before.toString());
            var doc = json(before.out());
            assertEquals(List.of("unpatched"), states(doc, t.pid()), before.out());
            assertTrue(doc.get("vulnerable").asBoolean());
            assertEquals(false, doc.get("agent").get("running").asBoolean());
            var text = agent.status();
            assertTrue(text.out().contains("unpatched"), text.out());

            agent.start();
            Fixture.await(t, t.lines().size(), "tick 2", 1);
            var after = agent.status("--json");
            assertEquals(0, after.status(), after.toString());
            var docAfter = json(after.out());
            assertEquals(List.of("patched"), states(docAfter, t.pid()), after.out());
            assertEquals(true, docAfter.get("agent").get("running").asBoolean());
        }
    }

    @Test
    void applyRevertAndInfoAreServedByTheRunningAgent() throws Exception {
        var built = Fixture.program(dir, "served", ORIGINAL, PATCHED, "served-v2", false);
        try (var t = Target.start(built.exe()); var agent = new AgentRun(dir)) {
            Fixture.await(t, 0, "tick 1", 1);
            agent.start();
            String pid = Long.toString(t.pid());
            // a relative path (to the working directory, which the request carries)
            var client = AgentClient.build(dir);
            var apply = client.run(agent.env(), "apply", "-p", pid,
                    Path.of("").toAbsolutePath().relativize(built.patchFile()).toString());
            assertEquals(0, apply.status(), apply.toString());
            assertTrue(apply.out().contains("applied served-v2"), apply.toString());
            Fixture.await(t, t.lines().size(), "tick 2", 1);
            agent.awaitLog("served a request from root on the socket");
            var info = client.run(agent.env(), "info", "-p", pid, "--json");
            assertEquals("served-v2", json(info.out()).get("patches").get(0).get("patch").asText(), info.toString());
            var revert = client.run(agent.env(), "revert", "-p", pid, "served-v2");
            assertEquals(0, revert.status(), revert.toString());
            Fixture.await(t, t.lines().size(), "tick 1", 1);
            // errors come back with their exit code
            var bad = client.run(agent.env(), "revert", "-p", pid, "no-such-patch");
            assertTrue(bad.status() != 0 && bad.status() != AgentClient.NOT_SERVED && !bad.err().isEmpty(),
                    bad.toString());
            // what the agent does not serve is left to the caller's JVM: help, other commands, another trust dir
            assertEquals(AgentClient.NOT_SERVED, client.run(agent.env(), "apply", "--help").status());
            assertEquals(AgentClient.NOT_SERVED, client.run(agent.env(), "status").status());
            var otherTrust = new java.util.HashMap<>(agent.env());
            otherTrust.put("SUTURE_TRUST_DIR", dir.resolve("keys").toString());
            assertEquals(AgentClient.NOT_SERVED, client.run(otherTrust, "info", "-p", pid).status());
            assertTrue(agent.log().split("served a request", -1).length >= 5, agent.log());

            // The attack on the agent's second line: a stranger who can reach the socket (its mode and the
            // directories' widened, as a mistake would) sends an apply. The agent checks its peer's credentials,
            // answers nothing and runs nothing; the client leaves the command to the stranger's own JVM (100).
            Path sock = agent.runDir.resolve("agent.sock");
            try {
                Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx--x--x"));
                Files.setPosixFilePermissions(agent.runDir, PosixFilePermissions.fromString("rwx--x--x"));
                Files.setPosixFilePermissions(sock, PosixFilePermissions.fromString("rw-rw-rw-"));
                var stranger = Stranger.run("SUTURE_RUN_DIR=" + agent.runDir + " " + client.binary() + " apply -p "
                        + pid + " " + built.patchFile());
                assertEquals(AgentClient.NOT_SERVED, stranger.status(), stranger.output());
                agent.awaitLog("refused a request on the socket from user nobody");
            } finally {
                Files.setPosixFilePermissions(sock, PosixFilePermissions.fromString("rw-------"));
                Files.setPosixFilePermissions(agent.runDir, PosixFilePermissions.fromString("rwx------"));
                Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx------"));
            }
            assertEquals(List.of(), dev.suture.live.Patcher.applied(t.pidInt()), "the stranger's apply ran");
            Fixture.await(t, t.lines().size(), "tick 1", 1);
        }
    }

    /** {@code --json}: every line of the log is one object, {"time": an instant, "message": what the text says}. */
    @Test
    void theJsonLogIsOneObjectALine() throws Exception {
        try (var agent = new AgentRun(dir)) {
            agent.start("--json");
            var lines = agent.log().lines().filter(l -> !l.isBlank()).toList();
            assertTrue(lines.size() >= 2, agent.log());
            var messages = new ArrayList<String>();
            for (String line : lines) {
                JsonNode o = json(line);
                assertEquals(2, o.size(), line);
                java.time.Instant.parse(o.get("time").asText());
                messages.add(o.get("message").asText());
            }
            assertTrue(messages.getFirst().startsWith("starting (pid " + agent.pid() + ","), messages.toString());
            assertTrue(messages.stream().anyMatch(m -> m.startsWith("every process is at the store's state (start)")),
                    messages.toString());
        }
    }

    static final String LIBRARY = """
            int lib_version(void) { return 1; }
            """;

    static final String DLOPENER = """
            #include <dlfcn.h>
            #include <stdio.h>
            #include <time.h>
            #include <unistd.h>

            int main(int argc, char **argv) {
                alarm(120);
                setvbuf(stdout, 0, _IOLBF, 0);
                printf("ready\\n");
                struct timespec t = {0, 300000000L};
                nanosleep(&t, 0);
                void *h = dlopen(argv[1], RTLD_NOW);
                if (!h) { printf("dlopen: %s\\n", dlerror()); return 1; }
                int (*v)(void) = (int (*)(void)) dlsym(h, "lib_version");
                printf("first %d\\n", v());
                for (;;) {
                    printf("tick %d\\n", v());
                    nanosleep(&t, 0);
                }
            }
            """;

    @Test
    void aLibraryLoadedLaterIsPatchedBeforeDlopenReturns() throws Exception {
        Path a = Fixture.object(dir, "orig", "libv", LIBRARY, "-fPIC");
        Path b = Fixture.object(dir, "patched", "libv", LIBRARY.replace("return 1;", "return 2;"), "-fPIC");
        Path lib = Fixture.link(dir, "libv.so", List.of(a), "-shared");
        Path patchFile = dir.resolve("libv-v2.suture");
        var patch = Fixture.diff(lib, List.of(a), List.of(b), "libv-v2", patchFile);
        Path mainObj = Fixture.object(dir, "main", "dlopener", DLOPENER);
        Path exe = Fixture.link(dir, "dlopener", List.of(mainObj), "-ldl");
        var targets = new ArrayList<Target>();
        try (var agent = new AgentRun(dir)) {
            // a process that maps the library already: the agent learns the file from it
            var early = Target.start(exe, lib.toString());
            targets.add(early);
            Fixture.await(early, 0, "tick 1", 1);
            agent.start();
            agent.add(patchFile, patch.targetBuildId());
            Fixture.await(early, early.lines().size(), "tick 2", 1);
            // a process that dlopens it after the patch was stored: the first call runs the new code
            var late = Target.start(exe, lib.toString());
            targets.add(late);
            String first = late.awaitLine(l -> l.startsWith("first") || l.startsWith("dlopen"), Fixture.WAIT);
            assertEquals("first 2", first, "agent log:\n" + agent.log());
            agent.awaitLog("pid " + late.pid() + " (dlopener): patched before the library it opened ran");
            assertNotTraced(late.pid());
            assertTrue(late.alive());
        } finally {
            targets.forEach(Target::close);
        }
    }

    @Test
    void withATrustDirectoryOnlyPatchesSignedByATrustedKeyAreActedOn() throws Exception {
        var good = Fixture.program(dir.resolve("a"), "versioned", ORIGINAL, PATCHED, "trusted-v2", true);
        var bad = Fixture.program(dir.resolve("b"), "versioned", ORIGINAL.replace("first", "start"),
                PATCHED.replace("first", "start"), "untrusted-v2", true);
        Path keys = Files.createDirectories(dir.resolve("keys"));
        Path trust = Files.createDirectories(dir.resolve("trust"));
        for (String name : List.of("alice", "mallory")) {
            assertEquals(0, dev.suture.cli.Cli.run("keygen", "-o", keys.toString(), "--name", name).code());
        }
        Files.copy(keys.resolve("alice.pub"), trust.resolve("alice.pub"));
        assertEquals(0, dev.suture.cli.Cli.run("sign", good.patchFile().toString(), "--key",
                keys.resolve("alice.key").toString()).code());
        assertEquals(0, dev.suture.cli.Cli.run("sign", bad.patchFile().toString(), "--key",
                keys.resolve("mallory.key").toString()).code());
        try (var a = Target.start(good.exe()); var b = Target.start(bad.exe()); var agent = new AgentRun(dir)) {
            Fixture.await(a, 0, "tick 1", 1);
            Fixture.await(b, 0, "tick 1", 1);
            agent.add(good.patchFile(), good.patch().targetBuildId());
            agent.add(bad.patchFile(), bad.patch().targetBuildId());
            agent.start("--trust", trust.toString());
            Fixture.await(a, a.lines().size(), "tick 2", 1);
            agent.awaitLog("not acting on " + agent.store.resolve(bad.patch().targetBuildId() + ".suture"));
            Fixture.sleep(300);
            assertTrue(Fixture.linesWith(b, 0, "tick 2").isEmpty(), "the untrusted patch was applied");
            var status = agent.status("--trust", trust.toString(), "--json");
            var doc = json(status.out());
            assertEquals(List.of("patched"), states(doc, a.pid()), status.out());
            assertEquals(1, doc.get("refused").size(), status.out());
            assertEquals("alice", doc.get("patches").get(0).get("trustedSigner").asText(), status.out());
            assertEquals(0, status.status(), status.toString());
        }
    }
}
