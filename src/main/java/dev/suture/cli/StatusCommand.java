package dev.suture.cli;

import dev.suture.agent.Agent;
import dev.suture.agent.DesiredState;
import dev.suture.agent.Failures;
import dev.suture.agent.Status;
import dev.suture.live.PatchStore;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code suture status}: which processes still run code that a patch in the store fixes. */
@Command(name = "status", header = "Says which processes still run code the patch store fixes.",
        mixinStandardHelpOptions = true,
        description = {"For every process that maps a module the patch store has a patch for: whether it runs",
                "the store's patch (patched), a lower level of it (older-level), a patch that is not in the store",
                "(other-patch), or the unpatched code (unpatched); and the processes the agent could not patch, and",
                "why. Reads the processes' memory; stops nothing. Exit 0 when no process runs unpatched code",
                "(older levels included), 8 when some process runs code the store's patch for it does not cover",
                "(unpatched or other-patch), 2 or 5 when the store cannot be read or is not in trusted hands.",
                "The --json document is described in docs/agent.md."})
public final class StatusCommand implements Callable<Integer> {
    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--store", paramLabel = "DIR", description = "The patch store (default: ${DEFAULT-VALUE}).")
    Path store = PatchStore.DEFAULT;

    @Option(names = "--trust", paramLabel = "DIR",
            description = "A directory of trusted public keys: patches not signed by one are listed as refused.")
    List<Path> trust;

    @Mixin
    JsonOutput json;

    @Override
    public Integer call() throws Exception {
        var desired = DesiredState.read(store.toAbsolutePath().normalize(), TrustSources.load(trust).orElse(null));
        var agent = Agent.running();
        List<Failures.Failure> failures = agent.isPresent() ? Failures.recorded() : List.of();
        var report = Status.of(desired, failures);
        var out = spec.commandLine().getOut();
        if (json.enabled()) {
            JsonOutput.print(out, document(report, agent.orElse(null)));
        } else {
            text(out, report, agent.orElse(null));
        }
        out.flush();
        return report.vulnerable() ? ExitCodes.VULNERABLE : ExitCodes.OK;
    }

    private static Map<String, Object> document(Status.Report report, Integer agent) {
        var doc = new LinkedHashMap<String, Object>();
        doc.put("store", report.desired().store().toString());
        var a = new LinkedHashMap<String, Object>();
        a.put("running", agent != null);
        a.put("pid", agent);
        doc.put("agent", a);
        doc.put("patches", report.desired().byBuildId().values().stream().map(w -> {
            var m = new LinkedHashMap<String, Object>();
            m.put("buildId", w.buildId());
            m.put("patch", w.patch().id());
            m.put("level", w.level());
            m.put("file", w.file().toString());
            m.put("target", w.patch().targetName());
            m.put("olderLevels", List.copyOf(w.olderIds()));
            m.put("trustedSigner", w.trustedAs());
            return (Object) m;
        }).toList());
        doc.put("refused", report.desired().refused().stream().map(r -> Map.of("file", r.file().toString(),
                "reason", r.reason())).toList());
        var procs = new ArrayList<Map<String, Object>>();
        for (var p : report.processes()) {
            var m = new LinkedHashMap<String, Object>();
            m.put("pid", p.pid());
            m.put("process", p.process());
            m.put("modules", p.modules().stream().map(s -> {
                var x = new LinkedHashMap<String, Object>();
                x.put("module", s.module());
                x.put("buildId", s.buildId());
                x.put("state", Status.name(s.state()));
                x.put("storePatch", s.storePatch());
                x.put("level", s.level());
                x.put("applied", s.applied());
                return (Object) x;
            }).toList());
            m.put("agentFailure", p.failure() == null ? null : failure(p.failure()));
            procs.add(m);
        }
        doc.put("processes", procs);
        doc.put("unreadable", report.unreadable().stream().map(u -> Map.of("pid", u.pid(), "process", u.process(),
                "reason", u.reason())).toList());
        doc.put("agentFailures", report.failures().stream().map(StatusCommand::failure).toList());
        var summary = new LinkedHashMap<String, Object>();
        for (var s : Status.State.values()) {
            summary.put(camel(Status.name(s)), report.count(s));
        }
        summary.put("agentFailures", report.failures().size());
        doc.put("summary", summary);
        doc.put("vulnerable", report.vulnerable());
        return doc;
    }

    private static Map<String, Object> failure(Failures.Failure f) {
        var m = new LinkedHashMap<String, Object>();
        m.put("pid", f.pid());
        m.put("patch", f.patch());
        m.put("exitCode", ExitCodes.codeOf(f.kind()));
        m.put("reason", f.reason());
        m.put("at", java.time.Instant.ofEpochMilli(f.atMillis()).toString());
        return m;
    }

    private static String camel(String dashed) {
        var b = new StringBuilder();
        boolean up = false;
        for (char c : dashed.toCharArray()) {
            if (c == '-') {
                up = true;
            } else {
                b.append(up ? Character.toUpperCase(c) : c);
                up = false;
            }
        }
        return b.toString();
    }

    private static void text(java.io.PrintWriter out, Status.Report report, Integer agent) {
        var d = report.desired();
        out.println("store " + d.store() + ": " + d.byBuildId().size() + " patch(es)"
                + (agent == null ? "; no agent runs" : "; agent pid " + agent));
        for (var r : d.refused()) {
            out.println("  refused " + r.file() + ": " + r.reason());
        }
        for (var p : report.processes()) {
            out.println("pid " + p.pid() + " (" + p.process() + ")");
            for (var s : p.modules()) {
                out.printf("  %-12s %s  %s%s%n", Status.name(s.state()), s.module(), s.storePatch(),
                        s.applied().isEmpty() || s.state() == Status.State.PATCHED ? ""
                                : " (runs " + String.join(", ", s.applied()) + ")");
            }
            if (p.failure() != null) {
                out.println("  the agent could not patch it: " + p.failure().reason());
            }
        }
        for (var u : report.unreadable()) {
            out.println("pid " + u.pid() + " (" + u.process() + "): cannot be read: " + u.reason());
        }
        out.printf("summary: %d patched, %d older level, %d other patch, %d unpatched%s%n",
                report.count(Status.State.PATCHED), report.count(Status.State.OLDER_LEVEL),
                report.count(Status.State.OTHER_PATCH), report.count(Status.State.UNPATCHED),
                report.vulnerable() ? " — some processes run code a patch of the store fixes" : "");
    }
}
