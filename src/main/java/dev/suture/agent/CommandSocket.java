package dev.suture.agent;

import dev.suture.SutureException;
import dev.suture.sys.TrustedFiles;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.function.UnaryOperator;
import jdk.net.ExtendedSocketOptions;
import jdk.net.UnixDomainPrincipal;

/**
 * The agent's socket, {@code agent.sock} in the checked run directory (docs/agent.md, "The fast path"): the
 * launchers' {@code suture-client} sends a command's request, the agent runs it in its warm JVM and sends the
 * reply. Only a peer running as root or as the agent's own user (SO_PEERCRED) is served; anyone else is answered
 * with nothing and the connection closed. The bytes of a request and of a reply are the caller's business
 * ({@code cli.ViaAgent} decodes and encodes them).
 */
public final class CommandSocket {
    static final String NAME = "agent.sock";
    private static final int LIMIT = 1 << 20;

    private CommandSocket() {}

    /** Serves requests on a thread of its own: each request's bytes go to {@code handler}, its result goes back. */
    static void serve(UnaryOperator<byte[]> handler, java.util.function.Consumer<String> log) {
        Path path = AgentFiles.dir().resolve(NAME);
        ServerSocketChannel server;
        try {
            Files.deleteIfExists(path);
            server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
            server.bind(UnixDomainSocketAddress.of(path));
            Files.setPosixFilePermissions(path, PosixFilePermissions.fromString("rw-------"));
        } catch (IOException e) {
            throw new SutureException(SutureException.Kind.NOT_PERMITTED, "cannot listen on " + path + ": "
                    + TrustedFiles.reason(e));
        }
        String self = System.getProperty("user.name");
        Thread.ofPlatform().daemon().name("suture-agent-socket").start(() -> {
            while (true) {
                try {
                    SocketChannel ch = server.accept();
                    Thread.ofPlatform().daemon().name("suture-agent-request").start(() -> answer(ch, handler, self,
                            log));
                } catch (IOException e) {
                    log.accept("the socket failed: " + e.getMessage());
                    return;
                }
            }
        });
    }

    private static void answer(SocketChannel ch, UnaryOperator<byte[]> handler, String self,
                               java.util.function.Consumer<String> log) {
        try (ch) {
            UnixDomainPrincipal peer = ch.getOption(ExtendedSocketOptions.SO_PEERCRED);
            String user = peer.user().getName();
            if (!user.equals("root") && !user.equals(self)) {
                log.accept("refused a request on the socket from user " + user + ": only root is served");
                return;
            }
            byte[] request = readAll(ch);
            long start = System.nanoTime();
            var reply = ByteBuffer.wrap(handler.apply(request));
            while (reply.hasRemaining()) {
                ch.write(reply);
            }
            log.accept(String.format("served a request from %s on the socket in %.1f ms", user,
                    (System.nanoTime() - start) / 1e6));
        } catch (IOException | RuntimeException e) {
            log.accept("a request on the socket failed: " + e);
        }
    }

    private static byte[] readAll(SocketChannel ch) throws IOException {
        var out = new ByteArrayOutputStream();
        var buf = ByteBuffer.allocate(8192);
        while (ch.read(buf) >= 0) {
            out.write(buf.array(), 0, buf.position());
            buf.clear();
            if (out.size() > LIMIT) {
                throw new IOException("request larger than " + LIMIT + " bytes");
            }
        }
        return out.toByteArray();
    }
}
