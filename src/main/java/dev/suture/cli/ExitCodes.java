package dev.suture.cli;

import dev.suture.SutureException;
import picocli.CommandLine;

/**
 * The documented exit codes, and the mapping from the failures of lower layers to them. Lower layers throw
 * typed exceptions and know nothing of exit codes; this class is the one place that decides.
 */
public final class ExitCodes {
    public static final int OK = 0;
    public static final int INTERNAL = 1;
    public static final int BAD_INPUT = 2;
    public static final int DOES_NOT_FIT = 3;
    public static final int UNSAFE = 4;
    public static final int NOT_PERMITTED = 5;
    public static final int VANISHED = 6;
    /** {@code suture status}: some process runs code a patch of the store fixes (docs/agent.md). */
    public static final int VULNERABLE = 8;

    private ExitCodes() {}

    /** Exit code for a failure thrown from any layer. */
    static int codeOf(Throwable t) {
        return switch (t) {
            case SutureException s -> codeOf(s.kind());
            case java.nio.file.NoSuchFileException _ -> BAD_INPUT;
            case java.nio.file.AccessDeniedException _ -> BAD_INPUT;
            default -> INTERNAL;
        };
    }

    /** Exit code for a kind of failure. */
    static int codeOf(SutureException.Kind kind) {
        return switch (kind) {
            case BAD_INPUT -> BAD_INPUT;
            case DOES_NOT_FIT -> DOES_NOT_FIT;
            case UNSAFE -> UNSAFE;
            case NOT_PERMITTED -> NOT_PERMITTED;
            case VANISHED -> VANISHED;
            case INTERNAL -> INTERNAL;
        };
    }

    static int handle(Exception e, CommandLine cl, CommandLine.ParseResult parseResult) {
        int code = codeOf(e);
        String message = e.getMessage() == null ? e.toString() : e.getMessage();
        if (e instanceof java.nio.file.NoSuchFileException) {
            message = "no such file: " + message;
        }
        cl.getErr().println("suture " + cl.getCommandName() + ": " + message);
        if (code == INTERNAL || System.getenv("SUTURE_DEBUG") != null) {
            e.printStackTrace(cl.getErr());
        }
        if (cl.getParseResult() != null && cl.getParseResult().hasMatchedOption("--json")) {
            printJson(cl, message, code);
        }
        return code;
    }

    static int handleUsage(CommandLine.ParameterException e, String[] args) {
        var cl = e.getCommandLine();
        cl.getErr().println("suture: " + e.getMessage());
        cl.getErr().println("Try '" + cl.getCommandSpec().qualifiedName() + " --help' for usage.");
        if (java.util.Arrays.asList(args).contains("--json")) {
            printJson(cl, e.getMessage(), BAD_INPUT);
        }
        return BAD_INPUT;
    }

    /** With --json, a failure is one JSON object on stdout too, so a script that reads stdout learns of it. */
    private static void printJson(CommandLine cl, String message, int code) {
        var doc = new java.util.LinkedHashMap<String, Object>();
        doc.put("error", message);
        doc.put("exitCode", code);
        try {
            JsonOutput.print(cl.getOut(), doc);
        } catch (com.fasterxml.jackson.core.JsonProcessingException impossible) {
            throw new IllegalStateException(impossible);
        }
        cl.getOut().flush();
    }
}
