package dev.suture.live;

import dev.suture.elf.ElfConstants;
import dev.suture.elf.Symbol;
import dev.suture.patch.PatchSymbol;
import dev.suture.proc.Maps;
import dev.suture.proc.Module;
import dev.suture.proc.Modules;
import dev.suture.proc.RemoteMemory;
import dev.suture.proc.Tracer;
import dev.suture.x86.DoesNotFitException;
import java.time.Duration;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * {@link Externals} answered from a live process: the target module's own GOT for what it imports, the dynamic
 * linker's search order for the rest, IFUNCs through the slots the dynamic linker already resolved (else by calling
 * their resolvers in the target, {@link #callResolvers}), and TLS module ids and offsets from the GOT slots the
 * dynamic linker filled.
 */
final class ProcessExternals implements Externals {
    private final int pid;
    private final Modules modules;
    private final Module target;
    private final RemoteMemory memory;
    /** How long an IFUNC resolver run in the target may take: they return at once, from cached CPU features. */
    static final Duration RESOLVER_TIMEOUT = Duration.ofSeconds(1);

    private final Map<Module, ImportTable> imports = new HashMap<>();
    /** IFUNC resolvers (by run-time address) a bind met that no module resolved, and what to call them. */
    private final Map<Long, String> uncalled = new LinkedHashMap<>();
    private final Map<Long, Long> calledResolvers = new HashMap<>();

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
        // nobody resolved it: its resolver must run in the target (callResolvers); until then, a stand-in of the
        // same kind (an address anywhere) lets the patch be laid out and bound
        long resolver = r.address();
        Long called = calledResolvers.get(resolver);
        if (called != null) {
            return called;
        }
        uncalled.putIfAbsent(resolver, s.fileName() + " (IFUNC of " + m.name() + ")");
        return resolver;
    }

    /** Whether a bind met IFUNCs no module has resolved: {@link #callResolvers} must run, then bind again. */
    boolean needsResolverCalls() {
        return !uncalled.isEmpty();
    }

    /** What {@link #callResolvers} would call, for a dry run: "memchr (IFUNC of libc.so.6)". */
    List<String> resolversToCall() {
        return List.copyOf(uncalled.values());
    }

    /**
     * Calls each resolver the last bind met once, in the target, on a borrowed thread (the x86-64 dynamic linker
     * passes no argument: glibc's {@code elf_ifunc_invoke} in sysdeps/x86_64/dl-irel.h); a later bind uses what
     * they returned. A resolver that crashes, does not return within {@link #RESOLVER_TIMEOUT}, or returns an
     * address in no executable mapping of the process fails the apply with the target as it was.
     */
    void callResolvers(Tracer tracer) {
        for (var e : Map.copyOf(uncalled).entrySet()) {
            long impl = tracer.call("the resolver of " + e.getValue(), e.getKey(), RESOLVER_TIMEOUT,
                    Tracer.CallGuard.ANY);
            boolean code = Maps.read(pid).stream().anyMatch(m -> m.executable() && m.contains(impl));
            if (!code) {
                throw new DoesNotFitException(String.format("pid %d: the resolver of %s returned 0x%x, which is in"
                        + " no executable mapping of the process", pid, e.getValue(), impl));
            }
            calledResolvers.put(e.getKey(), impl);
            uncalled.remove(e.getKey());
        }
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
