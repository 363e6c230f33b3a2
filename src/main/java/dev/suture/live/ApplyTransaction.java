package dev.suture.live;

import dev.suture.proc.Maps;
import dev.suture.SutureException;
import dev.suture.patch.PatchFile;
import dev.suture.patch.ReplacedFunction;
import dev.suture.sys.ProcessVanishedException;
import dev.suture.proc.Mman;
import dev.suture.proc.Module;
import dev.suture.proc.Modules;
import dev.suture.proc.RemoteMemory;
import dev.suture.proc.ThreadState;
import dev.suture.proc.Tracer;
import dev.suture.x86.DoesNotFitException;
import dev.suture.x86.Jumps;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;

/**
 * The apply transaction (principles 1, 4-6): everything that can be done while the target runs is done first —
 * find the module, verify every replaced function's bytes, map and fill the region, link the native calls — and
 * the stop-the-world window holds only: stop all threads, check their stacks, write the 5-byte jumps and the
 * header's state, resume. A busy function means resume and retry with backoff until the timeout. Any failure
 * restores every byte written and unmaps the region.
 */
final class ApplyTransaction {
    private ApplyTransaction() {}

    static Patcher.ApplyResult apply(int pid, PatchFile patch, Patcher.ApplyOptions options) {
        try (var lock = TargetLock.acquire(pid, "apply " + patch.id())) {
            JournalReader.refusePending(pid);
            Tracer tracer = Tracer.attach(pid);
            Patcher.ApplyResult result;
            try (tracer; var journal = new TransactionJournal(pid)) {
                result = journal.settle(() -> new Steps(pid, patch, options, tracer, journal).apply());
            }
            return result.withHolds(tracer.holds()); // the release's too

        }
    }

    /** A write to do inside the window, and the bytes to put back if the transaction fails. */
    record Write(long address, byte[] bytes, byte[] undo) {}

    /** The steps of one apply, over what they share: the target, the patch, its tracer and its journal. */
    private static final class Steps {
        final int pid;
        final PatchFile patch;
        final Patcher.ApplyOptions options;
        final Tracer tracer;
        final RemoteMemory memory;
        final TransactionJournal journal;

        Steps(int pid, PatchFile patch, Patcher.ApplyOptions options, Tracer tracer, TransactionJournal journal) {
            this.pid = pid;
            this.patch = patch;
            this.options = options;
            this.tracer = tracer;
            this.memory = RemoteMemory.of(tracer);
            this.journal = journal;
        }

