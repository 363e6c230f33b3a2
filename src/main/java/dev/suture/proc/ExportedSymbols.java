package dev.suture.proc;

import dev.suture.elf.ElfFile;
import dev.suture.elf.Symbol;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** The exported symbols of one ELF file by name, for the dynamic linker's name -> symbol. Built once per module. */
final class ExportedSymbols {
    private final Map<String, List<Symbol>> exported = new HashMap<>();

    ExportedSymbols(ElfFile elf) {
        for (var s : elf.dynamicSymbols()) {
            if (s.isDefined() && !s.isLocal() && !s.name().isEmpty()) {
                exported.computeIfAbsent(s.name(), k -> new ArrayList<>()).add(s);
            }
        }
    }

    /**
     * The exported definition of {@code name} the dynamic linker would bind: for "name@VER" that version, for a
     * bare name the default version (name@@VER) or an unversioned one.
     */
    Symbol exported(String name) {
        String base = name;
        String version = null;
        int at = name.indexOf('@');
        if (at > 0) {
            base = name.substring(0, at);
            version = name.substring(name.lastIndexOf('@') + 1);
        }
        var candidates = exported.get(base);
        if (candidates == null) {
            return null;
        }
        for (var s : candidates) {
            if (version == null ? !s.versionHidden() : version.equals(s.version())) {
                return s;
            }
        }
        return null;
    }
}
