package dev.suture.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.testing.AgentClient;
import dev.suture.testing.Gcc;
import dev.suture.testing.Stranger;
import dev.suture.testing.SutureProcess;
import java.io.File;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.nio.file.attribute.UserPrincipal;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The launchers' {@code suture-client} against sockets this test serves: the wire format agrees with
 * {@link ViaAgent}'s, a reply cut short is an error (never a second run), and — the attacks — a run directory or
 * socket another user could have planted, or a server running as another user, is never sent a request: the client
 * leaves the command to the JVM (exit 100), which refuses the run directory itself.
 */
class AgentClientTest {
    @TempDir
    Path dir;

    private Path run;
    private AgentClient client;

    @BeforeEach
    void setUp() throws IOException {
        client = AgentClient.build(dir);
        run = Files.createDirectory(dir.resolve("run"), PosixFilePermissions.asFileAttribute(
                PosixFilePermissions.fromString("rwx------")));
    }

    /** A server on {@code run/agent.sock} in this JVM: answers each request with {@code answer}, keeps requests. */
    private final class Server implements AutoCloseable {
        final List<byte[]> requests = new ArrayList<>();
        private final ServerSocketChannel channel;
        private final Thread thread;

        Server(Path socket, Function<byte[], byte[]> answer) throws IOException {
            channel = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
            channel.bind(UnixDomainSocketAddress.of(socket));
            thread = Thread.ofPlatform().daemon().start(() -> {
                try {
                    while (true) {
                        try (SocketChannel ch = channel.accept()) {
                            byte[] request = readAll(ch);
                            synchronized (requests) {
                                requests.add(request);
                            }
                            byte[] reply = answer.apply(request);
                            if (reply != null) {
                                ch.write(ByteBuffer.wrap(reply));
                            }
                        }
                    }
                } catch (IOException e) {
                    // closed
                }
            });
        }

        int requestCount() {
            synchronized (requests) {
                return requests.size();
            }
        }

