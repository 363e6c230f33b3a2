package dev.suture.live;

import dev.suture.elf.ElfConstants;
import dev.suture.elf.Symbol;
import dev.suture.patch.PatchSymbol;
import dev.suture.proc.Module;
import dev.suture.proc.Modules;
import dev.suture.proc.RemoteMemory;
import dev.suture.x86.DoesNotFitException;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;

/**
 * {@link Externals} answered from a live process: the target module's own GOT for what it imports, the dynamic
 * linker's search order for the rest, IFUNCs through the slots the dynamic linker already resolved, and TLS module
 * ids and offsets from the GOT slots the dynamic linker filled.
 */
final class ProcessExternals implements Externals {
    private final int pid;
    private final Modules modules;
    private final Module target;
    private final RemoteMemory memory;
    private final Map<Module, ImportTable> imports = new HashMap<>();

    ProcessExternals(int pid, Modules modules, Module target, RemoteMemory memory) {
        this.pid = pid;
        this.modules = modules;
        this.target = target;
        this.memory = memory;
    }

    private ImportTable imports(Module m) {
        return imports.computeIfAbsent(m, k -> ImportTable.of(k.elf()));
    }

    private long readWord(long address) {
        byte[] b = new byte[8];
        if (memory.read(address, b, 0, 8) != 8) {
            throw new DoesNotFitException(String.format("pid %d: cannot read the GOT slot at 0x%x", pid, address));
        }
        long v = 0;
        for (int i = 7; i >= 0; i--) {
            v = v << 8 | (b[i] & 0xffL);
        }
        return v;
    }

    @Override
    public long importSlot(PatchSymbol.External s, boolean forCall) {
        var slot = imports(target).imported(s.name(), s.version(), forCall);
        if (slot.isEmpty()) {
            return 0;
        }
        if (!forCall && slot.get().type() != ElfConstants.R_X86_64_GLOB_DAT) {
            return 0; // a lazy JUMP_SLOT may still hold the PLT stub: not an address to hand out
        }
        return target.runtime(slot.get().address());
    }

    @Override
    public long address(PatchSymbol.External s) {
        var glob = imports(target).imported(s.name(), s.version(), false);
        if (glob.isPresent() && glob.get().type() == ElfConstants.R_X86_64_GLOB_DAT) {
            return readWord(target.runtime(glob.get().address()));
        }
        var found = resolve(s);
        if (found.isEmpty()) {
            if (s.weak()) {
                return 0;
            }
            throw new DoesNotFitException(String.format("pid %d: symbol %s, which the patch uses, is defined in no"
                    + " loaded module; the patch needs a library the process has not loaded", pid, s.fileName()));
        }
        var r = found.get();
        if (r.isIfunc()) {
            return resolvedIfunc(s, r);
        }
        return r.address();
    }

    private Optional<Modules.Resolved> resolve(PatchSymbol.External s) {
        var r = modules.resolve(s.fileName());
        if (r.isEmpty() && s.version() != null) {
            r = modules.resolve(s.name());
        }
        return r;
    }

    /**
     * The implementation an IFUNC resolved to, as the dynamic linker chose it: the defining module's IRELATIVE
     * slot for it, else any module's resolved GOT slot for the same symbol.
     */
    private long resolvedIfunc(PatchSymbol.External s, Modules.Resolved r) {
        Module m = r.module();
        var slot = imports(m).irelative(r.symbol().st_value());
        if (slot.isPresent()) {
            return readWord(m.runtime(slot.get().address()));
        }
        for (Module other : modules.all()) {
            var imported = imports(other).imported(s.name(), s.version(), false);
            if (imported.isEmpty()) {
                continue;
            }
            long value = readWord(other.runtime(imported.get().address()));
            if (value != 0 && !other.contains(value)) {
                return value;
            }
        }
        throw new DoesNotFitException(String.format("pid %d: %s is an IFUNC of %s that no module has resolved yet;"
                + " suture does not call IFUNC resolvers in the target", pid, s.fileName(), m.name()));
    }

    @Override
    public Tls targetTls() {
        return tlsOf(target);
    }

    @Override
    public Tls tls(PatchSymbol.External s) {
        var r = resolve(s).orElseThrow(() -> new DoesNotFitException(String.format(
                "pid %d: thread-local variable %s is defined in no loaded module", pid, s.fileName())));
        if (r.symbol().type() != ElfConstants.STT_TLS) {
            throw new DoesNotFitException(String.format("pid %d: %s in %s is not thread-local", pid, s.fileName(),
                    r.module().name()));
        }
        return tlsOf(r.module()).at(r.symbol().st_value());
    }

    /**
     * A module's TLS block: the executable's is module 1, just below the thread pointer (x86-64 TLS variant II);
     * a library's id is in the DTPMOD64 slots its GOT has, and its static block's offset follows from a TPOFF64
     * slot (value = block offset + variable offset).
     */
    private Tls tlsOf(Module m) {
        var segment = m.elf().tls().orElseThrow(() -> new DoesNotFitException(String.format(
                "pid %d: %s has no thread-local storage (no PT_TLS)", pid, m.name())));
        boolean executable = modules.executable().map(e -> e.equals(m)).orElse(false);
        if (executable) {
            long align = Math.max(1, segment.p_align());
            long block = (segment.p_memsz() + align - 1) / align * align;
            return new Tls(1, -block, 0);
        }
        var table = imports(m);
        long id = 0;
        for (var slot : table.moduleIdSlots()) {
            if (slot.symbol() == null || slot.symbol().isEmpty() || definedIn(m, slot.symbol())) {
                id = readWord(m.runtime(slot.address()));
                if (id != 0) {
                    break;
                }
            }
        }
        long tp = Long.MIN_VALUE;
        for (var slot : table.tpOffsetSlots()) {
            long offset = slot.addend();
            if (slot.symbol() != null && !slot.symbol().isEmpty()) {
                Symbol sym = definedSymbol(m, slot.symbol());
                if (sym == null) {
                    continue;
                }
                offset += sym.st_value();
            }
            tp = readWord(m.runtime(slot.address())) - offset;
            break;
        }
        if (id == 0 && tp == Long.MIN_VALUE) {
            throw new DoesNotFitException(String.format("pid %d: cannot find the TLS module id of %s in its GOT (no"
                    + " DTPMOD64 or TPOFF64 slot)", pid, m.name()));
        }
        return new Tls(id, tp, 0);
    }

    private static boolean definedIn(Module m, String name) {
        return definedSymbol(m, name) != null;
    }

    private static Symbol definedSymbol(Module m, String name) {
        for (Symbol s : m.elf().dynamicSymbols()) {
            if (s.isDefined() && s.name().equals(name)) {
                return s;
            }
        }
        return null;
    }
}
