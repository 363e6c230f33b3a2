package dev.suture.cli;

import dev.suture.agent.CommandSocket;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Set;

/**
 * The agent's side of the fast path (docs/agent.md): when an agent runs, the launchers send {@code apply},
 * {@code revert} and {@code info} to it over its socket with {@code suture-client} (src/main/c, no JVM started) and
 * the command runs here, in the agent's warm JVM, which has rehearsed its holds already. A request is the command
 * line, the caller's working directory (relative paths are resolved against it, not the agent's) and its
 * $SUTURE_TRUST_DIR; an agent configured with another trust directory declines, and the command runs in the
 * caller's own JVM.
 *
 * <p>The exchange, on one connection: the request; the agent's answer, one byte, {@link #TAKEN} or
 * {@link #DECLINED}; when taken, the client's {@link #GO} — which it sends only if the answer came within its wait
 * (an agent that is stopped or wedged does not hold the command: the client runs it in a JVM instead) — and only
 * then does the command run; the reply. A client that gave up sends no GO, so a command is never run twice. The
 * byte layout is described in the client's source; both ends ship together, and a request of another version is
 * declined.
 */
final class ViaAgent {
    private static final Set<String> SERVED = Set.of("apply", "revert", "info");
    static final int VERSION = 3;
    static final int TAKEN = 1;
    static final int DECLINED = 0;
    static final int GO = 1;
    /** Larger than any command line a person or a script types; a larger request is refused unread. */
    private static final int LIMIT = 1 << 20;

    private ViaAgent() {}

    /** What a request carries. */
    record Request(List<String> args, String cwd, String trustDir) {}

    /** What a reply carries. */
    record Reply(int code, String out, String err) {}

    /** Whether the agent serves this command line at all (help is always printed by the caller). */
    static boolean forwardable(List<String> args) {
        return !args.isEmpty() && SERVED.contains(args.getFirst()) && !args.contains("--help") && !args.contains("-h");
    }

    /** The agent's side of one connection: reads a request, and runs its command line here if the client says go. */
    static CommandSocket.Outcome serve(InputStream in, OutputStream out) throws IOException {
        Request request;
        try {
            request = readRequest(in);
        } catch (IOException e) {
            out.write(DECLINED);
            return CommandSocket.Outcome.DECLINED;
        }
        if (!forwardable(request.args())
                || !Objects.equals(request.trustDir(), System.getenv("SUTURE_TRUST_DIR"))) {
            out.write(DECLINED);
            return CommandSocket.Outcome.DECLINED;
        }
        out.write(TAKEN);
        out.flush();
        if (in.read() != GO) {
            return CommandSocket.Outcome.ABANDONED;
        }
        out.write(encode(run(request)));
        return CommandSocket.Outcome.SERVED;
    }

    private static Reply run(Request request) {
        Path cwd = Path.of(request.cwd());
        var out = new StringWriter();
        var err = new StringWriter();
        var cl = Main.commandLine();
        cl.registerConverter(Path.class, s -> cwd.resolve(s));
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        int code = cl.execute(request.args().toArray(String[]::new));
        return new Reply(code, out.toString(), err.toString());
    }

    /** Reads one request from {@code in}, no more: the client's GO follows it on the same stream. */
    static Request readRequest(InputStream in) throws IOException {
        var d = new DataInputStream(in);
        if (d.readInt() != VERSION) {
            throw new IOException("a request of another version");
        }
        int n = d.readInt();
        if (n < 0 || n > 4096) {
            throw new IOException("a request of " + n + " arguments");
        }
        int[] left = {LIMIT};
        var args = new ArrayList<String>(n);
        for (int i = 0; i < n; i++) {
            args.add(string(d, left));
        }
        String cwd = string(d, left);
        String trustDir = d.readBoolean() ? string(d, left) : null;
        return new Request(List.copyOf(args), cwd, trustDir);
    }

    static byte[] encode(Reply r) {
        return write(d -> {
            d.writeInt(VERSION);
            d.writeInt(r.code());
            string(d, r.out());
            string(d, r.err());
        });
    }

    private interface Writing {
        void to(DataOutputStream d) throws IOException;
    }

    private static byte[] write(Writing w) {
        var bytes = new ByteArrayOutputStream();
        try (var d = new DataOutputStream(bytes)) {
            w.to(d);
        } catch (IOException e) {
            throw new IllegalStateException("writing to memory failed", e);
        }
        return bytes.toByteArray();
    }

    private static void string(DataOutputStream d, String s) throws IOException {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        d.writeInt(b.length);
        d.write(b);
    }

    /** A string of the request; {@code left[0]}: the bytes the request may still take, less this one's. */
    private static String string(DataInputStream d, int[] left) throws IOException {
        int n = d.readInt();
        if (n < 0 || n > left[0]) {
            throw new IOException("a request larger than " + LIMIT + " bytes");
        }
        left[0] -= n;
        byte[] b = d.readNBytes(n);
        if (b.length != n) {
            throw new IOException("a request cut short");
        }
        return new String(b, StandardCharsets.UTF_8);
    }
}
