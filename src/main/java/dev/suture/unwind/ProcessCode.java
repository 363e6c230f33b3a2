package dev.suture.unwind;

import dev.suture.elf.ElfConstants;
import dev.suture.elf.ElfFile;
import dev.suture.elf.ProgramHeader;
import dev.suture.proc.Tracer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The code of a live process for unwinding: every executable mapping of /proc/PID/maps with its module's CFI and
 * symbols, plus the address ranges of all mappings (to size stack copies). ELF files are parsed once per
 * (path, size, mtime) and cached across processes; only the load bias is per process.
 */
public final class ProcessCode {
    /** One line of /proc/PID/maps. */
    record Mapping(long start, long end, String perms, long offset, String path) {}

    private record FileKey(String path, long size, long mtime) {}

    /** CFI and symbols of a file, independent of where it is loaded. */
    private record Parsed(ElfFile elf, CallFrameSection ehFrame, CallFrameSection debugFrame, SymbolTable symbols) {}

    private static final Map<FileKey, Parsed> CACHE = new ConcurrentHashMap<>();

    private final CodeMap code;
    private final long[] mapStarts;
    private final long[] mapEnds;

    private ProcessCode(CodeMap code, long[] mapStarts, long[] mapEnds) {
        this.code = code;
        this.mapStarts = mapStarts;
        this.mapEnds = mapEnds;
    }

    public CodeMap code() {
        return code;
    }

    /** End of the mapping that holds {@code address}, or 0 if no mapping known when this was loaded holds it. */
    public long mappingEnd(long address) {
        int lo = 0;
        int hi = mapStarts.length - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (Long.compareUnsigned(mapStarts[mid], address) <= 0) {
                if (Long.compareUnsigned(address, mapEnds[mid]) < 0) {
                    return mapEnds[mid];
                }
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        return 0;
    }

    /**
     * Loads the code of process {@code pid}; {@code tracer} (attached to it, may be null) reads the vdso. Modules
     * whose file cannot be read are left out: their frames fall back to frame pointers.
     */
    public static ProcessCode load(int pid, Tracer tracer) {
        List<Mapping> maps = readMaps(pid);
        var ranges = new ArrayList<CodeMap.Range>();
        Map<String, CodeModule> modules = new LinkedHashMap<>();
        for (Mapping m : maps) {
            if (!m.perms().contains("x")) {
                continue;
            }
            CodeModule module = modules.get(m.path());
            if (module == null && !modules.containsKey(m.path())) {
                module = loadModule(pid, m, maps, tracer);
                modules.put(m.path(), module);
            }
            if (module != null) {
                ranges.add(new CodeMap.Range(m.start(), m.end(), module));
            }
        }
        long[] starts = new long[maps.size()];
        long[] ends = new long[maps.size()];
        for (int i = 0; i < maps.size(); i++) {
            starts[i] = maps.get(i).start();
            ends[i] = maps.get(i).end();
        }
        return new ProcessCode(new CodeMap(ranges), starts, ends);
    }

    private static CodeModule loadModule(int pid, Mapping exec, List<Mapping> maps, Tracer tracer) {
        try {
            if (exec.path().equals("[vdso]")) {
                if (tracer == null) {
                    return null;
                }
                byte[] image = tracer.read(exec.start(), (int) (exec.end() - exec.start()));
                var elf = ElfFile.parse("[vdso]", image);
                return module("[vdso]", exec, parsed(elf), elf);
            }
            if (!exec.path().startsWith("/")) {
                return null;
            }
            // through map_files the module is the one mapped, even if the path was replaced or deleted since
            Path file = Path.of("/proc/" + pid + "/map_files/" + Long.toHexString(exec.start()) + "-"
                    + Long.toHexString(exec.end()));
            if (!Files.isReadable(file)) {
                file = Path.of(exec.path());
            }
            var key = new FileKey(exec.path(), Files.size(file), Files.getLastModifiedTime(file).toMillis());
            Path opened = file;
            Parsed p = CACHE.computeIfAbsent(key, k -> parsed(ElfFile.open(opened)));
            return module(exec.path(), exec, p, p.elf());
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }

    private static Parsed parsed(ElfFile elf) {
        CodeModule m = CodeModules.load(elf.name(), elf, 0, null);
        return new Parsed(elf, m.ehFrame(), m.debugFrame(), m.symbols());
    }

    private static CodeModule module(String name, Mapping exec, Parsed p, ElfFile elf) {
        long bias = loadBias(elf, exec);
        return new CodeModule(name, bias, p.ehFrame(), p.debugFrame(), p.symbols());
    }

    /** Load bias from the PT_LOAD segment whose file range the executable mapping maps. */
    static long loadBias(ElfFile elf, Mapping exec) {
        for (ProgramHeader ph : elf.programHeaders()) {
            if (ph.p_type() != ElfConstants.PT_LOAD) {
                continue;
            }
            long pageOffset = ph.p_offset() & ~0xfffL;
            if (exec.offset() >= pageOffset && exec.offset() < ph.p_offset() + Math.max(ph.p_filesz(), 1)
                    && (exec.path().equals("[vdso]") || (ph.p_flags() & ElfConstants.PF_X) != 0)) {
                long vaddrOfMapping = (ph.p_vaddr() & ~0xfffL) + (exec.offset() - pageOffset);
                return exec.start() - vaddrOfMapping;
            }
        }
        return exec.start() - exec.offset();
    }

    static List<Mapping> readMaps(int pid) {
        try {
            var out = new ArrayList<Mapping>();
            for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/maps"))) {
                String[] f = line.trim().split("\\s+", 6);
                if (f.length < 5) {
                    continue;
                }
                int dash = f[0].indexOf('-');
                out.add(new Mapping(Long.parseUnsignedLong(f[0].substring(0, dash), 16),
                        Long.parseUnsignedLong(f[0].substring(dash + 1), 16), f[1],
                        Long.parseUnsignedLong(f[2], 16), f.length == 6 ? f[5] : ""));
            }
            return out;
        } catch (IOException e) {
            throw dev.suture.sys.ProcessVanishedException.process(pid, "reading /proc/" + pid + "/maps");
        }
    }
}
