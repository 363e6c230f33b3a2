package dev.suture.unwind;

import dev.suture.elf.ElfFile;
import dev.suture.elf.Section;
import dev.suture.elf.Symbol;
import dev.suture.elf.SymbolsByAddress;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/** Builds {@link CodeModule}s from ELF files: CFI from .eh_frame (+ .debug_frame), symbols from .symtab and .dynsym. */
public final class CodeModules {
    private CodeModules() {}

    /**
     * The unwinding view of {@code elf} loaded at {@code loadBias}; {@code debugFile} (a separate debug file, or
     * null) adds its .debug_frame and .symtab. Malformed CFI leaves the module without it (frames there fall back
     * to frame pointers), it never fails the load.
     */
    public static CodeModule load(String name, ElfFile elf, long loadBias, ElfFile debugFile) {
        return new CodeModule(name, loadBias, ehFrame(name, elf), debugFrame(name, elf, debugFile),
                symbols(elf, debugFile));
    }

    /**
     * Code that exists only in a process's memory, such as a patch region: {@code [start, end)} named {@code name},
     * its CFI the {@code .eh_frame} read from the process at run-time {@code ehFrameAddress} ({@code ehFrame} null
     * when there is none), its functions at run-time addresses. The bytes are input from a stranger: the CFI is kept
     * only when every entry parses, every FDE describes code inside {@code [start, end)} and its program runs to
     * its last row. Anything else leaves the code without CFI, so no unwind through it is trusted; it never fails.
     */
    public static CodeMap.Range inMemory(String name, long start, long end, byte[] ehFrame, long ehFrameAddress,
                                         List<SymbolsByAddress.Entry> functions) {
        var cfi = ehFrame == null || ehFrame.length == 0 ? null : checkedCfi(name, start, end, ehFrame, ehFrameAddress);
        return new CodeMap.Range(start, end, new CodeModule(name, 0, cfi, null, new SymbolsByAddress(functions)));
    }

    private static CallFrameSection checkedCfi(String name, long start, long end, byte[] ehFrame, long address) {
        try {
            var cfi = CallFrameSection.ehFrame(name, ehFrame, address, null, 0, 0, 0);
            var fdes = cfi.entries();
            if (cfi.problem() != null || fdes.size() != cfi.size()) {
                return null;
            }
            var context = new UnwindContext();
            for (FrameDescriptionEntry fde : fdes) {
                if (fde.pcRange() <= 0 || Long.compareUnsigned(fde.pcBegin(), start) < 0
                        || Long.compareUnsigned(fde.pcBegin(), end) >= 0
                        || Long.compareUnsigned(fde.pcRange(), end - fde.pcBegin()) > 0) {
                    return null;
                }
                context.evaluate(cfi, fde, fde.pcEnd() - 1);
            }
            return cfi;
        } catch (RuntimeException e) {
            return null; // UnwindException, or anything else malformed bytes provoke
        }
    }

    static CallFrameSection ehFrame(String name, ElfFile elf) {
        Optional<Section> eh = elf.ehFrame();
        if (eh.isEmpty() || eh.get().sh_size() == 0) {
            return null;
        }
        try {
            Optional<Section> hdr = elf.ehFrameHdr();
            long text = elf.section(".text").map(Section::sh_addr).orElse(0L);
            long got = elf.section(".got").map(Section::sh_addr).orElse(0L);
            return CallFrameSection.ehFrame(name, elf.bytes(eh.get()), eh.get().sh_addr(),
                    hdr.map(elf::bytes).orElse(null), hdr.map(Section::sh_addr).orElse(0L), text, got);
        } catch (RuntimeException e) {
            return null;
        }
    }

    private static CallFrameSection debugFrame(String name, ElfFile elf, ElfFile debugFile) {
        for (ElfFile f : debugFile == null ? List.of(elf) : List.of(elf, debugFile)) {
            var s = f.section(".debug_frame");
            if (s.isPresent() && s.get().sh_size() > 0 && s.get().sh_type() != dev.suture.elf.ElfConstants.SHT_NOBITS) {
                try {
                    return CallFrameSection.debugFrame(name, f.bytes(s.get()));
                } catch (RuntimeException e) {
                    return null;
                }
            }
        }
        return null;
    }

    /** Function symbols: the debug file's .symtab first when given, then .symtab, then .dynsym. */
    static SymbolsByAddress symbols(ElfFile elf, ElfFile debugFile) {
        var tables = new ArrayList<List<Symbol>>();
        if (debugFile != null) {
            tables.add(safe(debugFile::symbols));
        }
        tables.add(safe(elf::symbols));
        tables.add(safe(elf::dynamicSymbols));
        return SymbolsByAddress.of(tables, Symbol::isFunction);
    }

    private static List<Symbol> safe(java.util.function.Supplier<List<Symbol>> table) {
        try {
            return table.get();
        } catch (RuntimeException e) {
            return List.of();
        }
    }
}
