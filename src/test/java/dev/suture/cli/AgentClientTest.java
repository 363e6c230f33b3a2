package dev.suture.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
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
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.channels.Channels;
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

    /**
     * A server on {@code run/agent.sock} in this JVM: reads each request, then does {@code then} with the
     * connection; keeps each request, and whether its client said go.
     */
    private final class Server implements AutoCloseable {
        final List<ViaAgent.Request> requests = new ArrayList<>();
        final List<Boolean> goes = new ArrayList<>();
        private final ServerSocketChannel channel;
        private final Thread thread;

        /** What the server does once a request is read: answers, says nothing, hangs... */
        interface Then {
            void with(ViaAgent.Request request, InputStream in, OutputStream out, Server server) throws IOException;
        }

        Server(Path socket, Then then) throws IOException {
            channel = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
            channel.bind(UnixDomainSocketAddress.of(socket));
            thread = Thread.ofPlatform().daemon().start(() -> {
                try {
                    while (true) {
                        try (SocketChannel ch = channel.accept()) {
                            var in = Channels.newInputStream(ch);
                            var out = Channels.newOutputStream(ch);
                            var request = ViaAgent.readRequest(in);
                            synchronized (requests) {
                                requests.add(request);
                            }
                            then.with(request, in, out, this);
                        } catch (IOException e) {
                            if (!channel.isOpen()) {
                                return;
                            }
                        }
                    }
                } catch (RuntimeException e) {
                    // closed
                }
            });
        }

        /** Answers taken, and records whether the client said go. */
        boolean taken(InputStream in, OutputStream out) {
            boolean go;
            try {
                out.write(ViaAgent.TAKEN);
                go = in.read() == ViaAgent.GO;
            } catch (IOException e) {
                go = false; // the client is gone
            }
            synchronized (requests) {
                goes.add(go);
            }
            return go;
        }

        int requestCount() {
            synchronized (requests) {
                return requests.size();
            }
        }

        List<Boolean> goes() {
            synchronized (requests) {
                return List.copyOf(goes);
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

    /** A server that takes every request and replies {@code reply} to it once the client says go. */
    private Server replying(java.util.function.Function<ViaAgent.Request, byte[]> reply) throws IOException {
        return new Server(run.resolve("agent.sock"), (request, in, out, server) -> {
            if (server.taken(in, out)) {
                out.write(reply.apply(request));
            }
        });
    }

    private Map<String, String> env() {
        return Map.of("SUTURE_RUN_DIR", run.toString());
    }

    private static UserPrincipal stranger() throws IOException {
        return FileSystems.getDefault().getUserPrincipalLookupService().lookupPrincipalByName("nobody");
    }

    @Test
    void theRequestAndReplyAreViaAgentsFormat() throws Exception {
        try (var server = replying(r -> ViaAgent.encode(new ViaAgent.Reply(7, "out: " + String.join("|", r.args())
                + " in " + r.cwd() + "\n", "err: " + r.trustDir() + " ü\n")))) {
            var env = new java.util.HashMap<>(env());
            env.put("SUTURE_TRUST_DIR", "/etc/keys");
            var r = client.run(env, "apply", "-p", "1", "a b.suture", "ü");
            assertEquals(7, r.status(), r.toString());
            assertEquals("out: apply|-p|1|a b.suture|ü in " + Path.of("").toAbsolutePath() + "\n", r.out());
            assertEquals("err: /etc/keys ü\n", r.err());
            assertEquals(List.of(true), server.goes());
        }
    }

    @Test
    void aDeclineOrSilenceLeavesTheCommandToTheJvmAndACutReplyIsAnError() throws Exception {
        try (var server = new Server(run.resolve("agent.sock"), (r, in, out, s) -> out.write(ViaAgent.DECLINED))) {
            assertEquals(AgentClient.NOT_SERVED, client.run(env(), "info", "-p", "1").status());
            assertEquals(1, server.requestCount());
        }
        Files.delete(run.resolve("agent.sock"));
        try (var server = new Server(run.resolve("agent.sock"), (r, in, out, s) -> { })) {
            assertEquals(AgentClient.NOT_SERVED, client.run(env(), "info", "-p", "1").status());
        }
        Files.delete(run.resolve("agent.sock"));
        byte[] whole = ViaAgent.encode(new ViaAgent.Reply(0, "applied\n", ""));
        try (var server = replying(_ -> java.util.Arrays.copyOf(whole, whole.length - 3))) {
            var r = client.run(env(), "apply", "-p", "1", "x.suture");
            assertEquals(1, r.status(), r.toString());
            assertTrue(r.err().contains("the agent's reply to apply was cut short"), r.toString());
            assertEquals("", r.out());
        }
        // told to go, then gone without a word (the agent killed while it ran the command): not a decline either
        Files.delete(run.resolve("agent.sock"));
        try (var server = replying(_ -> new byte[0])) {
            var r = client.run(env(), "revert", "-p", "1", "fix");
            assertEquals(1, r.status(), r.toString());
            assertTrue(r.err().contains("the agent's reply to revert was cut short"), r.toString());
        }
        // no socket at all
        Files.delete(run.resolve("agent.sock"));
        assertEquals(AgentClient.NOT_SERVED, client.run(env(), "info", "-p", "1").status());
    }

    /**
     * An agent that closes the connection unread (as it does to a peer it refuses, or as a dying one does) is no
     * command run: the client, its request still being written, leaves the command to the JVM (100) instead of
     * dying of SIGPIPE (141, which the launcher would pass on as the command's exit code).
     */
    @Test
    void anAgentThatClosesUnreadLeavesTheCommandToTheJvm() throws Exception {
        try (var server = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            server.bind(UnixDomainSocketAddress.of(run.resolve("agent.sock")));
            var closer = Thread.ofPlatform().daemon().start(() -> {
                try {
                    server.accept().close();
                } catch (IOException e) {
                    // closed
                }
            });
            var args = new ArrayList<>(List.of("apply", "-p", "1"));
            for (int i = 0; i < 8; i++) {
                args.add("x".repeat(100_000)); // more than the socket's buffer: the client is still writing
            }
            var r = client.run(env(), args.toArray(String[]::new));
            assertEquals(AgentClient.NOT_SERVED, r.status(), r.toString());
            closer.join(5000);
        }
    }

    /**
     * An agent that is stopped or wedged (here: it reads the request and says nothing) does not hold the command:
     * after its wait the client leaves it to the JVM, saying so, and never says go, so the agent, were it to wake
     * up and take the request, would not run it a second time.
     */
    @Test
    void anAgentThatDoesNotTakeTheRequestInTimeNeverRunsIt() throws Exception {
        try (var server = new Server(run.resolve("agent.sock"), (r, in, out, s) -> {
            try {
                Thread.sleep(6_000); // past the client's 5 s wait
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            s.taken(in, out); // wakes up, takes it: the client is gone
        })) {
            long start = System.nanoTime();
            var r = client.run(env(), "apply", "-p", "1", "fix.suture");
            long waited = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
            assertEquals(AgentClient.NOT_SERVED, r.status(), r.toString());
            assertTrue(r.err().contains("did not take the request within 5 s"), r.toString());
            assertTrue(waited >= 5_000 && waited < 30_000, waited + " ms");
            long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
            while (server.goes().isEmpty() && System.nanoTime() < deadline) {
                Thread.sleep(20);
            }
            assertEquals(List.of(false), server.goes(), "the agent was told to go after the client gave up");
        }
    }

    /** A request as the client's source lays it out. */
    private static byte[] request(String... args) throws IOException {
        var bytes = new java.io.ByteArrayOutputStream();
        try (var d = new java.io.DataOutputStream(bytes)) {
            d.writeInt(ViaAgent.VERSION);
            d.writeInt(args.length);
            for (String a : args) {
                byte[] b = a.getBytes(java.nio.charset.StandardCharsets.UTF_8);
                d.writeInt(b.length);
                d.write(b);
            }
            d.writeInt(1);
            d.write('/');
            d.writeBoolean(false);
        }
        return bytes.toByteArray();
    }

    /** The agent's side: nothing runs until the client says go; a request it does not serve is declined. */
    @Test
    void theAgentRunsACommandOnlyOnceTheClientSaysGo() throws Exception {
        byte[] info = request("info", "-p", "999999999");
        var out = new java.io.ByteArrayOutputStream();
        assertEquals(dev.suture.agent.CommandSocket.Outcome.ABANDONED,
                ViaAgent.serve(new java.io.ByteArrayInputStream(info), out));
        assertArrayEquals(new byte[] {ViaAgent.TAKEN}, out.toByteArray(), "taken, and no reply: nothing ran");

        out.reset();
        byte[] go = java.util.Arrays.copyOf(info, info.length + 1);
        go[info.length] = ViaAgent.GO;
        assertEquals(dev.suture.agent.CommandSocket.Outcome.SERVED,
                ViaAgent.serve(new java.io.ByteArrayInputStream(go), out));
        var d = new java.io.DataInputStream(new java.io.ByteArrayInputStream(out.toByteArray()));
        assertEquals(ViaAgent.TAKEN, d.read());
        assertEquals(ViaAgent.VERSION, d.readInt());
        int code = d.readInt();
        String stdout = new String(d.readNBytes(d.readInt()), java.nio.charset.StandardCharsets.UTF_8);
        String stderr = new String(d.readNBytes(d.readInt()), java.nio.charset.StandardCharsets.UTF_8);
        assertEquals(-1, d.read(), "one reply");
        assertTrue(code != 0 && stdout.isEmpty() && stderr.contains("999999999"), code + " " + stdout + stderr);

        for (byte[] declined : List.of(request("demo"), request("apply", "--help"), new byte[] {0, 0, 0, 2})) {
            out.reset();
            assertEquals(dev.suture.agent.CommandSocket.Outcome.DECLINED,
                    ViaAgent.serve(new java.io.ByteArrayInputStream(declined), out));
            assertArrayEquals(new byte[] {ViaAgent.DECLINED}, out.toByteArray());
        }
    }

    @Test
    void aRunDirectoryOrSocketAnotherUserCouldHavePlantedIsNotSpokenTo() throws Exception {
        Path sock = run.resolve("agent.sock");
        try (var server = replying(_ -> ViaAgent.encode(new ViaAgent.Reply(0, "planted\n", "")))) {
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
