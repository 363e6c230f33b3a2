package dev.suture.cli;

import dev.suture.SutureException;
import dev.suture.live.ApplyPlan;
import dev.suture.live.PatchStore;
import dev.suture.live.Patcher;
import dev.suture.live.Processes;
import dev.suture.patch.PatchFile;
import dev.suture.patch.TrustedKeys;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code suture apply}: patches running processes, one process or every process that maps the target. */
@Command(name = "apply", header = "Patches running processes.", mixinStandardHelpOptions = true,
        description = {"Applies patches to a running process (-p) or to every process that maps a module the",
                "patch is for (--all). A DIR is a patch store: <build-id>.suture or <build-id>/<level>.suture.",
                "The code is loaded while the process runs; it is stopped only to check that no thread is inside",
                "a replaced function and to write the jumps. Prints the pause it measured. Before the first",
                "stop, suture rehearses that work on a `sleep` process of its own (0.3-0.8 s), so the target's",
                "pauses meet compiled code (docs/apply.md).",
                "",
                "Signatures: a patch whose signature does not verify (changed after signing) is always refused.",
                "With --require-signed or --trust, every patch given (every file of a store) must be signed by a",
                "key in a trust directory, checked before any process is touched. A trust directory in the",
                "configuration ($SUTURE_TRUST_DIR, else " + TrustSources.SYSTEM_TRUST_DIR + ") that exists makes",
                "signatures required for every apply and is used when no --trust is given. A trust directory",
                "must belong to root (or the user suture runs as) and be writable by no one else, like every",
                "directory above it; each .pub in it must be a regular file (no symlink) of that owner that no",
                "one else may write. Otherwise apply refuses it (exit 5) and says what to chown or chmod.",
                "A signer is shown by key id; its name is the one its .pub file has in the trust directory,",
                "never the name the patch claims."})
