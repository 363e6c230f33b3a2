package dev.suture.proc;

import dev.suture.SutureException;
import dev.suture.elf.ElfConstants;
import dev.suture.elf.ElfFile;
import dev.suture.elf.ElfFormatException;
import dev.suture.elf.ProgramHeader;
import dev.suture.elf.Symbol;
import dev.suture.elf.SymbolsByAddress;
import dev.suture.sys.SysException;
import dev.suture.sys.Syscalls;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Every ELF image mapped in a process (executable, libraries, dynamic linker, vdso) with its load bias, build-id
 * and ELF file, in the dynamic linker's search order; symbol lookup by name and description of addresses.
 * Reads /proc and the process's memory (process_vm_readv); needs no tracer.
 */
public final class Modules {
    private final int pid;
    private final List<Module> modules;
    private final Map<Module, ExportedSymbols> exported = new HashMap<>();
    private final Map<Module, SymbolsByAddress> byAddress = new HashMap<>();

    private Modules(int pid, List<Module> modules) {
        this.pid = pid;
        this.modules = modules;
    }

    /** A snapshot of the modules of process {@code pid}. */
    public static Modules of(int pid) {
        var maps = Maps.read(pid);
        var auxv = Auxv.read(pid);
        var found = new ArrayList<Module>();
        for (var group : groupByFile(maps)) {
            loadModule(pid, group).ifPresent(found::add);
        }
        for (var m : maps) {
            if (m.path().equals("[vdso]")) {
                loadVdso(pid, m).ifPresent(found::add);
            }
        }
        return new Modules(pid, linkerOrder(pid, found, auxv));
    }

    /** Every module, in the dynamic linker's search order (the executable first). */
    public List<Module> all() {
        return modules;
    }

    public int pid() {
        return pid;
    }

    /** The main executable (the module holding the entry point), if it is mapped. */
    public Optional<Module> executable() {
        return modules.isEmpty() ? Optional.empty() : Optional.of(modules.getFirst());
    }

    public Optional<Module> byBuildId(String hex) {
        return modules.stream().filter(m -> hex.equalsIgnoreCase(m.buildId())).findFirst();
    }

    /** The module whose file name is {@code name} ("libc.so.6"), or whose path is {@code name}. */
    public Optional<Module> byName(String name) {
        return modules.stream().filter(m -> m.name().equals(name) || m.path().equals(name)).findFirst();
    }

    public Optional<Module> containing(long address) {
        for (var m : modules) {
            if (m.contains(address)) {
                return Optional.of(m);
            }
        }
        return Optional.empty();
    }

    /** A resolved symbol: where it was found and its run-time address. */
    public record Resolved(Module module, Symbol symbol, long address) {
        /** An IFUNC's address is its resolver's, not the implementation's. */
        public boolean isIfunc() {
            return symbol.type() == ElfConstants.STT_GNU_IFUNC;
        }
    }

    /**
     * The run-time address the dynamic linker would bind {@code name} to (optionally "name@VERSION"): the first
     * exported definition in search order (the executable, then the libraries in load order).
     */
    public Optional<Long> lookup(String name) {
        return resolve(name).map(Resolved::address);
    }

    public Optional<Resolved> resolve(String name) {
        for (var m : modules) {
            if (m.path().equals("[vdso]")) {
                continue; // on the debugger's list of objects, but not in the global lookup scope
            }
            Symbol s = exported(m).exported(name);
            if (s != null) {
                return Optional.of(new Resolved(m, s, m.runtime(s.st_value())));
            }
        }
        return Optional.empty();
    }

    /** "libc.so.6!nanosleep+0x2f", "app!main", "libfoo.so+0x1234" (no symbol), or "0x7ffc..." (no module). */
    public String describe(long address) {
        var module = containing(address);
        if (module.isEmpty()) {
            return "0x" + Long.toHexString(address);
        }
        var m = module.get();
        SymbolsByAddress.Hit s = byAddress(m).lookup(address - m.loadBias());
        if (s == null) {
            return m.name() + "+0x" + Long.toHexString(address - m.loadBias());
        }
        return m.name() + "!" + s.name() + (s.offset() != 0 ? "+0x" + Long.toHexString(s.offset()) : "");
    }

