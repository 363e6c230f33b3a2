package dev.suture.live;

import dev.suture.SutureException;
import dev.suture.proc.Mapping;
import dev.suture.proc.Maps;
import dev.suture.proc.Registers;
import dev.suture.proc.Tracer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * {@code suture recover}: ends a transaction that suture did not (it was killed, or the machine ran out of
 * memory) from its journal, so the target is fully patched or exactly as it was (docs/journal.md). First every
 * borrowed thread gets its registers back; then an apply that reached its commit is finished and one that did
 * not is undone, and a revert is always finished — each through the same safety window as the transaction.
 * Recovery journals its own steps in the same file, so it may itself be interrupted and run again.
 */
final class Recovery {
    private Recovery() {}

    /** Recovers {@code pid} from its journal, if it has one. */
    static Patcher.RecoverResult recover(int pid, Duration timeout, Duration maxPause) {
        try (var lock = TargetLock.acquire(pid, "recover")) {
            var found = Journal.read(pid);
            if (found.isEmpty()) {
                return new Patcher.RecoverResult(pid, Patcher.RecoverOutcome.NOTHING, null, List.of(),
                        "pid " + pid + " has no journal in " + Journal.directory() + "; nothing to recover");
            }
            var pending = found.get();
            if (!pending.sameProcess()) {
                delete(pending.file());
                return new Patcher.RecoverResult(pid, Patcher.RecoverOutcome.GONE, pending.operation().name(), List.of(),
                        "the process of " + pending.describe() + " is gone (pid " + pid + " exited"
                                + (Files.isDirectory(Path.of("/proc/" + pid)) ? " and was reused" : "")
                                + "); its journal was removed");
            }
            Rehearsal.ensure();
            try (Tracer tracer = Tracer.attach(pid); var journal = Journal.resume(pending)) {
                tracer.injectionLog(journal);
                var threads = giveThreadsBack(tracer, pending.injections(), pending.stubs());
                var run = new Run(pid, tracer, journal, pending, timeout, maxPause);
                var outcome = switch (pending.operation()) {
                    case APPLY -> run.apply();
                    case REVERT -> run.revert();
                };
                journal.end();
                tracer.injectionLog(null);
                String back = threads.isEmpty() ? "" : "; thread(s) " + threads + " got their registers back";
                return new Patcher.RecoverResult(pid, outcome, pending.operation().name(), threads,
                        "pid " + pid + ": " + pending.describe() + " was " + (outcome == Patcher.RecoverOutcome.FINISHED
                                ? "finished" : "rolled back") + back);
            }
        }
    }

    /** Recovers every process that has a journal in the run directory. */
    static List<Patcher.RecoverResult> recoverAll(Duration timeout, Duration maxPause) {
        var out = new ArrayList<Patcher.RecoverResult>();
        for (int pid : Journal.pidsWith(".journal")) {
            out.add(recover(pid, timeout, maxPause));
        }
        TargetLock.removeStale();
        return out;
    }

    /** The journals of live processes (of {@code pid} only, unless null); unreadable ones are skipped. */
    static List<Journal.Pending> journals(Integer pid) {
        var out = new ArrayList<Journal.Pending>();
        for (int p : pid == null ? Journal.pidsWith(".journal") : List.of(pid)) {
            try {
                Journal.read(p).filter(Journal.Pending::sameProcess).ifPresent(out::add);
            } catch (SutureException e) {
                // damaged or unreadable: recover -p says why
            }
        }
        return out;
    }

    /**
     * A thread suture borrowed for a system call may sit in the stub's {@code jmp .} (or before its
     * {@code syscall}): it gets the registers it had before it was borrowed. Its own interrupted system call then
     * restarts as it would have. Then every stub still in place gets its original bytes back.
     */
    private static List<Integer> giveThreadsBack(Tracer tracer, List<Journal.Injection> injections,
                                                 List<Journal.Stub> stubs) {
        if (injections.isEmpty() && stubs.isEmpty()) {
            return List.of();
        }
        return tracer.run(() -> {
            var back = new ArrayList<Integer>();
            tracer.stopAll();
            try {
                var threads = tracer.threads();
                for (var in : injections) {
                    if (!threads.contains(in.tid())) {
                        continue; // the thread has exited
                    }
                    long rip = tracer.registers(in.tid()).rip();
                    if (Long.compareUnsigned(rip, in.stub()) >= 0
                            && Long.compareUnsigned(rip, in.stub() + in.stubCode().length) <= 0) {
                        tracer.setRegisters(in.tid(), Registers.of(in.registers()));
                        back.add(in.tid());
                    }
                }
                for (var stub : stubs) {
                    if (Arrays.equals(tracer.read(stub.address(), stub.code().length), stub.code())) {
                        tracer.write(stub.address(), stub.original());
                    }
                }
            } finally {
                tracer.resumeAll();
            }
            return back;
        });
    }

