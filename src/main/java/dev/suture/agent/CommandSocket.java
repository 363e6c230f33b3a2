package dev.suture.agent;

import dev.suture.SutureException;
import dev.suture.sys.TrustedFiles;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import jdk.net.ExtendedSocketOptions;
import jdk.net.UnixDomainPrincipal;

/**
 * The agent's socket, {@code agent.sock} in the checked run directory (docs/agent.md, "The fast path"): the
 * launchers' {@code suture-client} sends a command's request, the agent runs it in its warm JVM and sends the
 * reply. Only a peer running as root or as the agent's own user (SO_PEERCRED) is served; anyone else is answered
 * with nothing and the connection closed. What goes over a connection is the {@link Exchange}'s business
 * ({@code cli.ViaAgent}).
 */
public final class CommandSocket {
    static final String NAME = "agent.sock";

    private CommandSocket() {}

    /** How one connection's exchange ended. */
    public enum Outcome {
        /** The command ran and its reply was sent. */
        SERVED,
        /** The agent did not take it (the caller runs it in its own JVM). */
        DECLINED,
        /** The agent took it, but the client gave up waiting before it said go: the command did not run. */
        ABANDONED
    }

    /** One connection's exchange, from the peer's first byte to the reply; {@code out} is flushed after. */
    @FunctionalInterface
    public interface Exchange {
        Outcome serve(InputStream in, OutputStream out) throws IOException;
    }

    /** Serves connections on a thread of its own, each on a thread of its own, with {@code exchange}. */
    static void serve(Exchange exchange, java.util.function.Consumer<String> log) {
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
                    Thread.ofPlatform().daemon().name("suture-agent-request").start(() -> answer(ch, exchange, self,
                            log));
                } catch (IOException e) {
                    log.accept("the socket failed: " + e.getMessage());
                    return;
                }
            }
        });
    }

    private static void answer(SocketChannel ch, Exchange exchange, String self,
                               java.util.function.Consumer<String> log) {
        try (ch) {
            UnixDomainPrincipal peer = ch.getOption(ExtendedSocketOptions.SO_PEERCRED);
            String user = peer.user().getName();
            if (!user.equals("root") && !user.equals(self)) {
                log.accept("refused a request on the socket from user " + user + ": only root is served");
                return;
            }
            long start = System.nanoTime();
            var out = new BufferedOutputStream(Channels.newOutputStream(ch), 1 << 16);
            var outcome = exchange.serve(new BufferedInputStream(Channels.newInputStream(ch)), out);
            out.flush();
            switch (outcome) {
                case SERVED -> log.accept(String.format("served a request from %s on the socket in %.1f ms", user,
                        (System.nanoTime() - start) / 1e6));
                case DECLINED -> log.accept("declined a request from " + user + " on the socket (another protocol"
                        + " version, command or trust directory): it runs in the caller's JVM");
                case ABANDONED -> log.accept("a request from " + user + " on the socket was not run: the client gave"
                        + " up waiting for the agent to take it, and runs it in its own JVM");
            }
        } catch (IOException | RuntimeException e) {
            log.accept("a request on the socket failed: " + e);
        }
    }
}
