package dev.suture.cli;

import java.io.PrintWriter;
import java.util.Locale;

/**
 * Where long work is, for a person watching a terminal: lines on stderr with the time since the command began.
 * Silent when the output is not a terminal (piped, redirected, a test) and with --json, so scripts see only results.
 */
final class Progress {
    private final PrintWriter err;
    private final String command;
    private final long start = System.nanoTime();

    private Progress(PrintWriter err, String command) {
        this.err = err;
        this.command = command;
    }

    /** Progress for {@code command} on stderr, or null when there is no terminal to show it on or --json is given. */
    static Progress onTerminal(picocli.CommandLine.Model.CommandSpec spec, JsonOutput json) {
        var console = System.console();
        if (json.enabled() || console == null || !console.isTerminal()) {
            return null;
        }
        return new Progress(spec.commandLine().getErr(), "suture " + spec.name());
    }

    /** Says that {@code what} begins now. */
    void say(String what) {
        err.printf(Locale.ROOT, "%s: [%6.1f s] %s%n", command, (System.nanoTime() - start) / 1e9, what);
        err.flush();
    }
}
