package dev.suture.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.suture.agent.CommandSocket;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;

/**
 * The fast path (docs/agent.md): when an agent runs, {@code apply}, {@code revert} and {@code info} are sent to it
 * over its socket and run in its warm JVM, which has rehearsed its holds already; this JVM only prints the reply.
 * A request is the command line, the working directory (relative paths are resolved against it, not the agent's)
 * and $SUTURE_TRUST_DIR; an agent configured with another trust directory declines, and the command runs here.
 * {@code SUTURE_NO_AGENT=1} runs every command here.
 */
final class ViaAgent {
    private static final Set<String> SERVED = Set.of("apply", "revert", "info");
    private static final ThreadLocal<Boolean> SERVING = ThreadLocal.withInitial(() -> false);

    private ViaAgent() {}

    /** Made only when there is an agent to speak to: a cold command without one pays nothing for it. */
    private static final class Json {
        static final ObjectMapper MAPPER = new ObjectMapper();
    }

    /** Runs {@code args} through the agent when one serves them; the exit code, or empty to run them here. */
    static Optional<Integer> tryForward(String[] args, PrintStream out, PrintStream err) {
        if (args.length == 0 || !SERVED.contains(args[0]) || SERVING.get() || System.getenv("SUTURE_NO_AGENT") != null
                || List.of(args).contains("--help") || List.of(args).contains("-h") || !CommandSocket.listening()) {
            return Optional.empty();
        }
        try {
            var request = new LinkedHashMap<String, Object>();
            request.put("args", List.of(args));
            request.put("cwd", Path.of("").toAbsolutePath().toString());
            request.put("trustDir", System.getenv("SUTURE_TRUST_DIR"));
            var reply = CommandSocket.send(Json.MAPPER.writeValueAsBytes(request));
            if (reply.isEmpty()) {
                return Optional.empty();
            }
            var doc = Json.MAPPER.readTree(reply.get());
            if (!doc.path("served").asBoolean()) {
                return Optional.empty();
            }
            out.print(doc.path("out").asText());
            out.flush();
            err.print(doc.path("err").asText());
            err.flush();
            return Optional.of(doc.path("code").asInt(ExitCodes.INTERNAL));
        } catch (java.io.IOException | RuntimeException e) {
            return Optional.empty(); // the agent is not there or not sane: do the work here
        }
    }

    /** The agent's side: runs one request's command line in this JVM, its output captured. */
    static byte[] serve(byte[] requestBytes) {
        var reply = new LinkedHashMap<String, Object>();
        try {
            var request = Json.MAPPER.readTree(requestBytes);
            var args = new ArrayList<String>();
            request.path("args").forEach(a -> args.add(a.asText()));
            String trustDir = request.path("trustDir").isNull() ? null : request.path("trustDir").asText(null);
            if (args.isEmpty() || !SERVED.contains(args.getFirst())
                    || !Objects.equals(trustDir, System.getenv("SUTURE_TRUST_DIR"))) {
                reply.put("served", false);
                return Json.MAPPER.writeValueAsBytes(reply);
            }
            Path cwd = Path.of(request.path("cwd").asText("/"));
            var out = new StringWriter();
            var err = new StringWriter();
            int code;
            SERVING.set(true);
            try {
                var cl = Main.commandLine();
                cl.registerConverter(Path.class, s -> cwd.resolve(s));
                cl.setOut(new PrintWriter(out, true));
                cl.setErr(new PrintWriter(err, true));
                code = cl.execute(args.toArray(String[]::new));
            } finally {
                SERVING.set(false);
            }
            reply.put("served", true);
            reply.put("code", code);
            reply.put("out", out.toString());
            reply.put("err", err.toString());
            return Json.MAPPER.writeValueAsBytes(reply);
        } catch (java.io.IOException e) {
            return ("{\"served\":false}").getBytes(java.nio.charset.StandardCharsets.UTF_8);
        }
    }
}
