package dev.suture.live;

import dev.suture.SutureException;
import dev.suture.proc.Mapping;
import dev.suture.proc.Maps;
import dev.suture.proc.Modules;
import dev.suture.proc.ProcessIds;
import dev.suture.proc.Registers;
import dev.suture.proc.RemoteMemory;
import dev.suture.proc.StubSite;
import dev.suture.proc.Tracer;
import dev.suture.x86.Jumps;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * {@code suture recover}: ends a transaction that suture did not (it was killed, or the machine ran out of
 * memory) from its journal, so the target is fully patched or exactly as it was (docs/journal.md). First every
 * borrowed thread gets its registers back; then an apply that reached its commit is finished and one that did
 * not is undone, and a revert is always finished — each through the same safety window as the transaction.
 * Recovery journals its own steps in the same file, so it may itself be interrupted and run again.
 */
final class Recovery {
    private Recovery() {}

    /**
     * Recovers {@code pid} from its journal, if it has one. The journal is believed only as far as the process
     * bears it out ({@link JournalCheck}); a process that is gone needs no recovery, and its journal goes.
     */
    static Patcher.RecoverResult recover(int pid, Duration timeout, Duration maxPause) {
        if (pid > 0 && !Files.isDirectory(Path.of("/proc/" + pid))) {
            // no lock is made for a process that is not there; nothing can be working on it
            var left = JournalReader.read(pid);
            if (left.isEmpty()) {
                ProcessIds.requireUserProcess(pid); // says "no process N"
            }
            delete(RunDirectory.journal(pid));
            return gone(pid, left.get());
        }
        try (var lock = TargetLock.acquire(pid, "recover")) {
            var found = JournalReader.read(pid);
            if (found.isEmpty()) {
                delete(RunDirectory.journal(pid)); // a file without a header is no journal
                return new Patcher.RecoverResult(pid, Patcher.RecoverOutcome.NOTHING, null, List.of(),
                        "pid " + pid + " has no journal in " + RunDirectory.path() + "; nothing to recover", null);
            }
            var pending = found.get();
            if (!pending.sameProcess()) {
                delete(pending.file());
                return gone(pid, pending);
            }
            Tracer tracer = Tracer.attach(pid);
            Patcher.RecoverResult result;
            try (tracer) {
                JournalCheck.verify(pid, pending, RemoteMemory.of(tracer), Maps.read(pid));
                Preparation.beforeFirstHold(tracer);
                try (var journal = Journal.resume(pending)) {
                    tracer.injectionLog(journal);
                    var given = giveThreadsBack(tracer, pending.injections(), pending.stubs());
                    var threads = given.threads();
                    var steps = new Steps(pid, tracer, journal, pending, timeout, maxPause,
                            !given.stillCalling().isEmpty());
                    var done = switch (pending.operation()) {
                        case APPLY -> steps.apply();
                        case REVERT -> steps.revert();
                    };
                    var outcome = done.outcome();
                    journal.end();
                    tracer.injectionLog(null);
                    String back = threads.isEmpty() ? "" : "; thread(s) " + threads + " got their registers back";
                    result = new Patcher.RecoverResult(pid, outcome, pending.operation().name(), threads,
                            "pid " + pid + ": " + pending.describe() + " was "
                                    + (outcome == Patcher.RecoverOutcome.FINISHED ? "finished" : "rolled back") + back,
                            null, new Pause(List.of(), done.allStoppedNanos(), done.waitedNanos()));
                }
            }
            return result.withHolds(tracer.holds()); // the release's too
        }
    }

    private static Patcher.RecoverResult gone(int pid, JournalReader.Pending pending) {
        return new Patcher.RecoverResult(pid, Patcher.RecoverOutcome.GONE, pending.operation().name(), List.of(),
                "the process of " + pending.describe() + " is gone (pid " + pid + " exited"
                        + (Files.isDirectory(Path.of("/proc/" + pid)) ? " and was reused" : "")
                        + "); its journal was removed", null);
    }

    /**
     * Recovers every process that has a journal in the run directory, each on its own: a journal that cannot be
     * read or recovered is reported in its own result and never keeps the others from being recovered. Then the
     * litter of sutures and processes that are gone is removed.
     */
    static List<Patcher.RecoverResult> recoverAll(Duration timeout, Duration maxPause) {
        var out = new ArrayList<Patcher.RecoverResult>();
        for (int pid : RunDirectory.pidsWith(".journal")) {
            try {
                out.add(recover(pid, timeout, maxPause));
            } catch (SutureException e) {
                out.add(new Patcher.RecoverResult(pid, Patcher.RecoverOutcome.FAILED, null, List.of(),
                        e.getMessage(), e.kind()));
            } catch (RuntimeException e) {
                out.add(new Patcher.RecoverResult(pid, Patcher.RecoverOutcome.FAILED, null, List.of(),
                        "pid " + pid + ": " + e, SutureException.Kind.INTERNAL));
            }
        }
        RunDirectory.removeLitter();
        return out;
    }

