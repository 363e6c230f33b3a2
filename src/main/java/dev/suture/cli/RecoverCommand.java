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
                "process ends fully patched or exactly as it was. Every record is first checked against the",
                "process as it is; a journal that does not match it is refused and nothing is written.",
                "apply and revert refuse to start on a process with a journal. A journal whose process has",
                "exited is removed. --all recovers each process on its own (one bad journal stops no other),",
                "prints a line for each, exits with the code of the first that failed, and removes what",
                "sutures and processes that are gone left in the run directory."})
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
                m.put("exitCode", r.failure() == null ? ExitCodes.OK : ExitCodes.codeOf(r.failure()));
                PauseReport.json(r.pause(), m);
                list.add(m);
            }
            JsonOutput.print(out, Map.of("runDirectory", Patcher.runDirectory().toString(), "recovered", list));
        } else if (results.isEmpty()) {
            out.println("no journal in " + Patcher.runDirectory() + "; nothing to recover");
        } else {
            for (var r : results) {
                (r.failure() == null ? out : spec.commandLine().getErr()).println(r.failure() != null
                        ? "suture recover: " + r.message()
                        : r.pause().holds().isEmpty() ? r.message() : r.message() + "; " + PauseReport.text(r.pause()));
            }
        }
        out.flush();
        spec.commandLine().getErr().flush();
        return results.stream().filter(r -> r.failure() != null).findFirst()
                .map(r -> ExitCodes.codeOf(r.failure())).orElse(ExitCodes.OK);
    }
}