public final class ApplyCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

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

    @Mixin
    MaxPause maxPause;

    @Option(names = "--dry-run", description = "Check and bind everything, write nothing, report what would happen.")
    boolean dryRun;

    @Option(names = "--replace", description = "Swap every earlier patch of the module for this one, in one step.")
    boolean replace;

    @Option(names = "--require-signed",
            description = "Apply only patches signed by a key in a trust directory (--trust, or the configured one).")
    boolean requireSigned;

    @Option(names = "--trust", paramLabel = "DIR",
            description = "A directory of trusted public keys (*.pub files, or one .pub file), owned by root and "
                    + "writable by no one else; repeatable. Implies --require-signed.")
    List<Path> trust;

    @Mixin
    JsonOutput json;

    /** A patch that passed the signature policy, and by whom it is signed (null: unsigned, none required). */
    record Checked(Path file, PatchFile patch, String trustedAs) {}

    /** One process × patch outcome. */
    record Line(int pid, String process, String patch, Patcher.ApplyResult result, String error, int code) {}

    @Override
    public Integer call() throws Exception {
        var options = new Patcher.ApplyOptions(timeout.duration(), dryRun, replace, maxPause.duration());
        var patches = readPatches(trustedKeys());
        if (which.pid != null) {
            Processes.requireGiven(which.pid);
        }
        var byBuildId = new LinkedHashMap<String, List<PatchFile>>();
        patches.forEach((id, checked) -> byBuildId.put(id, checked.stream().map(Checked::patch).toList()));
        var plan = new ApplyPlan(byBuildId, which.all, isStore());
        var lines = new ArrayList<Line>();
        int skipped = 0;
        var progress = which.all ? Progress.onTerminal(spec, json) : null;
        var pids = plan.pids(which.pid);
        int done = 0;
        for (int pid : pids) {
            done++;
            // the patches read and checked above, not the files again: they could have changed since
            var forPid = plan.patchesFor(pid);
            if (forPid.isEmpty()) {
                skipped++;
            } else if (progress != null) {
                progress.say("process " + done + " of " + pids.size() + ": pid " + pid + " (" + Processes.name(pid)
                        + ")");
            }
            for (var patch : forPid) {
                lines.add(applyOne(pid, patch, options));
            }
        }
        return report(lines, which.all ? skipped : 0, patches);
    }

    /**
     * The keys signatures must come from, or null when none are required: --trust, else the configured trust
     * directory ($SUTURE_TRUST_DIR, else /etc/suture/trusted-keys) if it exists or --require-signed asks for it.
     */
    private TrustedKeys trustedKeys() {
        var keys = TrustSources.load(trust);
        if (keys.isEmpty() && requireSigned) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, "--require-signed needs trusted keys: give"
                    + " --trust DIR (a directory of *.pub files) or create " + TrustSources.SYSTEM_TRUST_DIR);
        }
        return keys.orElse(null);
    }

    private boolean isStore() {
        return inputs.stream().anyMatch(Files::isDirectory);
    }

    /**
     * Patches by target build-id, in the order given, read and checked against the signature policy now: bad input
     * and an untrusted patch (anywhere in a store, even for a module no process maps) fail before any process is
     * touched.
     */
    private Map<String, List<Checked>> readPatches(TrustedKeys keys) {
        var out = new LinkedHashMap<String, List<Checked>>();
        for (Path in : inputs) {
            var files = new LinkedHashMap<Path, String>(); // a store's file, by the build-id it is stored under
            if (Files.isDirectory(in)) {
                PatchStore.load(in).forEach((id, p) -> files.put(p, id));
            } else {
                files.put(in, null);
            }
            for (var entry : files.entrySet()) {
                Path file = entry.getKey();
                var patch = PatchFile.read(file);
                String trustedAs = null;
                if (keys != null) {
                    trustedAs = keys.check(patch);
                } else {
                    TrustedKeys.requireIntact(patch);
                }
                String buildId = entry.getValue() != null ? entry.getValue() : patch.targetBuildId();
                out.computeIfAbsent(buildId, k -> new ArrayList<>())
                        .add(new Checked(file, patch, trustedAs));
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

    private int report(List<Line> lines, int skipped, Map<String, List<Checked>> patches) throws Exception {
        var out = spec.commandLine().getOut();
        var trusted = patches.values().stream().flatMap(List::stream).filter(c -> c.trustedAs() != null).toList();
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
                    m.put("outcome", r.outcome().name().toLowerCase(Locale.ROOT));
                    m.put("module", r.module());
                    m.put("buildId", r.buildId());
                    m.put("region", hex(r.regionAddress()));
                    m.put("regionSize", r.regionSize());
                    m.put("functions", r.functions().stream().map(f -> Map.of("name", f.name(),
                            "address", hex(f.oldAddress()), "replacement", hex(f.newAddress()))).toList());
                    m.put("replacedPatches", r.replacedPatches());
                    m.put("pauseMicros", r.pauseNanos() / 1000.0);
                    m.put("attempts", r.attempts());
                    m.put("abandoned", r.abandoned());
                    m.put("longestPauseMicros", r.longestNanos() / 1000.0);
                    PauseReport.json(r.pause(), m);
                    m.put("message", r.message());
                } else {
                    m.put("outcome", "failed");
                    m.put("exitCode", l.code());
                    m.put("error", l.error());
                }
                results.add(m);
            }
            doc.put("results", results);
            var sigs = new ArrayList<Map<String, Object>>();
            for (var c : trusted) {
                var sig = c.patch().signature().orElseThrow();
                var m = new LinkedHashMap<String, Object>();
                m.put("keyId", sig.keyId());
                m.put("trustedSigner", c.trustedAs());
                m.put("claimedSigner", sig.signer());
                m.put("file", c.file().toString());
                m.put("patch", c.patch().id());
                m.put("signer", sig.signer()); // the claim, as before: kept for scripts that read it
                m.put("trustedAs", c.trustedAs());
                sigs.add(m);
            }
            doc.put("signatures", sigs);
            if (which.all) {
                doc.put("summary", Map.of("applied", count(lines, Patcher.Outcome.APPLIED),
                        "alreadyApplied", count(lines, Patcher.Outcome.ALREADY_APPLIED),
                        "failed", lines.stream().filter(l -> l.result() == null).count(),
                        "notMatching", skipped));
            }
            JsonOutput.print(out, doc);
        } else {
            for (var c : trusted) {
                out.println(c.file() + ": patch " + c.patch().id() + " signed by "
                        + c.patch().signature().orElseThrow().describe(c.trustedAs()));
            }
            for (var l : lines) {
                out.println(text(l));
            }
            if (which.all) {
                out.printf("summary: %d applied, %d already applied, %d failed, %s without a matching module%n",
                        count(lines, Patcher.Outcome.APPLIED), count(lines, Patcher.Outcome.ALREADY_APPLIED),
                        lines.stream().filter(l -> l.result() == null).count(), TextTable.count(skipped, "process"));
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
            case APPLIED -> String.format("%s: applied %s to %s: %s; %s%s%s", who, r.patchId(),
                    r.module(), String.join(", ", fs), PauseReport.text(r.pause()),
                    attempts(r.attempts(), r.abandoned(), r.longestNanos()),
                    r.replacedPatches().isEmpty() ? "" : "; replaced " + String.join(", ", r.replacedPatches()));
        };
    }

    /** "(after N attempts; K abandoned past the budget, the longest held M ms)", or nothing after one. */
    static String attempts(int attempts, int abandoned, long longestNanos) {
        if (attempts <= 1) {
            return "";
        }
        return " (after " + attempts + " attempts" + (abandoned == 0 ? "" : String.format("; %d abandoned past the"
                + " --max-pause budget and undone, the longest held %.1f ms", abandoned, longestNanos / 1e6)) + ")";
    }

    static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }
}
