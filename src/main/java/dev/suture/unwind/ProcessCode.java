package dev.suture.unwind;

import dev.suture.elf.AddressRanges;
import dev.suture.elf.DebugFiles;
import dev.suture.elf.ElfFile;
import dev.suture.elf.SymbolsByAddress;
import dev.suture.proc.Mapping;
import dev.suture.proc.Maps;
import dev.suture.proc.Module;
import dev.suture.proc.Modules;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The code of a live process for unwinding: the executable ranges of every module ({@link Modules}: executable,
 * libraries, dynamic linker, vdso) with the module's CFI and symbols, code that lives only in memory (patch
 * regions, given by the caller), plus the address ranges of all mappings (to size stack copies). CFI and symbols
 * are parsed once per file (build-id, else path) and cached across processes; only the load bias is per process.
 */
public final class ProcessCode {
    private record FileKey(String identity, boolean debugFiles) {}

    /** CFI and symbols of a file, independent of where it is loaded. */
    private record Parsed(CallFrameSection ehFrame, CallFrameSection debugFrame, SymbolsByAddress symbols) {}

    private static final Map<FileKey, Parsed> CACHE = new ConcurrentHashMap<>();

    private final Modules modules;
    private final CodeMap code;
    private final AddressRanges mappings;
    private final long mainStackSize;

    private ProcessCode(Modules modules, CodeMap code, List<Mapping> maps) {
        this.modules = modules;
        this.code = code;
        long[] mapStarts = new long[maps.size()];
        long[] mapEnds = new long[maps.size()];
        long stack = 0;
        for (int i = 0; i < maps.size(); i++) {
            mapStarts[i] = maps.get(i).start();
            mapEnds[i] = maps.get(i).end();
            if (maps.get(i).path().equals("[stack]")) {
                stack = maps.get(i).size();
            }
        }
        mainStackSize = stack;
        mappings = new AddressRanges(mapStarts, mapEnds);
    }

    /** {@link #load(int, boolean)} with separate debug files. */
    public static ProcessCode load(int pid) {
        return load(pid, true);
    }

    /** {@link #load(int, boolean, List)} with no code beyond the modules. */
    public static ProcessCode load(int pid, boolean debugFiles) {
        return load(pid, debugFiles, List.of());
    }

    /**
     * Loads the code of process {@code pid}. With {@code debugFiles}, each module's separate debug file (by build-id
     * or .gnu_debuglink, under /usr/lib/debug) adds its .symtab (names of local functions such as start_thread) and
     * .debug_frame. A module whose CFI is unreadable keeps its place with no CFI: its frames fall back to frame
     * pointers. {@code inMemory} adds code that no file backs (patch regions, {@link CodeModules#inMemory}); a range
     * of it that is empty or overlaps a module's or another's is left out.
     */
    public static ProcessCode load(int pid, boolean debugFiles, List<CodeMap.Range> inMemory) {
        Modules modules = Modules.of(pid);
        List<Mapping> maps = Maps.read(pid);
        var ranges = new ArrayList<CodeMap.Range>();
        for (Module m : modules.all()) {
            Parsed p = parsed(m, debugFiles);
            var module = new CodeModule(m.path(), m.loadBias(), p.ehFrame(), p.debugFrame(), p.symbols());
            for (Mapping mapping : m.mappings()) {
                if (mapping.executable()) {
                    ranges.add(new CodeMap.Range(mapping.start(), mapping.end(), module));
                }
            }
        }
        for (CodeMap.Range r : inMemory) {
            if (Long.compareUnsigned(r.start(), r.end()) < 0 && ranges.stream().noneMatch(o -> overlap(o, r))) {
                ranges.add(r);
            }
        }
        return new ProcessCode(modules, new CodeMap(ranges), maps);
    }

    private static boolean overlap(CodeMap.Range a, CodeMap.Range b) {
        return Long.compareUnsigned(a.start(), b.end()) < 0 && Long.compareUnsigned(b.start(), a.end()) < 0;
    }

    public CodeMap code() {
        return code;
    }

    /** The modules the code map was built from. */
    public Modules modules() {
        return modules;
    }

    /** The size of the main thread's stack mapping ("[stack]", as far as it has grown) when loaded; 0 if none. */
    public long mainStackSize() {
        return mainStackSize;
    }

    /** End of the mapping that holds {@code address}, or 0 if no mapping known when this was loaded holds it. */
    public long mappingEnd(long address) {
        return mappings.endOf(address);
    }

    private static Parsed parsed(Module m, boolean debugFiles) {
        boolean vdso = m.path().equals("[vdso]");
        // without a build-id, device and inode tell a file replaced at the same path from the one cached
        Mapping first = m.mappings().getFirst();
        String identity = m.buildId() != null ? "build-id " + m.buildId()
                : vdso ? null : "file " + m.path() + " " + first.device() + " " + first.inode();
        if (identity == null) {
            return parse(m, false); // a vdso without build-id: cheap, and not worth a cache key
        }
        return CACHE.computeIfAbsent(new FileKey(identity, debugFiles && !vdso), k -> parse(m, k.debugFiles()));
    }

    private static Parsed parse(Module m, boolean debugFiles) {
        ElfFile debug = debugFiles ? debugFile(m) : null;
        CodeModule parsed = CodeModules.load(m.path(), m.elf(), 0, debug);
        return new Parsed(parsed.ehFrame(), parsed.debugFrame(), parsed.symbols());
    }

    private static ElfFile debugFile(Module m) {
        try {
            String path = m.path().endsWith(" (deleted)") ? m.path().substring(0, m.path().length() - 10) : m.path();
            return DebugFiles.find(m.elf(), Path.of(path)).map(ElfFile::open).orElse(null);
        } catch (RuntimeException e) {
            return null; // a broken debug file costs names, never the backtrace
        }
    }
}
