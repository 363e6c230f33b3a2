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