    private record Run(int pid, Tracer tracer, Journal journal, Journal.Pending pending, Duration timeout,
                       Duration maxPause) {
        /**
         * An apply whose window completed (or whose every write is in) is finished: the regions it replaced go.
         * Otherwise every write is undone — through a window that proves no thread runs the new code, since the
         * jumps written so far were live — and the region goes.
         */
        Patcher.RecoverOutcome apply() {
            var maps = Maps.read(pid);
            var region = pending.region();
            boolean mapped = region != null && !pending.unmapped().contains(region.address())
                    && ours(maps, region.address());
            var writes = pending.writes().stream()
                    .filter(w -> mapped || region == null || !inside(w.address(), region.address(), region.size()))
                    .toList();
            boolean allNew = !writes.isEmpty() && writes.stream().allMatch(this::holdsNew);
            if (mapped && (pending.committed() || allNew)) {
                unmapReplaced(maps);
                return Patcher.RecoverOutcome.FINISHED;
            }
            var undo = new ArrayList<ApplyTransaction.Write>();
            for (var w : writes) {
                byte[] current = tracer.read(w.address(), w.undo().length);
                if (!Arrays.equals(current, w.undo())) {
                    requireEither(w, current);
                    undo.add(new ApplyTransaction.Write(w.address(), w.undo(), current));
                }
            }
            if (!undo.isEmpty()) {
                var code = new Image.Range("the interrupted patch's code", region.textStart(), region.textEnd());
                Window.run(pid, tracer, List.of(code), undo, timeout, maxPause, "recover (undoing " + pending.what() + ")");
            }
            if (mapped) {
                tracer.munmap(region.address(), region.size());
                journal.unmapped(region.address());
            }
            return Patcher.RecoverOutcome.ROLLED_BACK;
        }

        /** A revert is always finished: its remaining writes, once no thread runs the patch's code, then the unmap. */
        Patcher.RecoverOutcome revert() {
            var maps = Maps.read(pid);
            var remaining = new ArrayList<ApplyTransaction.Write>();
            for (var w : pending.writes()) {
                var unmapped = pending.unmaps().stream()
                        .filter(u -> inside(w.address(), u.address(), u.size()) && !ours(maps, u.address()))
                        .findAny();
                if (unmapped.isPresent()) {
                    continue; // a state field of a region already gone
                }
                byte[] current = tracer.read(w.address(), w.bytes().length);
                if (!Arrays.equals(current, w.bytes())) {
                    requireEither(w, current);
                    remaining.add(new ApplyTransaction.Write(w.address(), w.bytes(), current));
                }
            }
            if (!remaining.isEmpty()) {
                var forbidden = pending.forbidden().stream()
                        .map(r -> new Image.Range("the reverted patch's code", r.start(), r.end())).toList();
                Window.run(pid, tracer, forbidden, remaining, timeout, maxPause, "recover (finishing " + pending.what() + ")");
            }
            unmapReplaced(maps);
            return Patcher.RecoverOutcome.FINISHED;
        }

        private void unmapReplaced(List<Mapping> maps) {
            try (var memory = RemoteMemory.open(pid)) {
                for (var found : Regions.scan(pid, maps, memory)) {
                    for (var u : pending.unmaps()) {
                        if (found.address() == u.address() && found.header().patchId().equals(u.patchId())) {
                            tracer.munmap(u.address(), u.size());
                        }
                    }
                }
            }
        }

        private boolean holdsNew(ApplyTransaction.Write w) {
            byte[] current = new byte[w.bytes().length];
            return tracer.read(w.address(), current, 0, current.length) == current.length
                    && Arrays.equals(current, w.bytes());
        }

        /** Bytes that are neither what the journal wrote nor what it found: something else changed them. */
        private void requireEither(ApplyTransaction.Write w, byte[] current) {
            if (!Arrays.equals(current, w.bytes()) && !Arrays.equals(current, w.undo())) {
                throw new SutureException(SutureException.Kind.UNSAFE, String.format("pid %d: the %d bytes at 0x%x"
                        + " are %s, neither what %s wrote (%s) nor what was there before (%s): something else changed"
                        + " them, so suture will not touch the process; the journal %s is kept", pid,
                        current.length, w.address(), ApplyTransaction.hex(current), pending.what(),
                        ApplyTransaction.hex(w.bytes()), ApplyTransaction.hex(w.undo()), pending.file()));
            }
        }

        /**
         * The anonymous mapping at {@code address} is the transaction's region: it starts with the region magic,
         * or with zeros (mapped, the body not written yet).
         */
        private boolean ours(List<Mapping> maps, long address) {
            for (var m : maps) {
                if (m.start() == address && m.path().isEmpty()) {
                    byte[] head = new byte[RegionHeader.MAGIC.length];
                    if (tracer.read(address, head, 0, head.length) != head.length) {
                        return false;
                    }
                    return RegionHeader.hasMagic(head) || Arrays.equals(head, new byte[head.length]);
                }
            }
            return false;
        }
    }

    private static boolean inside(long address, long start, long size) {
        return Long.compareUnsigned(address, start) >= 0 && Long.compareUnsigned(address, start + size) < 0;
    }

    private static void delete(Path file) {
        try {
            Files.deleteIfExists(file);
        } catch (IOException e) {
            throw new SutureException(SutureException.Kind.NOT_PERMITTED, "cannot remove " + file + ": "
                    + e.getMessage());
        }
    }
}
