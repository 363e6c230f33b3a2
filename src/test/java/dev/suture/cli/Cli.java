package dev.suture.cli;

import java.io.PrintWriter;
import java.io.StringWriter;

/** Runs the suture command line in-process for tests of any package, capturing what it prints. */
public final class Cli {
    private Cli() {}

    /** Exit code and the text printed on stdout and stderr. */
    public record Result(int code, String out, String err) {}

    public static Result run(String... args) {
        var out = new StringWriter();
        var err = new StringWriter();
        var cl = Main.commandLine();
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        int code = cl.execute(args);
        return new Result(code, out.toString(), err.toString());
    }
}