        Patcher.ApplyResult apply() {
            var maps = Maps.read(pid);
            var regions = Regions.scan(pid, maps, memory);
            Modules modules = Modules.of(pid);
            Module module = modules.byBuildId(patch.targetBuildId()).orElseThrow(() -> noModule(modules));
            for (var r : regions) {
                if (r.header().patchId().equals(patch.id()) && r.header().buildId().equals(patch.targetBuildId())
                        && r.header().state() == RegionHeader.State.APPLIED) {
                    return new Patcher.ApplyResult(pid, patch.id(), module.path(), patch.targetBuildId(),
                            Patcher.Outcome.ALREADY_APPLIED, r.address(), r.header().regionSize(),
                            functions(r.header()), List.of(), 0, 0, 0, 0,
                            "patch " + patch.id() + " is already applied to pid " + pid + " (" + module.name()
                                    + "); nothing to do", Pause.NONE);
                }
            }
            var ofModule = regions.stream().filter(r -> r.header().buildId().equals(patch.targetBuildId())
                    && r.header().moduleBias() == module.loadBias()).toList();
            var replacing = options.replace() ? ofModule : List.<Regions.Found>of();
            var patched = new PatchedEntries(regions, replacing);
            var saved = verify(module, patched);

            // a C++ program's unwinder must find the new code's CFI: registered with its libgcc (FrameRegistration)
            var frames = FrameRegistration.find(modules);
            var plan = Binder.plan(patch, module.path(), frames.isPresent());
            String exe = modules.executable().map(Module::path).orElse(null);
            long at = Placement.find(maps, module.start(), module.end(), plan.size(), plan.maxEnd(),
                    Placement.brkZone(maps, exe), "pid " + pid + " (" + module.name() + ")");
            var externals = new ProcessExternals(pid, modules, module, memory);
            // Bound before the region is mapped, so whatever the patch cannot do fails before the target is touched
            var image = Binder.bind(patch, plan, at, module.loadBias(), externals);
            if (options.dryRun()) {
                String calls = externals.needsResolverCalls() ? " and call the IFUNC resolvers of "
                        + String.join(", ", externals.resolversToCall()) : "";
                String register = plan.layout().hasFrames() ? ", register the new code's unwind information with "
                        + frames.get().module().name() : "";
                return result(module, image, Patcher.Outcome.DRY_RUN, replacing, Window.Result.NONE, "dry run: would map "
                        + plan.size() + " bytes at 0x" + Long.toHexString(at) + calls + register + " and write "
                        + image.entries().size() + " jump(s); nothing was written");
            }
            var text = textRange(at, plan.layout());
            journal.begin(tracer, Journal.Operation.APPLY, "apply " + patch.id()).region(at, plan.size(),
                    text.start(), text.end());
            // after the fsync'd records, right before the first hold: waiting for the disk leaves the cores idle
            // and the first hold slower (docs/apply.md)
            Preparation.beforeFirstHold(tracer);
            if (externals.needsResolverCalls()) {
                try {
                    externals.callResolvers(tracer);
                    image = Binder.bind(patch, plan, at, module.loadBias(), externals);
                } catch (RuntimeException e) {
                    journal.endIfUntouched(List.of()); // a resolver's thread is given back: nothing is changed
                    throw e;
                }
            }
            long base;
            try {
                base = tracer.mmap(at, plan.size(), Mman.PROT_READ | Mman.PROT_EXEC,
                        Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS | Mman.MAP_FIXED_NOREPLACE);
            } catch (RuntimeException e) {
                journal.endIfUntouched(List.of()); // the mmap failed: nothing is mapped
                throw e;
            }
            var writes = new ArrayList<Write>();
            try {
                if (base != at) {
                    throw new SutureException(SutureException.Kind.INTERNAL, String.format("pid %d: the region"
                            + " was mapped at 0x%x, not at 0x%x", pid, base, at));
                }
                var window = install(module, modules, plan, base, image, regions, replacing, patched, saved,
                        writes, frames);
                return finish(module, modules, window, replacing);
            } catch (RuntimeException e) {
                if (journal.committed()) {
                    throw e; // the jumps are in: the region must stay; recover finishes the rest
                }
                try {
                    // registered before the window: taken back from libgcc first, or the region stays
                    FrameRegistration.release(tracer, base, plan.layout(), modules, patch.id());
                    tracer.munmap(base, plan.size());
                    journal.journal().unmapped(base);
                    long end = base + plan.size();
                    journal.endIfUntouched(writes.stream()
                            .filter(w -> w.address() < base || w.address() >= end).toList());
                } catch (RuntimeException suppressed) {
                    e.addSuppressed(suppressed);
                }
                throw e;
            }
        }

        /** After the window: the replaced patches' regions go, and the journal with them. */
        private Patcher.ApplyResult finish(Module module, Modules modules, Installed installed,
                                           List<Regions.Found> replacing) {
            for (var r : replacing) {
                try {
                    FrameRegistration.release(tracer, r.address(), r.header().layout(), modules, r.header().patchId());
                    tracer.munmap(r.address(), r.header().regionSize());
                } catch (RuntimeException ignored) {
                    // the old code is unreachable already; a leftover mapping is harmless (one whose unwind
                    // information libgcc could not give back must stay)
                }
            }
            journal.end();
            return result(module, installed.image(), Patcher.Outcome.APPLIED, replacing, installed.window(),
                    "applied");
        }

        private record Installed(Image image, Window.Result window) {}