    /** The journals of live processes (of {@code pid} only, unless null); unreadable ones are skipped. */
    static List<JournalReader.Pending> journals(Integer pid) {
        var out = new ArrayList<JournalReader.Pending>();
        try {
            for (int p : pid == null ? RunDirectory.pidsWith(".journal") : List.of(pid)) {
                try {
                    JournalReader.read(p).filter(JournalReader.Pending::sameProcess).ifPresent(out::add);
                } catch (SutureException e) {
                    // damaged or unreadable: recover -p says why
                }
            }
        } catch (SutureException e) {
            // an untrusted run directory: apply and recover say why
        }
        return out;
    }

    /**
     * A thread suture borrowed for a system call may sit in the stub's {@code jmp .} (or before its
     * {@code syscall}): it gets the registers it had before it was borrowed. Its own interrupted system call then
     * restarts as it would have. Then every stub still in place gets its original bytes back.
     */
    private static Back giveThreadsBack(Tracer tracer, List<JournalReader.Injection> injections,
                                        List<JournalReader.Stub> stubs) {
        if (injections.isEmpty() && stubs.isEmpty()) {
            return new Back(List.of(), Set.of());
        }
        var stillCalling = awaitCalls(tracer, injections);
        return new Back(tracer.onTracerThread(() -> {
            var back = new ArrayList<Integer>();
            tracer.stopAll("recover");
            try {
                var threads = tracer.threads();
                requireEveryParkedThreadJournaled(tracer, threads, injections, stubs);
                for (var in : injections) {
                    if (!threads.contains(in.tid())) {
                        continue; // the thread has exited
                    }
                    if (inStub(tracer.registers(in.tid()).rip(), in)) {
                        tracer.setRegisters(in.tid(), Registers.of(in.registers()));
                        back.add(in.tid());
                    }
                }
                for (var stub : stubs) {
                    if (stillCalling.contains(stub.address())) {
                        continue; // its thread may yet return into it: it stays in its padding, which nothing runs
                    }
                    if (Arrays.equals(tracer.read(stub.address(), stub.code().length), stub.code())) {
                        tracer.write(stub.address(), stub.original());
                    }
                }
            } finally {
                tracer.resumeAll();
            }
            return back;
        }), stillCalling);
    }

    /** The threads that got their registers back, and the stubs of those still inside a function suture called. */
    private record Back(List<Integer> threads, Set<Long> stillCalling) {}