        @Override
        public void close() throws IOException {
            channel.close();
            try {
                thread.join(5000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    private static byte[] readAll(SocketChannel ch) throws IOException {
        var out = new java.io.ByteArrayOutputStream();
        var buf = ByteBuffer.allocate(8192);
        while (ch.read(buf) >= 0) {
            out.write(buf.array(), 0, buf.position());
            buf.clear();
        }
        return out.toByteArray();
    }

    private Map<String, String> env() {
        return Map.of("SUTURE_RUN_DIR", run.toString());
    }

    private static UserPrincipal stranger() throws IOException {
        return FileSystems.getDefault().getUserPrincipalLookupService().lookupPrincipalByName("nobody");
    }

    @Test
    void theRequestAndReplyAreViaAgentsFormat() throws Exception {
        try (var server = new Server(run.resolve("agent.sock"), request -> {
            try {
                var r = ViaAgent.decodeRequest(request);
                return ViaAgent.encode(new ViaAgent.Reply(true, 7, "out: " + String.join("|", r.args()) + " in "
                        + r.cwd() + "\n", "err: " + r.trustDir() + " ü\n"));
            } catch (IOException e) {
                throw new AssertionError(e);
            }
        })) {
            var env = new java.util.HashMap<>(env());
            env.put("SUTURE_TRUST_DIR", "/etc/keys");
            var r = client.run(env, "apply", "-p", "1", "a b.suture", "ü");
            assertEquals(7, r.status(), r.toString());
            assertEquals("out: apply|-p|1|a b.suture|ü in " + Path.of("").toAbsolutePath() + "\n", r.out());
            assertEquals("err: /etc/keys ü\n", r.err());
        }
    }

    @Test
    void aDeclineOrSilenceLeavesTheCommandToTheJvmAndACutReplyIsAnError() throws Exception {
        try (var server = new Server(run.resolve("agent.sock"), _ -> ViaAgent.encode(
                new ViaAgent.Reply(false, 0, "", "")))) {
            assertEquals(AgentClient.NOT_SERVED, client.run(env(), "info", "-p", "1").status());
            assertEquals(1, server.requestCount());
        }
        Files.delete(run.resolve("agent.sock"));
        try (var server = new Server(run.resolve("agent.sock"), _ -> null)) {
            assertEquals(AgentClient.NOT_SERVED, client.run(env(), "info", "-p", "1").status());
        }
        Files.delete(run.resolve("agent.sock"));
        byte[] whole = ViaAgent.encode(new ViaAgent.Reply(true, 0, "applied\n", ""));
        try (var server = new Server(run.resolve("agent.sock"), _ -> java.util.Arrays.copyOf(whole, whole.length - 3))) {
            var r = client.run(env(), "apply", "-p", "1", "x.suture");
            assertEquals(1, r.status(), r.toString());
            assertTrue(r.err().contains("the agent's reply to apply was cut short"), r.toString());
            assertEquals("", r.out());
        }
        // no socket at all
        Files.delete(run.resolve("agent.sock"));
        assertEquals(AgentClient.NOT_SERVED, client.run(env(), "info", "-p", "1").status());
    }

    @Test
    void aRunDirectoryOrSocketAnotherUserCouldHavePlantedIsNotSpokenTo() throws Exception {
        Path sock = run.resolve("agent.sock");
        try (var server = new Server(sock, _ -> ViaAgent.encode(new ViaAgent.Reply(true, 0, "planted\n", "")))) {
            assertEquals(0, client.run(env(), "info", "-p", "1").status()); // as it is: trusted, spoken to
            assertEquals(1, server.requestCount());

            Files.setOwner(run, stranger()); // the directory is a stranger's
            assertNotServed(server, env());
            Files.setOwner(run, Files.getOwner(dir));

            Files.setPosixFilePermissions(run, PosixFilePermissions.fromString("rwxrwx---")); // group may write
            assertNotServed(server, env());
            Files.setPosixFilePermissions(run, PosixFilePermissions.fromString("rwx------"));

            Files.setOwner(sock, stranger()); // the socket is a stranger's
            assertNotServed(server, env());
            Files.setOwner(sock, Files.getOwner(dir));

            Path link = Files.createSymbolicLink(dir.resolve("link"), run); // the run directory is a symlink
            assertNotServed(server, Map.of("SUTURE_RUN_DIR", link.toString()));

            Path open = Files.createDirectory(dir.resolve("open"));
            Files.setPosixFilePermissions(open, PosixFilePermissions.fromString("rwxrwxrwx")); // writable above
            Path inner = Files.move(run, open.resolve("run"));
            assertNotServed(server, Map.of("SUTURE_RUN_DIR", inner.toString()));
            Files.move(inner, run);
            assertEquals(0, client.run(env(), "info", "-p", "1").status());
            assertEquals(2, server.requestCount());
        }
        // and the command, run in the JVM as the launcher then does, refuses the directory itself
        Files.setOwner(run, stranger());
        var jvm = SutureProcess.run(dir, Duration.ofSeconds(60), env(), "revert", "-p", "1", "fix");
        assertEquals(ExitCodes.NOT_PERMITTED, jvm.status(), jvm.toString());
        assertTrue(jvm.err().contains("belongs to uid " + Stranger.UID), jvm.toString());
    }

    private void assertNotServed(Server server, Map<String, String> env) throws IOException {
        int before = server.requestCount();
        assertEquals(AgentClient.NOT_SERVED, client.run(env, "info", "-p", "1").status());
        assertEquals(before, server.requestCount(), "the client spoke to a socket it must not trust");
    }

    static final String STRANGER_SERVER = """
            #include <stdio.h>
            #include <string.h>
            #include <sys/socket.h>
            #include <sys/un.h>
            #include <unistd.h>

            int main(int argc, char **argv) {
                alarm(120);
                int s = socket(AF_UNIX, SOCK_STREAM, 0);
                struct sockaddr_un a = {.sun_family = AF_UNIX};
                strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
                if (bind(s, (struct sockaddr *) &a, sizeof a) != 0 || listen(s, 4) != 0) return 1;
                printf("listening\\n");
                fflush(stdout);
                int c = accept(s, 0, 0);
                char b[4096];
                long n = 0, r;
                while ((r = read(c, b, sizeof b)) > 0) n += r;
                printf("read %ld bytes\\n", n);
                return 0;
            }
            """;

    @Test
    void aServerRunningAsAnotherUserIsNotSentTheRequest() throws Exception {
        // The stranger serves a socket; root is tricked into moving it into its own run directory and owning it.
        Path strangers = Files.createTempDirectory(Path.of("/tmp"), "suture-stranger");
        Process server = null;
        try {
            Files.setPosixFilePermissions(strangers, PosixFilePermissions.fromString("rwxrwxrwx"));
            Path binary = Gcc.compile(strangers, "server", STRANGER_SERVER);
            Path log = strangers.resolve("server.log");
            server = new ProcessBuilder("setpriv", "--reuid=" + Stranger.UID, "--regid=" + Stranger.UID,
                    "--clear-groups", "--inh-caps=-all", binary.toString(), strangers.resolve("s").toString())
                    .redirectOutput(log.toFile()).redirectErrorStream(true)
                    .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (!Files.exists(log) || !Files.readString(log).contains("listening")) {
                assertTrue(System.nanoTime() < deadline && server.isAlive(), "the stranger's server did not start");
                Thread.sleep(20);
            }
            Path sock = Files.move(strangers.resolve("s"), run.resolve("agent.sock"));
            Files.setOwner(sock, Files.getOwner(dir));

            assertEquals(AgentClient.NOT_SERVED, client.run(env(), "apply", "-p", "1", "fix.suture").status());
            assertTrue(server.waitFor(30, TimeUnit.SECONDS), "the stranger's server did not see the client go");
            assertEquals("listening\nread 0 bytes\n", Files.readString(log),
                    "the client sent its request to a server running as another user");
        } finally {
            if (server != null) {
                server.destroyForcibly();
                server.waitFor(10, TimeUnit.SECONDS);
            }
            try (var files = Files.walk(strangers)) {
                for (Path p : files.sorted(java.util.Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(p);
                }
            }
        }
    }
}