    private synchronized ExportedSymbols exported(Module m) {
        return exported.computeIfAbsent(m, k -> new ExportedSymbols(k.elf()));
    }

    /** Functions and variables of .symtab and .dynsym: what a person reading an address looks for. */
    private synchronized SymbolsByAddress byAddress(Module m) {
        return byAddress.computeIfAbsent(m, k -> SymbolsByAddress.of(
                List.of(k.elf().symbols(), k.elf().dynamicSymbols()), s -> s.inSection() && (s.isFunction() || s.isObject())));
    }

    // ---- building the list ----

    /** Consecutive file mappings of the same file (same inode and path), each group one candidate module. */
    private static List<List<Mapping>> groupByFile(List<Mapping> maps) {
        var groups = new LinkedHashMap<String, List<Mapping>>();
        for (var m : maps) {
            if (m.isFile() && m.inode() != 0) {
                groups.computeIfAbsent(m.device() + ":" + m.inode() + ":" + m.path(), k -> new ArrayList<>()).add(m);
            }
        }
        return List.copyOf(groups.values());
    }

    private static Optional<Module> loadModule(int pid, List<Mapping> group) {
        Mapping first = group.stream().filter(m -> m.offset() == 0).findFirst().orElse(null);
        if (first == null || !isElfInMemory(pid, first.start())) {
            return Optional.empty(); // a data file mapped by the program, or a partial mapping
        }
        ElfFile elf = null;
        if (!sameFileOnDisk(first)) {
            // deleted or replaced (a package upgrade): the mapped file itself is still reachable here
            try {
                elf = ElfFile.open(Path.of("/proc/" + pid + "/map_files/" + first.mapFilesName()));
            } catch (ElfFormatException e) {
                elf = null; // map_files needs CAP_SYS_ADMIN; try the path
            }
        }
        try {
            if (elf == null) {
                elf = ElfFile.open(Path.of(first.filePath()));
            }
        } catch (ElfFormatException e) {
            return Optional.empty();
        }
        long bias = loadBias(elf, group);
        var mappings = group.stream().filter(m -> m.start() >= first.start()).toList();
        return Optional.of(new Module(first.path(), bias, elf.buildId().orElse(null), elf, mappings));
    }