        private Installed install(Module module, Modules modules, Binder.Plan plan, long base, Image image,
                                  List<Regions.Found> regions, List<Regions.Found> replacing, PatchedEntries patched,
                                  List<byte[]> saved, List<Write> writes,
                                  Optional<FrameRegistration.EntryPoints> frames) {
            var layout = plan.layout();
            if (layout.dataOffset() < plan.size()) {
                tracer.mprotect(base + layout.dataOffset(), plan.size() - layout.dataOffset(),
                        Mman.PROT_READ | Mman.PROT_WRITE);
            }
            var functions = new ArrayList<RegionHeader.Function>();
            for (int i = 0; i < image.entries().size(); i++) {
                var e = image.entries().get(i);
                byte[] current = saved.get(i);
                byte[] jump = Jumps.jmpRel32(e.oldAddress(), e.newAddress());
                byte[] restore = patched.original(e.oldAddress(), current);
                long previous = replacing.isEmpty() ? patched.regionOfJump(e.oldAddress(), current) : 0;
                byte[] savedBytes = previous != 0 || replacing.isEmpty() ? current : restore;
                functions.add(new RegionHeader.Function(e.name(), e.oldAddress(), e.oldSize(), e.newAddress(),
                        e.newSize(), previous, savedBytes, jump));
                writes.add(new Write(e.oldAddress(), jump, current));
            }
            // --replace: entries of the old patches the new one does not cover get their original bytes back
            for (var r : replacing) {
                for (var f : r.header().functions()) {
                    boolean covered = image.entries().stream().anyMatch(e -> e.oldAddress() == f.oldAddress());
                    if (!covered && writes.stream().noneMatch(w -> w.address() == f.oldAddress())) {
                        byte[] current = tracer.read(f.oldAddress(), 5);
                        writes.add(new Write(f.oldAddress(), patched.original(f.oldAddress(), current), current));
                    }
                }
            }
            int sequence = regions.stream().mapToInt(r -> r.header().sequence()).max().orElse(0) + 1;
            long now = System.currentTimeMillis() * 1_000_000L;
            // applied_ns is the time the window opens, give or take; PREPARED says the jumps are not in yet
            var header = new RegionHeader(RegionHeader.FORMAT_VERSION, RegionHeader.State.PREPARED,
                    plan.headerSize(), plan.size(), now, now, module.loadBias(), sequence, layout, patch.id(),
                    patch.targetBuildId(), module.path(), patch.targetName(), functions);
            byte[] bytes = image.bytes();
            System.arraycopy(header.encode(), 0, bytes, 0, plan.headerSize());
            if (layout.hasFrames()) {
                FrameRegistration.lay(bytes, layout);
            }
            tracer.write(base, bytes);
            if (layout.hasFrames()) {
                // before the window: the first exception through the new code may come right after it
                FrameRegistration.register(tracer, base, layout, modules, frames.orElseThrow(), patch.id());
            }

            var forbidden = new ArrayList<>(image.replacedCode());
            forbidden.addAll(patched.currentReplacements(image));
            for (var r : replacing) {
                forbidden.add(textRange(r));
            }
            writes.add(new Write(base + RegionHeader.STATE_OFFSET, stateBytes(RegionHeader.State.APPLIED),
                    stateBytes(RegionHeader.State.PREPARED)));
            for (var r : replacing) {
                writes.add(new Write(r.address() + RegionHeader.STATE_OFFSET,
                        stateBytes(RegionHeader.State.REVERTING), stateBytes(r.header().state())));
            }
            journal.journal().writes(writes);
            for (var r : replacing) {
                journal.journal().unmap(r.address(), r.header().regionSize(), r.header().patchId());
            }
            var window = Window.run(pid, tracer, forbidden, writes, options.timeout(), options.maxPause(),
                    "apply " + patch.id());
            journal.commit();
            return new Installed(image, window);
        }

        private Patcher.ApplyResult result(Module module, Image image, Patcher.Outcome outcome,
                                           List<Regions.Found> replacing, Window.Result window, String message) {
            var fs = image.entries().stream()
                    .map(e -> new Patcher.FunctionPatch(e.name(), e.oldAddress(), e.newAddress())).toList();
            return new Patcher.ApplyResult(pid, patch.id(), module.path(), patch.targetBuildId(), outcome,
                    image.base(), image.size(), fs, replacing.stream().map(r -> r.header().patchId()).toList(),
                    window.pauseNanos(), window.attempts(), window.abandoned(), window.longestNanos(), message,
                    new Pause(List.of(), window.allStoppedNanos(), window.waitedNanos()));
        }

