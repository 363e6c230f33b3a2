package dev.suture.cli;

import dev.suture.SutureException;
import dev.suture.live.PatchStore;
import dev.suture.live.Patcher;
import dev.suture.live.Processes;
import dev.suture.patch.PatchFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code suture apply}: patches running processes, one process or every process that maps the target. */
@Command(name = "apply", mixinStandardHelpOptions = true,
        description = {"Applies patches to a running process (-p) or to every process that maps a module the",
                "patch is for (--all). A DIR is a patch store: <build-id>.suture or <build-id>/<level>.suture.",
                "The code is loaded while the process runs; it is stopped only to check that no thread is inside",
                "a replaced function and to write the jumps. Prints the pause it measured."})
public final class ApplyCommand implements Callable<Integer> {
    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @ArgGroup(multiplicity = "1")
    Which which;

    static final class Which {
        @Option(names = {"-p", "--pid"}, paramLabel = "PID", description = "The process to patch.")
        Integer pid;

        @Option(names = "--all", description = "Every process that maps a module with the patch's build-id.")
        boolean all;
    }

    @Parameters(arity = "1..*", paramLabel = "PATCH|DIR", description = "Patch files or patch stores.")
    List<Path> inputs;

    @Mixin
    BusyTimeout timeout;

    @Option(names = "--dry-run", description = "Check and bind everything, write nothing, report what would happen.")
    boolean dryRun;

    @Option(names = "--replace", description = "Swap every earlier patch of the module for this one, in one step.")
    boolean replace;

    @Mixin
    JsonOutput json;

    /** One process × patch outcome. */
    record Line(int pid, String process, String patch, Patcher.ApplyResult result, String error, int code) {}

    @Override
    public Integer call() throws Exception {
        var options = new Patcher.ApplyOptions(timeout.duration(), dryRun, replace);
        var patches = readPatches();
        var lines = new ArrayList<Line>();
        var processes = new Processes();
        List<Integer> pids = which.all ? Processes.all() : List.of(which.pid);
        int skipped = 0;
        for (int pid : pids) {
            var mapped = processes.buildIds(pid);
            boolean any = false;
            for (var e : patches.entrySet()) {
                if (which.all && !mapped.contains(e.getKey())) {
                    continue;
                }
                if (!which.all && isStore() && !mapped.contains(e.getKey())) {
                    continue;
                }
                any = true;
                for (Path file : e.getValue()) {
                    lines.add(applyOne(pid, PatchFile.read(file), options));
                }
            }
            if (!any) {
                skipped++;
                if (!which.all && isStore()) {
                    throw new SutureException(SutureException.Kind.DOES_NOT_FIT, "pid " + pid + " maps no module"
                            + " that the patch store has a patch for");
                }
            }
        }
        return report(lines, which.all ? skipped : 0);
    }

    private boolean isStore() {
        return inputs.stream().anyMatch(Files::isDirectory);
    }

    /** Patch files by target build-id, in the order given (files read now, so bad input fails before any apply). */
    private Map<String, List<Path>> readPatches() {
        var out = new LinkedHashMap<String, List<Path>>();
        for (Path in : inputs) {
            if (Files.isDirectory(in)) {
                PatchStore.load(in).forEach((id, p) -> out.computeIfAbsent(id, k -> new ArrayList<>()).add(p));
            } else {
                var patch = PatchFile.read(in);
                out.computeIfAbsent(patch.targetBuildId(), k -> new ArrayList<>()).add(in);
            }
        }
        if (out.isEmpty()) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, "no patch files in " + inputs);
        }
        return out;
    }

    private Line applyOne(int pid, PatchFile patch, Patcher.ApplyOptions options) {
        String name = Processes.name(pid);
        try {
            var r = Patcher.apply(pid, patch, options);
            return new Line(pid, name, patch.id(), r, null, ExitCodes.OK);
        } catch (SutureException e) {
            if (!which.all) {
                throw e;
            }
            return new Line(pid, name, patch.id(), null, e.getMessage(), ExitCodes.codeOf(e));
        }
    }

    private int report(List<Line> lines, int skipped) throws Exception {
        var out = spec.commandLine().getOut();
        int code = lines.stream().mapToInt(Line::code).filter(c -> c != 0).findFirst().orElse(ExitCodes.OK);
        if (json.enabled()) {
            var doc = new LinkedHashMap<String, Object>();
            var results = new ArrayList<Map<String, Object>>();
            for (var l : lines) {
                var m = new LinkedHashMap<String, Object>();
                m.put("pid", l.pid());
                m.put("process", l.process());
                m.put("patch", l.patch());
                if (l.result() != null) {
                    var r = l.result();
                    m.put("outcome", r.outcome().name().toLowerCase(java.util.Locale.ROOT));
                    m.put("module", r.module());
                    m.put("buildId", r.buildId());
                    m.put("region", hex(r.regionAddress()));
                    m.put("regionSize", r.regionSize());
                    m.put("functions", r.functions().stream().map(f -> Map.of("name", f.name(),
                            "address", hex(f.oldAddress()), "replacement", hex(f.newAddress()))).toList());
                    m.put("replacedPatches", r.replacedPatches());
                    m.put("pauseMicros", r.pauseNanos() / 1000.0);
                    m.put("attempts", r.attempts());
                    m.put("message", r.message());
                } else {
                    m.put("outcome", "failed");
                    m.put("exitCode", l.code());
                    m.put("error", l.error());
                }
                results.add(m);
            }
            doc.put("results", results);
            if (which.all) {
                doc.put("summary", Map.of("applied", count(lines, Patcher.Outcome.APPLIED),
                        "alreadyApplied", count(lines, Patcher.Outcome.ALREADY_APPLIED),
                        "failed", lines.stream().filter(l -> l.result() == null).count(),
                        "notMatching", skipped));
            }
            JsonOutput.print(out, doc);
        } else {
            for (var l : lines) {
                out.println(text(l));
            }
            if (which.all) {
                out.printf("summary: %d applied, %d already applied, %d failed, %d processes without a matching"
                        + " module%n", count(lines, Patcher.Outcome.APPLIED),
                        count(lines, Patcher.Outcome.ALREADY_APPLIED),
                        lines.stream().filter(l -> l.result() == null).count(), skipped);
            }
        }
        out.flush();
        return code;
    }

    private static long count(List<Line> lines, Patcher.Outcome o) {
        return lines.stream().filter(l -> l.result() != null && l.result().outcome() == o).count();
    }

    static String text(Line l) {
        String who = "pid " + l.pid() + " (" + l.process() + ")";
        if (l.result() == null) {
            return who + ": " + l.patch() + " FAILED (exit " + l.code() + "): " + l.error();
        }
        var r = l.result();
        var fs = r.functions().stream().map(f -> f.name() + " " + hex(f.oldAddress()) + " -> " + hex(f.newAddress()))
                .toList();
        return switch (r.outcome()) {
            case ALREADY_APPLIED -> who + ": " + r.message();
            case DRY_RUN -> who + ": " + r.patchId() + " to " + r.module() + ": " + r.message() + " ["
                    + String.join(", ", fs) + "]";
            case APPLIED -> String.format("%s: applied %s to %s: %s; pause %.3f ms%s%s", who, r.patchId(),
                    r.module(), String.join(", ", fs), r.pauseNanos() / 1e6,
                    r.attempts() > 1 ? " (after " + r.attempts() + " attempts)" : "",
                    r.replacedPatches().isEmpty() ? "" : "; replaced " + String.join(", ", r.replacedPatches()));
        };
    }

    static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }
}
