package dev.suture.live;

import dev.suture.elf.SymbolsByAddress;
import dev.suture.proc.Mapping;
import dev.suture.proc.RemoteMemory;
import dev.suture.unwind.CodeMap;
import dev.suture.unwind.CodeModules;
import java.util.ArrayList;
import java.util.List;

/**
 * suture's patch regions as code for the unwinder: each region's text and jump table, with the CFI of its new
 * functions (the relocated {@code .eh_frame} its header locates, read from the target) and the names of its
 * replacements. Read while the target runs, before any window. A region is the target's memory, input from a
 * stranger: one whose header does not decode, or claims code past its mapping, is left out (its frames are then
 * found by frame pointer, an unwind no check trusts); its CFI is checked by {@link CodeModules#inMemory}.
 */
final class RegionCode {
    private RegionCode() {}

    static List<CodeMap.Range> of(int pid, List<Mapping> maps, RemoteMemory memory) {
        var out = new ArrayList<CodeMap.Range>();
        for (var r : Regions.scanDecodable(pid, maps, memory)) {
            long mappingEnd = maps.stream().filter(m -> m.start() == r.address()).mapToLong(Mapping::end)
                    .findFirst().orElse(r.address());
            var code = ApplyTransaction.textRange(r.address(), r.header().layout());
            if (Long.compareUnsigned(code.end(), mappingEnd) <= 0) {
                out.add(of(r, code, memory));
            }
        }
        return out;
    }

    /** The name the unwinder gives a region's code, as it names a module by its path. */
    private static String name(RegionHeader h) {
        return "[patch " + h.patchId() + "]";
    }

    private static CodeMap.Range of(Regions.Found r, Image.Range code, RemoteMemory memory) {
        var h = r.header();
        var l = h.layout();
        var functions = new ArrayList<SymbolsByAddress.Entry>();
        for (var f : h.functions()) {
            if (code.contains(f.newAddress())) {
                functions.add(new SymbolsByAddress.Entry(f.name(), f.newAddress(),
                        Integer.toUnsignedLong(f.newSize())));
            }
        }
        byte[] ehFrame = null;
        if (l.hasEhFrame() && l.ehFrameSize() <= Binder.MAX_REGION) {
            ehFrame = new byte[l.ehFrameSize()];
            if (memory.read(r.address() + l.ehFrameOffset(), ehFrame, 0, ehFrame.length) != ehFrame.length) {
                ehFrame = null;
            }
        }
        return CodeModules.inMemory(name(h), code.start(), code.end(), ehFrame, r.address() + l.ehFrameOffset(),
                functions);
    }
}
