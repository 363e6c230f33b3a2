package dev.suture.cli;

import dev.suture.live.Patcher;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code suture recover}: ends the transactions an interrupted suture left behind, from their journals. */
@Command(name = "recover", header = "Finishes or undoes an interrupted apply or revert.",
        mixinStandardHelpOptions = true,
        description = {"When suture is killed in the middle of apply or revert, the journal it keeps in the run",
                "directory (SUTURE_RUN_DIR; for root /run/suture) says what it was doing. recover gives back any",
                "thread it had borrowed, then finishes the transaction (an apply whose jumps were all in, a",
                "revert) or undoes it (an apply that was not), with the same safety check as apply, so the",
                "process ends fully patched or exactly as it was. apply and revert refuse to start on a process",
                "with a journal. A journal whose process has exited is removed."})
public final class RecoverCommand implements Callable<Integer> {
    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @ArgGroup(exclusive = true, multiplicity = "1")
    Which which;

    static final class Which {
        @Option(names = {"-p", "--pid"}, paramLabel = "PID", description = "The process to recover.")
        Integer pid;

        @Option(names = "--all", description = "Every process with a journal in the run directory.")
        boolean all;
    }

    @Mixin
    BusyTimeout timeout;

    @Mixin
    MaxPause maxPause;

    @Mixin
    JsonOutput json;

    @Override
    public Integer call() throws Exception {
        List<Patcher.RecoverResult> results = which.all ? Patcher.recoverAll(timeout.duration(), maxPause.duration())
                : List.of(Patcher.recover(which.pid, timeout.duration(), maxPause.duration()));
        var out = spec.commandLine().getOut();
        if (json.enabled()) {
            var list = new ArrayList<Map<String, Object>>();
            for (var r : results) {
                var m = new LinkedHashMap<String, Object>();
                m.put("pid", r.pid());
                m.put("outcome", r.outcome().name().toLowerCase(java.util.Locale.ROOT));
                m.put("operation", r.operation() == null ? null : r.operation().toLowerCase(java.util.Locale.ROOT));
                m.put("threadsReturned", r.threadsReturned());
                m.put("message", r.message());
                list.add(m);
            }
            JsonOutput.print(out, Map.of("runDirectory", Patcher.runDirectory().toString(), "recovered", list));
        } else if (results.isEmpty()) {
            out.println("no journal in " + Patcher.runDirectory() + "; nothing to recover");
        } else {
            for (var r : results) {
                out.println(r.message());
            }
        }
        out.flush();
        return ExitCodes.OK;
    }
}
