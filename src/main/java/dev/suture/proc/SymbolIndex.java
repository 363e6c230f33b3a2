package dev.suture.proc;

import dev.suture.elf.ElfFile;
import dev.suture.elf.Symbol;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;

/**
 * The defined symbols of one ELF file, sorted by address for address -> symbol, and the exported ones by name
 * for the dynamic linker's name -> symbol. Built once per module, on first use.
 */
final class SymbolIndex {
    private final long[] starts;
    private final Symbol[] byAddress;
    private final Map<String, List<Symbol>> exported = new HashMap<>();

    SymbolIndex(ElfFile elf) {
        var all = new ArrayList<Symbol>();
        var seen = new HashSet<String>();
        for (var list : List.of(elf.symbols(), elf.dynamicSymbols())) {
            for (var s : list) {
                if (!s.inSection() || s.name().isEmpty() || !(s.isFunction() || s.isObject())) {
                    continue;
                }
                if (seen.add(s.st_value() + " " + s.name())) { // .symtab repeats what .dynsym exports
                    all.add(s);
                }
            }
        }
        // by address; at one address the global name wins over weak and local aliases (what a person looks for)
        all.sort(Comparator.comparingLong(Symbol::st_value).thenComparingInt(s -> s.isGlobal() ? 0 : s.isWeak() ? 1 : 2));
        starts = new long[all.size()];
        byAddress = new Symbol[all.size()];
        for (int i = 0; i < all.size(); i++) {
            starts[i] = all.get(i).st_value();
            byAddress[i] = all.get(i);
        }
        for (var s : elf.dynamicSymbols()) {
            if (s.isDefined() && !s.isLocal() && !s.name().isEmpty()) {
                exported.computeIfAbsent(s.name(), k -> new ArrayList<>()).add(s);
            }
        }
    }

    /** The symbol whose [st_value, st_value + st_size) holds {@code vaddr}, or the one just before it when sizeless. */
    Symbol at(long vaddr) {
        int lo = 0;
        int hi = starts.length - 1;
        int found = -1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (starts[mid] <= vaddr) {
                found = mid;
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        // several symbols may start at the same address (aliases): prefer the first, which sorted as global
        while (found > 0 && starts[found - 1] == starts[found]) {
            found--;
        }
        for (int i = found; i >= 0 && i > found - 8; i--) {
            Symbol s = byAddress[i];
            if (vaddr - s.st_value() < Math.max(1, s.st_size())) {
                return s;
            }
        }
        return null;
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
