package dev.suture.live;

import dev.suture.SutureException;
import dev.suture.proc.Mapping;
import dev.suture.proc.Modules;
import dev.suture.proc.Registers;
import dev.suture.proc.RemoteMemory;
import dev.suture.proc.StubSite;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;

/**
 * Recovery believes nothing it can check (principle 9): before it writes a byte, every record of a journal left
 * behind is compared with the process as it is, and a claim that cannot be true of it stops recovery for that
 * process with nothing written. A stub must be suture's stub at a place suture could have chosen; a write must be
 * at a replaced function's entry that a region header in the process lists (or at a header's state field), with
 * old and new bytes each one of what the module's file, or a region header, says may be there; registers go back
 * only to a thread parked exactly in a checked stub, and must lead back into executable code.
 */
final class JournalCheck {
    private final int pid;
    private final JournalReader.Pending pending;
    private final Modules modules;
    private final List<Mapping> maps;
    private final List<Regions.Found> regions;
    private final RemoteMemory memory;

    private JournalCheck(int pid, JournalReader.Pending pending, Modules modules, List<Mapping> maps,
                         List<Regions.Found> regions, RemoteMemory memory) {
        this.memory = memory;
        this.pid = pid;
        this.pending = pending;
        this.modules = modules;
        this.maps = maps;
        this.regions = regions;
    }

    /** Refuses (nothing written) unless every record of {@code pending} can be true of process {@code pid}. */
    static void verify(int pid, JournalReader.Pending pending, RemoteMemory memory, List<Mapping> maps) {
        var check = new JournalCheck(pid, pending, Modules.of(pid), maps, Regions.scan(pid, maps, memory),
                memory);
        for (var stub : pending.stubs()) {
            check.stub("stub", stub.address(), stub.original(), stub.code());
        }
        for (var in : pending.injections()) {
            check.stub("inject " + in.tid(), in.stub(), in.stubOriginal(), in.stubCode());
            long rip = Registers.of(in.registers()).rip();
            if (!check.executable(rip)) {
                throw check.refuse("inject " + in.tid(), String.format("the registers it would give thread %d lead"
                        + " to 0x%x, which is not executable code of the process", in.tid(), rip));
            }
        }
        for (var w : pending.writes()) {
            check.write(w);
        }
    }

    private void stub(String record, long address, byte[] original, byte[] code) {
        StubSite.problem(modules, address, original, code).ifPresent(why -> {
            throw refuse(record + " 0x" + Long.toHexString(address), why);
        });
    }

    private void write(ApplyTransaction.Write w) {
        String record = "write 0x" + Long.toHexString(w.address());
        if (!mapped(w.address()) && inJournaledRegion(w.address())) {
            return; // the state field of a region already unmapped: recovery skips it, and could not write it
        }
        // what recovery would put there: an apply is undone, a revert finished; nothing if it is there already
        byte[] put = pending.operation() == Journal.Operation.APPLY ? w.undo() : w.bytes();
        byte[] now = new byte[put.length];
        if (memory.read(w.address(), now, 0, now.length) == now.length && Arrays.equals(now, put)) {
            return;
        }
        for (var r : regions) {
            if (w.address() == r.address() + RegionHeader.STATE_OFFSET) {
                if (w.bytes().length != 2 || state(w.bytes()) == null || state(w.undo()) == null) {
                    throw refuse(record, "it is the state field of the region at 0x" + Long.toHexString(r.address())
                            + ", but its bytes are no state");
                }
                return;
            }
        }
        var allowed = new ArrayList<byte[]>();
        for (var r : regions) {
            for (var f : r.header().functions()) {
                if (f.oldAddress() == w.address()) {
                    allowed.add(f.savedBytes());
                    allowed.add(f.installedBytes());
                }
            }
        }
        if (allowed.isEmpty()) {
            throw refuse(record, "no patch region in the process lists a function there, and suture writes"
                    + " nowhere else");
        }
        var module = modules.containing(w.address());
        if (module.isEmpty() || !executable(w.address())) {
            throw refuse(record, "it is not in the executable code of a module");
        }
        module.get().elf().readAt(w.address() - module.get().loadBias(), w.bytes().length).ifPresent(allowed::add);
        for (byte[] b : List.of(w.bytes(), w.undo())) {
            if (allowed.stream().noneMatch(a -> Arrays.equals(a, b))) {
                throw refuse(record, HexFormat.of().formatHex(b) + " is neither the bytes of "
                        + module.get().name() + " there nor a jump or saved entry that a region header lists");
            }
        }
    }

    private boolean mapped(long address) {
        return maps.stream().anyMatch(m -> m.contains(address));
    }

    private boolean inJournaledRegion(long address) {
        var r = pending.region();
        return r != null && r.contains(address) || pending.unmaps().stream().anyMatch(u -> u.contains(address));
    }

    private boolean executable(long address) {
        for (var m : maps) {
            if (m.executable() && m.contains(address)) {
                return true;
            }
        }
        return false;
    }

    private static RegionHeader.State state(byte[] b) {
        return RegionHeader.State.of((b[0] & 0xff) | (b[1] & 0xff) << 8);
    }

    private SutureException refuse(String record, String why) {
        return new SutureException(SutureException.Kind.BAD_INPUT, "pid " + pid + ": the journal " + pending.file()
                + " does not match the process (record '" + record + "': " + why + "); suture wrote nothing and"
                + " keeps the journal. Find out who wrote it; once you know the process is as it should be"
                + " ('suture info -p " + pid + "'), remove the file by hand");
    }
}