    /** Whether the file at the mapping's path is still the one mapped (same device and inode). */
    private static boolean sameFileOnDisk(Mapping m) {
        if (m.isDeleted()) {
            return false;
        }
        try {
            Path p = Path.of(m.path());
            long inode = ((Number) Files.getAttribute(p, "unix:ino")).longValue();
            long dev = ((Number) Files.getAttribute(p, "unix:dev")).longValue();
            String[] mm = m.device().split(":");
            long major = Long.parseLong(mm[0], 16);
            long minor = Long.parseLong(mm[1], 16);
            // st_dev encodes major/minor as glibc's makedev does
            long expectDev = (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xffL) << 12)
                    | ((major & ~0xfffL) << 32);
            return inode == m.inode() && dev == expectDev;
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    private static boolean isElfInMemory(int pid, long address) {
        byte[] magic = new byte[4];
        try {
            return Syscalls.readMemory(pid, address, magic, 0, 4) == 4 && magic[0] == 0x7f && magic[1] == 'E'
                    && magic[2] == 'L' && magic[3] == 'F';
        } catch (SysException e) {
            return false;
        }
    }

    /** Run-time minus link-time address: where the lowest PT_LOAD's first page was mapped, minus its vaddr. */
    static long loadBias(ElfFile elf, List<Mapping> group) {
        if (elf.header().e_type() == ElfConstants.ET_EXEC) {
            return 0;
        }
        ProgramHeader lowest = null;
        for (var p : elf.programHeaders()) {
            if (p.isLoad() && (lowest == null || p.p_vaddr() < lowest.p_vaddr())) {
                lowest = p;
            }
        }
        if (lowest == null) {
            return group.getFirst().start();
        }
        long pageOffset = lowest.p_offset() & -Maps.PAGE;
        for (var m : group) {
            if (m.offset() == pageOffset) {
                return m.start() - (lowest.p_vaddr() & -Maps.PAGE);
            }
        }
        return group.getFirst().start() - (lowest.p_vaddr() & -Maps.PAGE);
    }

    private static Optional<Module> loadVdso(int pid, Mapping m) {
        byte[] image = new byte[(int) Math.min(m.size(), 1 << 20)];
        try {
            if (Syscalls.readMemory(pid, m.start(), image, 0, image.length) != image.length) {
                return Optional.empty();
            }
            var elf = ElfFile.parse("[vdso] of process " + pid, image);
            return Optional.of(new Module("[vdso]", loadBias(elf, List.of(m)), elf.buildId().orElse(null), elf,
                    List.of(m)));
        } catch (SysException | ElfFormatException e) {
            return Optional.empty();
        }
    }

    /**
     * Orders modules as the dynamic linker searches them: the link_map chain of r_debug (found through the
     * executable's DT_DEBUG) when there is one; modules it does not list follow in address order.
     */
    private static List<Module> linkerOrder(int pid, List<Module> found, Auxv auxv) {
        var ordered = new ArrayList<Module>();
        var exe = auxv.entry().flatMap(entry -> found.stream().filter(m -> m.contains(entry)).findFirst());
        exe.ifPresent(ordered::add);
        if (exe.isPresent()) {
            for (long ld : linkMapDynamics(pid, exe.get())) {
                for (var m : found) {
                    if (m.contains(ld) && !ordered.contains(m)) {
                        ordered.add(m);
                    }
                }
            }
        }
        var rest = new ArrayList<>(found);
        rest.removeAll(ordered);
        rest.sort((a, b) -> Long.compareUnsigned(a.start(), b.start()));
        ordered.addAll(rest);
        return List.copyOf(ordered);
    }

    /** The l_ld (dynamic section address) of each entry of the link_map chain, in order; empty if unreadable. */
    private static List<Long> linkMapDynamics(int pid, Module exe) {
        var dynamicSegment = exe.elf().segment(ElfConstants.PT_DYNAMIC);
        if (dynamicSegment.isEmpty()) {
            return List.of();
        }
        try {
            long at = exe.runtime(dynamicSegment.get().p_vaddr());
            int size = (int) Math.min(dynamicSegment.get().p_memsz(), 1 << 16);
            ByteBuffer dyn = readBuffer(pid, at, size);
            long rDebug = 0;
            while (dyn.remaining() >= 16) {
                long tag = dyn.getLong();
                long value = dyn.getLong();
                if (tag == ElfConstants.DT_DEBUG) {
                    rDebug = value;
                }
                if (tag == 0) {
                    break;
                }
            }
            if (rDebug == 0) {
                return List.of();
            }
            long map = readBuffer(pid, rDebug + 8, 8).getLong(); // struct r_debug { int r_version; link_map *r_map; ...}
            var out = new ArrayList<Long>();
            var seen = new HashSet<Long>();
            while (map != 0 && seen.add(map) && out.size() < 4096) {
                ByteBuffer lm = readBuffer(pid, map, 40); // l_addr, l_name, l_ld, l_next, l_prev
                out.add(lm.getLong(16));
                map = lm.getLong(24);
            }
            return out;
        } catch (SutureException e) {
            return List.of();
        }
    }

    private static ByteBuffer readBuffer(int pid, long address, int length) {
        byte[] bytes = new byte[length];
        if (Syscalls.readMemory(pid, address, bytes, 0, length) != length) {
            throw new SysException("process_vm_readv", 14, "short read at 0x" + Long.toHexString(address));
        }
        return ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
    }
}
