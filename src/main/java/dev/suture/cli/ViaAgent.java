package dev.suture.cli;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
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
 * caller's own JVM. The wire format is described in the client's source; both ends ship together, and a request
 * of another version is declined.
 */
final class ViaAgent {
    private static final Set<String> SERVED = Set.of("apply", "revert", "info");
    private static final int VERSION = 2;

    private ViaAgent() {}

    /** What a request carries. */
    record Request(List<String> args, String cwd, String trustDir) {}

    /** What a reply carries; {@code served} false when the agent declined. */
    record Reply(boolean served, int code, String out, String err) {}

    /** Whether the agent serves this command line at all (help is always printed by the caller). */
    static boolean forwardable(List<String> args) {
        return !args.isEmpty() && SERVED.contains(args.getFirst()) && !args.contains("--help") && !args.contains("-h");
    }

    /** The agent's side: runs one request's command line in this JVM, its output captured. */
    static byte[] serve(byte[] requestBytes) {
        Request request;
        try {
            request = decodeRequest(requestBytes);
        } catch (IOException e) {
            return encode(new Reply(false, 0, "", ""));
        }
        if (!forwardable(request.args())
                || !Objects.equals(request.trustDir(), System.getenv("SUTURE_TRUST_DIR"))) {
            return encode(new Reply(false, 0, "", ""));
        }
        Path cwd = Path.of(request.cwd());
        var out = new StringWriter();
        var err = new StringWriter();
        var cl = Main.commandLine();
        cl.registerConverter(Path.class, s -> cwd.resolve(s));
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        int code = cl.execute(request.args().toArray(String[]::new));
        return encode(new Reply(true, code, out.toString(), err.toString()));
    }

    static Request decodeRequest(byte[] bytes) throws IOException {
        var d = new DataInputStream(new ByteArrayInputStream(bytes));
        if (d.readInt() != VERSION) {
            throw new IOException("a request of another version");
        }
        int n = d.readInt();
        if (n < 0 || n > 4096) {
            throw new IOException("a request of " + n + " arguments");
        }
        var args = new ArrayList<String>(n);
        for (int i = 0; i < n; i++) {
            args.add(string(d));
        }
        String cwd = string(d);
        String trustDir = d.readBoolean() ? string(d) : null;
        return new Request(List.copyOf(args), cwd, trustDir);
    }

    static byte[] encode(Reply r) {
        return write(d -> {
            d.writeInt(VERSION);
            d.writeBoolean(r.served());
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

    private static String string(DataInputStream d) throws IOException {
        int n = d.readInt();
        if (n < 0 || n > d.available()) {
            throw new IOException("a string of " + n + " bytes where " + d.available() + " are left");
        }
        return new String(d.readNBytes(n), StandardCharsets.UTF_8);
    }
}