        /**
         * Checks that each replaced function is code of the module, named as its symbols name it, and its hash
         * against live memory; returns the current 5 entry bytes of each.
         */
        private List<byte[]> verify(Module module, PatchedEntries patched) {
            var saved = new ArrayList<byte[]>();
            var code = ReplacedCode.of(module);
            for (ReplacedFunction f : patch.replaced()) {
                long address = module.runtime(f.targetAddress());
                if (f.size() > (1 << 24)) {
                    throw new DoesNotFitException(patch.file() + ": " + f.symbol() + " claims " + f.size() + " bytes");
                }
                if (!module.contains(address) || !module.contains(address + f.size() - 1)) {
                    throw new DoesNotFitException(String.format("pid %d: %s at 0x%x (%d bytes) is not inside %s"
                            + " (0x%x-0x%x): the patch was not built for this module; rebuild it from the deployed"
                            + " binary", pid, f.symbol(), address, f.size(), module.path(), module.start(),
                            module.end()));
                }
                code.require(pid, f, address);
                byte[] live = new byte[(int) f.size()];
                if (memory.read(address, live, 0, live.length) != live.length) {
                    throw new DoesNotFitException(String.format("pid %d: %s at 0x%x in %s is not readable", pid,
                            f.symbol(), address, module.name()));
                }
                byte[] current = Arrays.copyOf(live, Math.min(5, live.length));
                byte[] original = patched.original(address, current);
                System.arraycopy(original, 0, live, 0, Math.min(original.length, live.length));
                String hash = PatchFile.sha256(live);
                if (!hash.equals(f.sha256())) {
                    throw new DoesNotFitException(String.format("pid %d: function %s at 0x%x in %s differs from"
                            + " the one the patch %s was built for (sha256 %s..., the patch expects %s...): either the"
                            + " process runs another build of %s with the same build-id, or something else (a"
                            + " debugger's breakpoint, another patching tool) changed its code; nothing was written."
                            + " Rebuild the patch from the sources of the binary the process runs, or restart the"
                            + " process from an unmodified binary", pid, f.symbol(), address, module.path(),
                            patch.id(), hash.substring(0, 16), f.sha256().substring(0, 16), module.name()));
                }
                if (!f.part()) {
                    saved.add(current);
                }
            }
            return saved;
        }

        private SutureException noModule(Modules modules) {
            // a process SIGKILLed a moment ago can show maps already empty: that is a vanished process, not a
            // wrong build (a live one maps at least its executable)
            boolean none = modules.all().isEmpty();
            if (ThreadState.processGone(pid, none ? ThreadState.VANISH_GRACE_MILLIS : 0)) {
                return ProcessVanishedException.process(pid, "reading its modules");
            }
            var names = modules.all().stream().map(m -> m.name() + " " + m.buildId()).toList();
            return new DoesNotFitException(String.format("pid %d maps no module with build-id %s (patch %s is for"
                    + " %s); it has: %s", pid, patch.targetBuildId(), patch.id(), patch.targetName(),
                    String.join(", ", names)));
        }
    }

    static List<Patcher.FunctionPatch> functions(RegionHeader h) {
        return h.functions().stream().map(f -> new Patcher.FunctionPatch(f.name(), f.oldAddress(), f.newAddress()))
                .toList();
    }

    static Image.Range textRange(Regions.Found r) {
        var range = textRange(r.address(), r.header().layout());
        return new Image.Range("patch " + r.header().patchId(), range.start(), range.end());
    }

    /** The code of a region at {@code base}: its text and its jump table. */
    static Image.Range textRange(long base, RegionHeader.Layout l) {
        return new Image.Range("the new region", base + l.textOffset(),
                base + l.jumpTableOffset() + (long) l.jumpTableCount() * RegionHeader.JUMP_ENTRY_SIZE);
    }

    /** The state field as written into a header at {@link RegionHeader#STATE_OFFSET}. */
    static byte[] stateBytes(RegionHeader.State state) {
        byte[] b = new byte[2];
        b[0] = (byte) state.code;
        b[1] = (byte) (state.code >>> 8);
        return b;
    }

    static String hex(byte[] b) {
        return HexFormat.ofDelimiter(" ").formatHex(b);
    }
}
