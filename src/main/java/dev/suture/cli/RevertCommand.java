package dev.suture.cli;

import dev.suture.SutureException;
import dev.suture.live.Patcher;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code suture revert}: takes patches out of a running process, newest first. */
@Command(name = "revert", mixinStandardHelpOptions = true,
        description = {"Reverts patches applied to a running process: checks that no thread is in the patch's",
                "code, writes the original bytes back and unmaps the patch. Patches stacked on others are",
                "reverted newest first; reverting one that a later patch depends on is refused."})
public final class RevertCommand implements Callable<Integer> {
    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = {"-p", "--pid"}, required = true, paramLabel = "PID", description = "The process.")
    int pid;

    @Parameters(arity = "0..*", paramLabel = "PATCH-ID", description = "Ids of the patches to revert.")
    List<String> ids = new ArrayList<>();

    @Option(names = "--all", description = "Revert every patch applied to the process.")
    boolean all;

    @Mixin
    BusyTimeout timeout;

    @Mixin
    MaxPause maxPause;

    @Mixin
    JsonOutput json;

    @Override
    public Integer call() throws Exception {
        if (ids.isEmpty() && !all) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, "name the patches to revert, or give --all");
        }
        var results = Patcher.revert(pid, ids, all, timeout.duration(), maxPause.duration());
        var out = spec.commandLine().getOut();
        if (json.enabled()) {
            var list = new ArrayList<Map<String, Object>>();
            for (var r : results) {
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
                list.add(m);
            }
            JsonOutput.print(out, Map.of("pid", pid, "reverted", list));
        } else if (results.isEmpty()) {
            out.println("pid " + pid + ": no patch is applied; nothing to do");
        } else {
            for (var r : results) {
                out.printf("pid %d: reverted %s from %s (%s); %s%s%n", r.pid(), r.patchId(), r.module(),
                        String.join(", ", r.functions()), PauseReport.text(r.pause()),
                        ApplyCommand.attempts(r.attempts(), r.abandoned(), r.longestNanos()));
            }
        }
        out.flush();
        return ExitCodes.OK;
    }
}
