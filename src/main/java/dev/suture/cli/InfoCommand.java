package dev.suture.cli;

import dev.suture.live.Patcher;
import dev.suture.live.Processes;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code suture info}: what is applied where, read from the processes' own memory. */
@Command(name = "info", header = "Lists the patches applied to running processes.", mixinStandardHelpOptions = true,
        description = {"Lists the patches applied to a process (-p) or to every process this user may inspect:",
                "module, patch id, functions and when it was applied. Reads each process's memory; stops nothing.",
                "Also names the processes with an interrupted apply or revert that awaits 'suture recover'."})
public final class InfoCommand implements Callable<Integer> {
    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = {"-p", "--pid"}, paramLabel = "PID", description = "One process (default: every process).")
    Integer pid;

    @Mixin
    JsonOutput json;

    @Override
    public Integer call() throws Exception {
        var found = new ArrayList<Patcher.AppliedPatch>();
        if (pid != null) {
            Processes.requireGiven(pid);
            found.addAll(Patcher.applied(pid));
        } else {
            found.addAll(Patcher.appliedEverywhere());
        }
        var interrupted = Patcher.interrupted(pid);
        var out = spec.commandLine().getOut();
        if (json.enabled()) {
            var list = new ArrayList<Map<String, Object>>();
            for (var a : found) {
                var m = new LinkedHashMap<String, Object>();
                m.put("pid", a.pid());
                m.put("process", Processes.name(a.pid()));
                m.put("patch", a.patchId());
                m.put("module", a.module());
                m.put("buildId", a.buildId());
                m.put("target", a.targetName());
                m.put("state", a.state());
                m.put("applied", a.applied() == null ? null : a.applied().toString());
                m.put("sequence", a.sequence());
                m.put("region", ApplyCommand.hex(a.regionAddress()));
                m.put("regionSize", a.regionSize());
                m.put("functions", a.functions().stream().map(f -> Map.of("name", f.name(),
                        "address", ApplyCommand.hex(f.oldAddress()),
                        "replacement", ApplyCommand.hex(f.newAddress()))).toList());
                list.add(m);
            }
            var doc = new LinkedHashMap<String, Object>();
            if (pid != null) {
                doc.put("pid", pid);
            }
            doc.put("patches", list);
            doc.put("interrupted", interrupted.stream().map(i -> Map.of("pid", i.pid(), "transaction",
                    i.description(), "journal", i.journal().toString())).toList());
            JsonOutput.print(out, doc);
        } else if (found.isEmpty()) {
            out.println(pid != null ? "pid " + pid + ": no patches applied" : "no patched processes");
        } else {
            printPatches(out, found);
        }
        if (!json.enabled()) {
            for (var i : interrupted) {
                out.printf("pid %d has %s: run 'suture recover -p %d'%n", i.pid(), i.description(), i.pid());
            }
        }
        out.flush();
        return ExitCodes.OK;
    }

    private static void printPatches(java.io.PrintWriter out, List<Patcher.AppliedPatch> found) {
        int last = -1;
        for (var a : found) {
            if (a.pid() != last) {
                out.println("pid " + a.pid() + " (" + Processes.name(a.pid()) + ")");
                last = a.pid();
            }
            out.printf("  %s  %s  build-id %s  %s%s  region %s (%d KiB)%n", a.patchId(), a.module(),
                    a.buildId(), a.state(), a.applied() == null ? "" : " " + a.applied(),
                    ApplyCommand.hex(a.regionAddress()), a.regionSize() / 1024);
            for (var f : a.functions()) {
                out.printf("    %s %s -> %s%n", f.name(), ApplyCommand.hex(f.oldAddress()),
                        ApplyCommand.hex(f.newAddress()));
            }
        }
    }
}
