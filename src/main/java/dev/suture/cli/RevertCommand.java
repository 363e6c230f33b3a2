package dev.suture.cli;

import dev.suture.SutureException;
import dev.suture.live.Patcher;
import dev.suture.live.Processes;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code suture revert}: takes patches out of a running process, or out of every process that has them, newest first. */
@Command(name = "revert", header = "Takes patches out of running processes.", mixinStandardHelpOptions = true,
        description = {"Reverts patches applied to a running process (-p), or, without -p, the named patches in",
                "every process that has them applied: checks that no thread is in the patch's code, writes the",
                "original bytes back and unmaps the patch. Patches stacked on others are reverted newest first;",
                "reverting one that a later patch depends on is refused. Without -p, each process is reverted on",
                "its own (one that fails stops no other), a line is printed for each, and the exit code is that",
                "of the first that failed."})
public final class RevertCommand implements Callable<Integer> {
    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = {"-p", "--pid"}, paramLabel = "PID",
            description = "The process (default: every process that has one of the PATCH-IDs applied).")
    Integer pid;

    @Parameters(arity = "0..*", paramLabel = "PATCH-ID", description = "Ids of the patches to revert.")
    List<String> ids = new ArrayList<>();

    @Option(names = "--all", description = "Revert every patch applied to the process (-p only).")
    boolean all;

    @Mixin
    BusyTimeout timeout;

    @Mixin
    MaxPause maxPause;

    @Mixin
    JsonOutput json;

    /** What became of one process: its reverted patches, or the failure. */
    record Outcome(int pid, List<Patcher.RevertResult> reverted, List<String> ids, String error, int code) {}

    @Override
    public Integer call() throws Exception {
        if (ids.isEmpty() && !all) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, "name the patches to revert, or give --all");
        }
        if (pid == null && all) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, "--all reverts every patch of one process:"
                    + " give -p PID, or name the patches to revert in every process");
        }
        var outcomes = new ArrayList<Outcome>();
        if (pid != null) {
            Processes.requireGiven(pid);
            outcomes.add(new Outcome(pid, Patcher.revert(pid, ids, all, timeout.duration(), maxPause.duration()),
                    ids, null, ExitCodes.OK));
        } else {
            for (var entry : processesWith(ids).entrySet()) {
                outcomes.add(revertIn(entry.getKey(), List.copyOf(entry.getValue())));
            }
        }
        print(outcomes);
        return outcomes.stream().mapToInt(Outcome::code).filter(c -> c != 0).findFirst().orElse(ExitCodes.OK);
    }

    /** The processes that have any of {@code wanted} applied, with those of them each has. */
    private static Map<Integer, LinkedHashSet<String>> processesWith(List<String> wanted) {
        var out = new TreeMap<Integer, LinkedHashSet<String>>();
        for (var a : Patcher.appliedEverywhere()) {
            if (wanted.contains(a.patchId())) {
                out.computeIfAbsent(a.pid(), k -> new LinkedHashSet<>()).add(a.patchId());
            }
        }
        return out;
    }

    private Outcome revertIn(int target, List<String> present) {
        try {
            return new Outcome(target, Patcher.revert(target, present, false, timeout.duration(),
                    maxPause.duration()), present, null, ExitCodes.OK);
        } catch (SutureException e) {
            return new Outcome(target, List.of(), present, e.getMessage(), ExitCodes.codeOf(e));
        }
    }

    private void print(List<Outcome> outcomes) throws Exception {
        var out = spec.commandLine().getOut();
        if (json.enabled()) {
            var reverted = new ArrayList<Map<String, Object>>();
            var failed = new ArrayList<Map<String, Object>>();
            for (var o : outcomes) {
                for (var r : o.reverted()) {
                    var m = new LinkedHashMap<String, Object>();
                    m.put("pid", r.pid());
                    m.put("patch", r.patchId());
                    m.put("module", r.module());
                    m.put("functions", r.functions());
                    m.put("pauseMicros", r.pauseNanos() / 1000.0);
                    m.put("attempts", r.attempts());
                    m.put("abandoned", r.abandoned());
                    m.put("longestPauseMicros", r.longestNanos() / 1000.0);
                    PauseReport.json(r.pause(), m);
                    reverted.add(m);
                }
                if (o.error() != null) {
                    var m = new LinkedHashMap<String, Object>();
                    m.put("pid", o.pid());
                    m.put("process", Processes.name(o.pid()));
                    m.put("patches", o.ids());
                    m.put("exitCode", o.code());
                    m.put("error", o.error());
                    failed.add(m);
                }
            }
            var doc = new LinkedHashMap<String, Object>();
            if (pid != null) {
                doc.put("pid", pid);
            }
            doc.put("reverted", reverted);
            if (pid == null) {
                doc.put("failed", failed);
            }
            JsonOutput.print(out, doc);
        } else if (outcomes.stream().allMatch(o -> o.reverted().isEmpty() && o.error() == null)) {
            out.println(pid != null ? "pid " + pid + ": no patch is applied; nothing to do"
                    : "no process has " + String.join(", ", ids) + " applied; nothing to do");
        } else {
            for (var o : outcomes) {
                for (var r : o.reverted()) {
                    out.printf("pid %d: reverted %s from %s (%s); %s%s%n", r.pid(), r.patchId(), r.module(),
                            String.join(", ", r.functions()), PauseReport.text(r.pause()),
                            ApplyCommand.attempts(r.attempts(), r.abandoned(), r.longestNanos()));
                }
                if (o.error() != null) {
                    out.printf("pid %d (%s): %s FAILED (exit %d): %s%n", o.pid(), Processes.name(o.pid()),
                            String.join(", ", o.ids()), o.code(), o.error());
                }
            }
        }
        out.flush();
    }
}
