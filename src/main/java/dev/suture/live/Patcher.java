package dev.suture.live;

import dev.suture.SutureException;
import dev.suture.patch.PatchFile;
import dev.suture.proc.Hold;
import dev.suture.proc.Maps;
import dev.suture.proc.ProcessIds;
import dev.suture.proc.RemoteMemory;
import dev.suture.unwind.CodeMap;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The live layer's entry points: apply a patch to a running process, revert patches, and list what is applied.
 * Every operation attaches, does its transaction and detaches; nothing is kept between calls — the target's own
 * memory records what is applied (docs/region-format.md).
 */
public final class Patcher {
    private Patcher() {}

    /** How long a window may hold the target's threads before it is abandoned and retried ({@code --max-pause}). */
    public static final Duration DEFAULT_MAX_PAUSE = Duration.ofMillis(50);

    /**
     * How to apply. {@code replace}: swap every earlier patch of the module for this one in one transaction;
     * {@code maxPause}: the budget of a window (docs/apply.md).
     */
    public record ApplyOptions(Duration timeout, boolean dryRun, boolean replace, Duration maxPause) {
        public ApplyOptions(Duration timeout, boolean dryRun, boolean replace) {
            this(timeout, dryRun, replace, DEFAULT_MAX_PAUSE);
        }

        public static ApplyOptions defaults() {
            return new ApplyOptions(Duration.ofMillis(5000), false, false);
        }
    }

    public enum Outcome { APPLIED, ALREADY_APPLIED, DRY_RUN }

    /** One replaced function: where it was and where its replacement is. */
    public record FunctionPatch(String name, long oldAddress, long newAddress) {}

    /**
     * What apply did. {@code pauseNanos}: the stop-the-world window of the successful attempt; {@code attempts}:
     * how many windows it took (the earlier ones found a replaced function busy, or ran past the budget);
     * {@code abandoned}: how many ran past the budget and were undone; {@code longestNanos}: the longest any held;
     * {@code pause}: every hold of the transaction, and how long the window held every thread at once.
     */
    public record ApplyResult(int pid, String patchId, String module, String buildId, Outcome outcome,
                              long regionAddress, long regionSize, List<FunctionPatch> functions,
                              List<String> replacedPatches, long pauseNanos, int attempts, int abandoned,
                              long longestNanos, String message, Pause pause) {
        ApplyResult withHolds(List<Hold> holds) {
            return new ApplyResult(pid, patchId, module, buildId, outcome, regionAddress, regionSize, functions,
                    replacedPatches, pauseNanos, attempts, abandoned, longestNanos, message, pause.withHolds(holds));
        }
    }

    /**
     * What revert did for one patch; the window's figures as in {@link ApplyResult} ({@code pause}: the holds of
     * the whole revert, which reverts its patches in one window).
     */
    public record RevertResult(int pid, String patchId, String module, List<String> functions, long pauseNanos,
                               int attempts, int abandoned, long longestNanos, Pause pause) {
        RevertResult withHolds(List<Hold> holds) {
            return new RevertResult(pid, patchId, module, functions, pauseNanos, attempts, abandoned, longestNanos,
                    pause.withHolds(holds));
        }
    }

    /** A patch found applied in a process, from its region header. */
    public record AppliedPatch(int pid, String patchId, String buildId, String module, String targetName,
                               long regionAddress, long regionSize, int sequence, String state, Instant applied,
                               List<FunctionPatch> functions, long jumpTable, int jumpTableEntries) {}

    /**
     * How recovery ended: no journal, the journal's process gone, the transaction finished, or undone; or (for one
     * process of {@code recover --all}) it failed, and nothing was done to that process.
     */
    public enum RecoverOutcome { NOTHING, GONE, FINISHED, ROLLED_BACK, FAILED }

    /**
     * What recover did for one process. {@code operation}: the interrupted transaction (APPLY, REVERT), null
     * when there was none or it could not be read; {@code threadsReturned}: threads found parked in an injection
     * stub and given back; {@code failure}: what kind of failure a FAILED outcome was, else null; {@code pause}:
     * every hold of the recovery, and how long its last window held every thread at once.
     */
    public record RecoverResult(int pid, RecoverOutcome outcome, String operation, List<Integer> threadsReturned,
                                String message, SutureException.Kind failure, Pause pause) {
        public RecoverResult(int pid, RecoverOutcome outcome, String operation, List<Integer> threadsReturned,
                             String message, SutureException.Kind failure) {
            this(pid, outcome, operation, threadsReturned, message, failure, Pause.NONE);
        }

        RecoverResult withHolds(List<Hold> holds) {
            return new RecoverResult(pid, outcome, operation, threadsReturned, message, failure,
                    pause.withHolds(holds));
        }
    }

