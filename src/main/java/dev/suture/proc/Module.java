package dev.suture.proc;

import dev.suture.elf.ElfFile;
import java.util.List;

/**
 * An ELF image mapped in a process: the executable, a shared library, the dynamic linker or the vdso. {@code path}
 * is the file as mapped (for the vdso "[vdso]"); {@code elf} is read from that file, or through
 * /proc/PID/map_files when the file was deleted or replaced on disk since; {@code loadBias} is added to a
 * link-time address to get the run-time one. {@code buildId} is null when the image has none.
 */
public record Module(String path, long loadBias, String buildId, ElfFile elf, List<Mapping> mappings) {

    /** The last component of the path ("libc.so.6"), or the whole bracketed name ("[vdso]"). */
    public String name() {
        String p = path.endsWith(" (deleted)") ? path.substring(0, path.length() - 10) : path;
        int slash = p.lastIndexOf('/');
        return slash >= 0 ? p.substring(slash + 1) : p;
    }

    public long start() {
        return mappings.getFirst().start();
    }

    public long end() {
        return mappings.getLast().end();
    }

    public boolean contains(long address) {
        for (var m : mappings) {
            if (m.contains(address)) {
                return true;
            }
        }
        return false;
    }

    /** The run-time address of link-time address {@code vaddr}. */
    public long runtime(long vaddr) {
        return vaddr + loadBias;
    }

    @Override
    public String toString() {
        return name() + "@0x" + Long.toHexString(start()) + (buildId != null ? " build-id " + buildId : "");
    }
}
