package dev.suture.testing;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;

/**
 * A hostile local user for the attack tests: runs shell commands as an unprivileged uid (nobody, 65534) through
 * setpriv, so that what it plants (directories, journals, keys, symlinks) is owned by a stranger, as it would be
 * on a real machine. The tests then run root's suture against it.
 */
public final class Stranger {
    public static final int UID = 65534;

    private Stranger() {}

    /** What the command printed and how it ended. */
    public record Result(int status, String output) {}

    /** Runs {@code script} with {@code sh -c} as the stranger, bounded by 30 s; fails the test if it does not end. */
    public static Result run(String script) throws IOException {
        var p = new ProcessBuilder("setpriv", "--reuid=" + UID, "--regid=" + UID, "--clear-groups",
                "--inh-caps=-all", "sh", "-c", script).redirectErrorStream(true)
                .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))).start();
        try {
            if (!p.waitFor(30, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new AssertionError("the stranger's command did not end: " + script);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException(e);
        }
        return new Result(p.exitValue(), new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8));
    }

    /** Runs {@code script} as the stranger and fails the test unless it exits 0. */
    public static String must(String script) throws IOException {
        var r = run(script);
        if (r.status() != 0) {
            throw new AssertionError("the stranger's command failed (exit " + r.status() + "): " + script + "\n"
                    + r.output());
        }
        return r.output();
    }
}