    /**
     * A thread borrowed to run a function (an IFUNC resolver, {@link StubSite#runsAFunction}) and not journaled as
     * given back may still be inside it: below the frame the call stub's {@code call} made (16-aligned, 128 bytes
     * under the journaled rsp), whose return address into the stub is still there. Such a thread is let run, up to
     * {@link #CALL_WAIT}, to come back to the stub's {@code jmp .}, where it gets its registers back like any.
     * Returns the stubs of threads still inside when the wait ends: they stay where they are (padding no code
     * runs), so that the function returns into the stub and spins, not into padding.
     */
    private static Set<Long> awaitCalls(Tracer tracer, List<JournalReader.Injection> injections) {
        var calls = injections.stream().filter(in -> StubSite.runsAFunction(in.stubCode())).toList();
        if (calls.isEmpty()) {
            return Set.of();
        }
        long deadline = System.nanoTime() + CALL_WAIT.toNanos();
        while (true) {
            var inside = tracer.onTracerThread(() -> {
                var still = new HashSet<Long>();
                tracer.stopAll("recover");
                try {
                    var threads = tracer.threads();
                    for (var in : calls) {
                        if (threads.contains(in.tid()) && insideCall(tracer, in)) {
                            still.add(in.stub());
                        }
                    }
                } finally {
                    tracer.resumeAll();
                }
                return still;
            });
            if (inside.isEmpty() || System.nanoTime() > deadline) {
                return inside;
            }
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return inside;
            }
        }
    }

    /** Whether a held thread runs below the call stub's frame, its return address into the stub still in place. */
    private static boolean insideCall(Tracer tracer, JournalReader.Injection in) {
        var now = tracer.registers(in.tid());
        if (inStub(now.rip(), in)) {
            return false;
        }
        long frame = ((Registers.of(in.registers()).rsp() - 128) & -16L) - 8;
        if (Long.compareUnsigned(now.rsp(), frame) > 0) {
            return false; // above the frame: never started, or given back
        }
        byte[] word = tracer.read(frame, 8);
        long ret = 0;
        for (int i = 7; i >= 0; i--) {
            ret = ret << 8 | (word[i] & 0xffL);
        }
        return ret == in.stub() + StubSite.CALL_RETURN_OFFSET;
    }

    private static boolean inStub(long rip, JournalReader.Injection in) {
        return Long.compareUnsigned(rip, in.stub()) >= 0
                && Long.compareUnsigned(rip, in.stub() + in.stubCode().length) <= 0;
    }

    /** How long recovery lets a thread that runs a function for suture come back to its stub. */
    static final Duration CALL_WAIT = ProcessExternals.RESOLVER_TIMEOUT.plusMillis(500);

    /**
     * A thread that sits in a stub (in its {@code jmp .}) must be one the journal gave registers for: otherwise
     * restoring the stub's bytes would run it into padding. Checked before anything is written.
     */
    private static void requireEveryParkedThreadJournaled(Tracer tracer, List<Integer> threads,
                                                          List<JournalReader.Injection> injections,
                                                          List<JournalReader.Stub> stubs) {
        for (int tid : threads) {
            long rip = tracer.registers(tid).rip();
            for (var stub : stubs) {
                boolean inside = Long.compareUnsigned(rip, stub.address()) >= 0
                        && Long.compareUnsigned(rip, stub.address() + stub.code().length) <= 0;
                boolean journaled = injections.stream().anyMatch(in -> in.tid() == tid && in.stub() == stub.address());
                if (inside && !journaled) {
                    throw new SutureException(SutureException.Kind.UNSAFE, String.format("thread %d is parked in"
                            + " suture's stub at 0x%x, but the journal has no registers to give it back; suture will"
                            + " not remove the stub from under it, and wrote nothing", tid, stub.address()));
                }
            }
        }
    }

    /** How a recovery's steps ended, and how long their window (if one opened) held every thread at once. */
    private record Done(Patcher.RecoverOutcome outcome, long allStoppedNanos, long waitedNanos) {}

    /** The steps that finish or undo one interrupted transaction. */
    private record Steps(int pid, Tracer tracer, Journal journal, JournalReader.Pending pending, Duration timeout,
                         Duration maxPause, boolean calling) {
        /**
         * An apply whose window completed (or whose every write is in) is finished: the regions it replaced go.
         * Otherwise every write is undone — through a window that proves no thread runs the new code, since the
         * jumps written so far were live — and the region goes.
         */
        Done apply() {
            var maps = Maps.read(pid);
            var region = pending.region();
            boolean mapped = region != null && !pending.unmapped().contains(region.address())
                    && ours(maps, region.address(), region.size());
            var writes = pending.writes().stream()
                    .filter(w -> mapped || region == null || !region.contains(w.address()))
                    .toList();
            boolean allNew = !writes.isEmpty() && writes.stream().allMatch(this::holdsNew);
            if (mapped && (pending.committed() || allNew)) {
                unmapReplaced(maps);
                return new Done(Patcher.RecoverOutcome.FINISHED, 0, 0);
            }
            var undo = new ArrayList<ApplyTransaction.Write>();
            for (var w : writes) {
                byte[] current = tracer.read(w.address(), w.undo().length);
                if (!Arrays.equals(current, w.undo())) {
                    requireEither(w, current);
                    undo.add(new ApplyTransaction.Write(w.address(), w.undo(), current));
                }
            }
            var window = Window.Result.NONE;
            if (!undo.isEmpty()) {
                var code = new Image.Range("the interrupted patch's code", region.textStart(), region.textEnd());
                window = Window.run(pid, tracer, List.of(code), undo, timeout, maxPause, "recover (undoing "
                        + pending.what() + ")");
            }
            if (mapped) {
                unmap(region.address(), region.size());
                journal.unmapped(region.address());
            }
            return new Done(Patcher.RecoverOutcome.ROLLED_BACK, window.allStoppedNanos(), window.waitedNanos());
        }

        /** A revert is always finished: its remaining writes, once no thread runs the patch's code, then the unmap. */
        Done revert() {
            var maps = Maps.read(pid);
            var remaining = new ArrayList<ApplyTransaction.Write>();
            for (var w : pending.writes()) {
                var unmapped = pending.unmaps().stream()
                        .filter(u -> u.contains(w.address()) && !ours(maps, u.address(), u.size()))
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
            var window = Window.Result.NONE;
            if (!remaining.isEmpty()) {
                var forbidden = new ArrayList<Image.Range>();
                for (var r : pending.forbidden()) {
                    forbidden.add(new Image.Range("the reverted patch's code", r.start(), r.end()));
                }
                // and the code of every region the revert removes, whatever the journal's forbid records say
                for (var found : replacedRegions(maps)) {
                    forbidden.add(ApplyTransaction.textRange(found));
                }
                window = Window.run(pid, tracer, forbidden, remaining, timeout, maxPause,
                        "recover (finishing " + pending.what() + ")");
            }
            unmapReplaced(maps);
            return new Done(Patcher.RecoverOutcome.FINISHED, window.allStoppedNanos(), window.waitedNanos());
        }

        /** The regions named by the journal's unmap records that are still in the process, by address and patch id. */
        private List<Regions.Found> replacedRegions(List<Mapping> maps) {
            var out = new ArrayList<Regions.Found>();
            try (var memory = RemoteMemory.open(pid)) {
                for (var found : Regions.scan(pid, maps, memory)) {
                    for (var u : pending.unmaps()) {
                        if (found.address() == u.address() && found.header().patchId().equals(u.patchId())) {
                            out.add(found);
                        }
                    }
                }
            }
            return out;
        }

        private void unmapReplaced(List<Mapping> maps) {
            for (var found : replacedRegions(maps)) {
                unmap(found.address(), found.header().regionSize());
            }
        }

        /**
         * Unmaps a region only when nothing leads into it any more: no replaced function's entry (as any region
         * header lists them) holds a jump into it, and no other region keeps such a jump as its saved bytes. A
         * journal that lies about the writes must not make recovery pull code from under a live jump.
         */
        private void unmap(long address, long size) {
            var maps = Maps.read(pid);
            RegionHeader own = null;
            try (var memory = RemoteMemory.open(pid)) {
                for (var r : Regions.scan(pid, maps, memory)) {
                    if (r.address() == address) {
                        own = r.header();
                    }
                    for (var f : r.header().functions()) {
                        byte[] now = tracer.read(f.oldAddress(), 5);
                        String held = intoRegion(f.oldAddress(), now, address, size) ? "holds"
                                : r.address() != address && intoRegion(f.oldAddress(), f.savedBytes(), address, size)
                                ? "would get back, on reverting patch " + r.header().patchId() + "," : null;
                        if (held != null) {
                            throw new SutureException(SutureException.Kind.UNSAFE, String.format("pid %d: the entry"
                                    + " of %s at 0x%x %s a jump into the region at 0x%x, so suture will not unmap"
                                    + " it; the journal %s is kept and nothing more was done. See 'suture info -p"
                                    + " %d'", pid, f.name(), f.oldAddress(), held, address, pending.file(), pid));
                        }
                    }
                }
            }
            if (own != null && own.layout().hasFrames()) {
                if (calling) {
                    // it may be registering or taking back this region's unwind information, from its helper
                    throw new SutureException(SutureException.Kind.UNSAFE, String.format("pid %d: a thread still"
                            + " runs a function suture called in it, so the region at 0x%x stays mapped; the journal"
                            + " %s is kept: run 'suture recover -p %d' again", pid, address, pending.file(), pid));
                }
                FrameRegistration.release(tracer, address, own.layout(), Modules.of(pid), own.patchId());
            }
            tracer.munmap(address, size);
        }

        private static boolean intoRegion(long from, byte[] entry, long address, long size) {
            long to = Jumps.jmpRel32Target(entry, from);
            return to != -1 && JournalReader.inside(to, address, size);
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
         * The anonymous mapping at {@code address} is the transaction's region of {@code size} bytes: it starts
         * with a region header that says so, or it is all zeros (mapped, the body not written yet) in a private
         * anonymous mapping of exactly that size.
         */
        private boolean ours(List<Mapping> maps, long address, long size) {
            long end = address;
            boolean found = false;
            for (var m : maps) {
                if (m.start() == end && m.path().isEmpty() && Long.compareUnsigned(m.end(), address + size) <= 0) {
                    found |= m.start() == address;
                    end = m.end();
                }
            }
            if (!found || end != address + size || size > MAX_REGION_BYTES) {
                return false;
            }
            byte[] body = new byte[(int) size];
            if (tracer.read(address, body, 0, body.length) != body.length) {
                return false;
            }
            if (RegionHeader.hasMagic(body)) {
                return RegionHeader.claimedSize(body) <= body.length && regionSize(body) == size;
            }
            return Arrays.equals(body, new byte[body.length]);
        }

        private long regionSize(byte[] body) {
            try {
                int headerSize = RegionHeader.claimedSize(body);
                return RegionHeader.decode(Arrays.copyOf(body, headerSize), "pid " + pid + " region").regionSize();
            } catch (RuntimeException e) {
                return -1;
            }
        }
    }

    /** Larger than any region suture maps (its code, jump table, GOT and data); a larger claim is refused. */
    private static final long MAX_REGION_BYTES = 256L << 20;

    private static void delete(Path file) {
        try {
            Files.deleteIfExists(file);
        } catch (IOException e) {
            throw new SutureException(SutureException.Kind.NOT_PERMITTED, "cannot remove " + file + ": "
                    + e.getMessage());
        }
    }
}