    /**
     * Runs now, once per JVM, the rehearsal every transaction runs before its first hold (docs/apply.md): for a
     * caller that patches later and wants that transaction to start warm, and for the launcher's AOT training run,
     * so that the cache holds the classes the holds use. Best effort, as in a transaction.
     */
    public static void rehearse() {
        Preparation.rehearseOnce();
    }

    public static ApplyResult apply(int pid, PatchFile patch, ApplyOptions options) {
        return ApplyTransaction.apply(pid, patch, options);
    }

    /** Reverts the named patches (or all when {@code ids} is empty and {@code all}), newest first. */
    public static List<RevertResult> revert(int pid, List<String> ids, boolean all, Duration timeout) {
        return revert(pid, ids, all, timeout, DEFAULT_MAX_PAUSE);
    }

    /** {@link #revert(int, List, boolean, Duration)} with a window budget other than the default. */
    public static List<RevertResult> revert(int pid, List<String> ids, boolean all, Duration timeout,
                                            Duration maxPause) {
        if (ids.isEmpty() && !all) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, "name the patches to revert, or --all");
        }
        return RevertTransaction.revert(pid, ids, all, timeout, maxPause);
    }

    /**
     * Finishes or undoes the transaction an interrupted suture left on {@code pid}, from its journal
     * (docs/journal.md); {@code timeout} bounds the wait for a safe window, as for apply.
     */
    public static RecoverResult recover(int pid, Duration timeout) {
        return recover(pid, timeout, DEFAULT_MAX_PAUSE);
    }

    /** {@link #recover(int, Duration)} with a window budget other than the default. */
    public static RecoverResult recover(int pid, Duration timeout, Duration maxPause) {
        return Recovery.recover(pid, timeout, maxPause);
    }

    /** {@link #recover} for every process with a journal in the run directory. */
    public static List<RecoverResult> recoverAll(Duration timeout, Duration maxPause) {
        return Recovery.recoverAll(timeout, maxPause);
    }

    /** A transaction an interrupted suture left on a process: what it was, and the journal that says so. */
    public record Interrupted(int pid, String description, Path journal) {}

    /**
     * The interrupted transactions that await {@code suture recover}: of {@code pid}, or of every process when
     * null. Journals of processes that are gone are not listed.
     */
    public static List<Interrupted> interrupted(Integer pid) {
        var out = new ArrayList<Interrupted>();
        for (var p : Recovery.journals(pid)) {
            out.add(new Interrupted(p.pid(), p.describe(), p.file()));
        }
        return out;
    }

    /** The run directory, created if missing and refused (exit 5) unless it is in trusted hands (principle 9). */
    public static Path checkedRunDirectory() {
        return RunDirectory.ensure();
    }

    /** Where journals and per-process locks live (docs/journal.md); not checked here. */
    public static Path runDirectory() {
        return RunDirectory.path();
    }

    /** The patches applied in process {@code pid}, read from its memory without stopping it. */
    public static List<AppliedPatch> applied(int pid) {
        ProcessIds.requireUserProcess(pid);
        var maps = Maps.read(pid);
        try (var memory = RemoteMemory.open(pid)) {
            var out = new ArrayList<AppliedPatch>();
            for (var r : Regions.scan(pid, maps, memory)) {
                out.add(describe(pid, r));
            }
            return out;
        }
    }

    /**
     * The code of the patches applied in {@code pid}, with the CFI of their new functions, for the unwinder
     * ({@link dev.suture.unwind.ProcessStacks#take(int, boolean, List)}): read from its memory without stopping it.
     */
    public static List<CodeMap.Range> regionCode(int pid) {
        var maps = Maps.read(pid);
        try (var memory = RemoteMemory.open(pid)) {
            return RegionCode.of(pid, maps, memory);
        }
    }

    /** The patches applied in every process this user may read; one that exits meanwhile, or is not ours, is passed. */
    public static List<AppliedPatch> appliedEverywhere() {
        var found = new ArrayList<AppliedPatch>();
        for (int p : Processes.all()) {
            try {
                found.addAll(applied(p));
            } catch (SutureException e) {
                if (e.kind() != SutureException.Kind.VANISHED && e.kind() != SutureException.Kind.NOT_PERMITTED) {
                    throw e;
                }
            }
        }
        return found;
    }

    static AppliedPatch describe(int pid, Regions.Found r) {
        var h = r.header();
        var fs = h.functions().stream()
                .map(f -> new FunctionPatch(f.name(), f.oldAddress(), f.newAddress())).toList();
        Instant applied = h.appliedNanos() == 0 ? null
                : Instant.ofEpochSecond(0, h.appliedNanos());
        return new AppliedPatch(pid, h.patchId(), h.buildId(), h.modulePath(), h.targetName(), r.address(),
                h.regionSize(), h.sequence(), h.state().name().toLowerCase(Locale.ROOT), applied, fs,
                r.address() + h.layout().jumpTableOffset(), h.layout().jumpTableCount());
    }
}
