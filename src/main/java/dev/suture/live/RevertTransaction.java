package dev.suture.live;

import dev.suture.proc.Maps;
import dev.suture.SutureException;
import dev.suture.proc.Modules;
import dev.suture.proc.RemoteMemory;
import dev.suture.proc.Tracer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;

/**
 * The revert transaction: the same window as apply, with the patch's own code as the forbidden range, writing
 * back the bytes each patch saved, newest patch first; then the regions are unmapped. A patch another patch was
 * stacked on (the later one chained onto its jump) is refused unless that one is reverted too.
 */
final class RevertTransaction {
    private RevertTransaction() {}

    static List<Patcher.RevertResult> revert(int pid, List<String> ids, boolean all, Duration timeout,
                                             Duration maxPause) {
        try (var lock = TargetLock.acquire(pid, "revert")) {
            JournalReader.refusePending(pid);
            Tracer tracer = Tracer.attach(pid);
            List<Patcher.RevertResult> results;
            try (tracer; var journal = new TransactionJournal(pid)) {
                results = journal.settle(() -> revert(pid, ids, all, timeout, maxPause, tracer, journal));
            }
            var holds = tracer.holds(); // the release's too
            return results.stream().map(r -> r.withHolds(holds)).toList();
        }
    }

    private static List<Patcher.RevertResult> revert(int pid, List<String> ids, boolean all, Duration timeout,
                                                     Duration maxPause, Tracer tracer, TransactionJournal journal) {
        var memory = RemoteMemory.of(tracer);
        var regions = Regions.scan(pid, Maps.read(pid), memory);
        var chosen = choose(pid, regions, ids, all);
        if (chosen.isEmpty()) {
            return List.of();
        }
        refuseOutOfOrder(pid, regions, chosen);
        var forbidden = new ArrayList<Image.Range>();
        var writes = new ArrayList<ApplyTransaction.Write>();
        // what each entry will hold once the newer patches' writes are in: a patch stacked on another put its
        // jump where the older one's was, and gives the older one's back first
        var planned = new HashMap<Long, byte[]>();
        for (var r : chosen) {
            forbidden.add(ApplyTransaction.textRange(r));
            writes.add(new ApplyTransaction.Write(r.address() + RegionHeader.STATE_OFFSET,
                    ApplyTransaction.stateBytes(RegionHeader.State.REVERTING),
                    ApplyTransaction.stateBytes(r.header().state())));
            for (var f : r.header().functions()) {
                byte[] current = planned.containsKey(f.oldAddress()) ? planned.get(f.oldAddress())
                        : tracer.read(f.oldAddress(), 5);
                if (r.header().state() == RegionHeader.State.APPLIED
                        && !Arrays.equals(current, f.installedBytes())) {
                    throw new SutureException(SutureException.Kind.UNSAFE, String.format("pid %d: the entry of"
                            + " %s at 0x%x does not hold patch %s's jump (%s); something else rewrote it, so"
                            + " suture will not touch it", pid, f.name(), f.oldAddress(), r.header().patchId(),
                            ApplyTransaction.hex(current)));
                }
                if (r.header().state() != RegionHeader.State.PREPARED) {
                    writes.add(new ApplyTransaction.Write(f.oldAddress(), f.savedBytes(), current));
                    planned.put(f.oldAddress(), f.savedBytes());
                }
            }
        }
        Preparation.beforeFirstHold(tracer);
        var log = journal.begin(tracer, Journal.Operation.REVERT, "revert " + String.join(" ",
                chosen.stream().map(r -> r.header().patchId()).toList()));
        for (var f : forbidden) {
            log.forbid(f.start(), f.end());
        }
        log.writes(writes);
        for (var r : chosen) {
            log.unmap(r.address(), r.header().regionSize(), r.header().patchId());
        }
        Window.Result window;
        try {
            window = Window.run(pid, tracer, forbidden, writes, timeout, maxPause, "revert");
        } catch (RuntimeException e) {
            journal.endIfUntouched(writes);
            throw e;
        }
        journal.commit();
        var out = new ArrayList<Patcher.RevertResult>();
        var modules = chosen.stream().anyMatch(r -> r.header().layout().hasFrames()) ? Modules.of(pid) : null;
        SutureException kept = null;
        for (var r : chosen) {
            try {
                // no jump leads into the region any more: its unwind information goes from libgcc, then the region
                FrameRegistration.release(tracer, r.address(), r.header().layout(), modules, r.header().patchId());
                tracer.munmap(r.address(), r.header().regionSize());
            } catch (SutureException e) {
                if (e.kind() == SutureException.Kind.VANISHED) {
                    throw e;
                }
                kept = kept == null ? e : kept; // the region stays, its state word says so; the others go on
            }
            out.add(new Patcher.RevertResult(pid, r.header().patchId(), r.header().modulePath(),
                    r.header().functions().stream().map(RegionHeader.Function::name).toList(),
                    window.pauseNanos(), window.attempts(), window.abandoned(), window.longestNanos(),
                    new Pause(List.of(), window.allStoppedNanos(), window.waitedNanos())));
        }
        journal.end();
        if (kept != null) {
            throw new SutureException(kept.kind(), "pid " + pid + ": the jumps were taken out, but " + kept.getMessage()
                    + "; nothing runs the region's code any more", kept);
        }
        return out;
    }

    /** The regions to revert, newest first. */
    private static List<Regions.Found> choose(int pid, List<Regions.Found> regions, List<String> ids, boolean all) {
        var chosen = new LinkedHashSet<Regions.Found>();
        if (all) {
            chosen.addAll(regions);
        }
        for (String id : ids) {
            var matching = regions.stream().filter(r -> r.header().patchId().equals(id)).toList();
            if (matching.isEmpty()) {
                var applied = regions.stream().map(r -> r.header().patchId()).toList();
                throw new SutureException(SutureException.Kind.BAD_INPUT, "pid " + pid + " has no patch " + id
                        + " applied" + (applied.isEmpty() ? " (none is)" : "; applied: " + String.join(", ", applied)));
            }
            chosen.addAll(matching);
        }
        var list = new ArrayList<>(chosen);
        list.sort(Comparator.comparingInt((Regions.Found r) -> r.header().sequence()).reversed());
        return list;
    }

    /** Refuses reverting a patch whose jump a later, staying patch saved (it would restore a stale jump). */
    private static void refuseOutOfOrder(int pid, List<Regions.Found> regions, List<Regions.Found> chosen) {
        for (var r : chosen) {
            for (var later : regions) {
                if (chosen.contains(later)) {
                    continue;
                }
                for (var f : later.header().functions()) {
                    if (f.previousRegion() == r.address()) {
                        throw new SutureException(SutureException.Kind.BAD_INPUT, String.format("pid %d: patch %s"
                                + " cannot be reverted before patch %s, which was applied on top of it (%s);"
                                + " revert %s first, or both together", pid, r.header().patchId(),
                                later.header().patchId(), f.name(), later.header().patchId()));
                    }
                }
            }
        }
    }
}
