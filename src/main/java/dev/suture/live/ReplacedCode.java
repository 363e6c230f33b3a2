package dev.suture.live;

import dev.suture.elf.DebugFiles;
import dev.suture.elf.ElfFile;
import dev.suture.elf.Symbol;
import dev.suture.patch.ReplacedFunction;
import dev.suture.proc.Mapping;
import dev.suture.proc.Module;
import dev.suture.x86.DoesNotFitException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A replaced function is code of its module (principle 6 beyond the hash): its whole range lies in one executable
 * mapping of the module's file, and where the module has a symbol table (its own {@code .symtab}, or its debug
 * file's) a function symbol of that name and size starts at that address. A hash alone would let a patch "replace"
 * the GOT or {@code .rodata}, whose bytes anyone can hash. With {@code .dynsym} alone only exported functions are
 * known: a replaced function must then not start inside one, and where one starts at its address it must carry
 * its name.
 */
final class ReplacedCode {
    /** Where the names came from, for a person reading a refusal. */
    enum Source { SYMTAB, DEBUG_FILE, DYNSYM }

    private final Module module;
    private final Source source;
    private final String debugFile;
    private final List<Symbol> functions;

    private ReplacedCode(Module module, Source source, String debugFile, List<Symbol> functions) {
        this.module = module;
        this.source = source;
        this.debugFile = debugFile;
        this.functions = functions;
    }

    /** The function symbols of {@code module}: its .symtab, else its debug file's, else its .dynsym alone. */
    static ReplacedCode of(Module module) {
        var elf = module.elf();
        if (hasFunctions(elf.symbols())) {
            return new ReplacedCode(module, Source.SYMTAB, null, functions(elf.symbols(), elf.dynamicSymbols()));
        }
        var debug = debugFile(module);
        if (debug != null) {
            try (var d = ElfFile.open(debug)) {
                if (hasFunctions(d.symbols())) {
                    return new ReplacedCode(module, Source.DEBUG_FILE, debug.toString(),
                            functions(d.symbols(), elf.dynamicSymbols()));
                }
            } catch (RuntimeException e) {
                // a broken debug file is no symbol table: fall back to what the module exports
            }
        }
        return new ReplacedCode(module, Source.DYNSYM, null, functions(elf.dynamicSymbols()));
    }

    /** Refuses {@code f} (at run-time {@code address}) unless it is code of the module, named as its symbols say. */
    void require(int pid, ReplacedFunction f, long address) {
        Mapping code = null;
        long end = address + f.size();
        for (var m : module.mappings()) {
            if (m.executable() && f.size() > 0 && m.contains(address) && Long.compareUnsigned(end, m.end()) <= 0
                    && Long.compareUnsigned(end, address) > 0) {
                code = m;
            }
        }
        if (code == null) {
            Mapping at = module.mappings().stream().filter(m -> m.contains(address)).findFirst().orElse(null);
            throw new DoesNotFitException(String.format("pid %d: the patch replaces %s at 0x%x (%d bytes), which is"
                    + " not code of %s: %s; a replaced function must lie in one executable mapping of the module."
                    + " The patch was not built for this binary, or was made to write over data; nothing was"
                    + " written", pid, f.symbol(), address, f.size(), module.path(), at == null
                    ? "the range is outside every executable mapping of the module"
                    : "it lies in mapping " + at + (at.executable() ? ", past its end" : ", which is not executable")));
        }
        long vaddr = f.targetAddress();
        var starting = functions.stream().filter(s -> s.st_value() == vaddr).toList();
        boolean named = starting.stream().anyMatch(s -> sameName(s.name(), f.symbol()) && s.st_size() == f.size());
        if (source != Source.DYNSYM && !named) {
            throw misnamed(pid, f, address, starting);
        }
        if (source == Source.DYNSYM && !starting.isEmpty() && !named) {
            throw misnamed(pid, f, address, starting);
        }
        if (source == Source.DYNSYM && starting.isEmpty()) {
            for (var s : functions) {
                if (Long.compareUnsigned(vaddr - s.st_value(), s.st_size()) < 0) {
                    throw new DoesNotFitException(String.format("pid %d: the patch replaces %s at 0x%x, which starts"
                            + " inside function %s of %s (0x%x, %d bytes); a replaced function starts where its symbol"
                            + " does. The patch was not built for this binary; nothing was written", pid, f.symbol(),
                            address, s.name(), module.path(), module.runtime(s.st_value()), s.st_size()));
                }
            }
        }
    }

    private DoesNotFitException misnamed(int pid, ReplacedFunction f, long address, List<Symbol> starting) {
        String there = starting.isEmpty() ? "no function starts there"
                : "what starts there is " + String.join(", ", starting.stream()
                        .map(s -> s.name() + " (" + s.st_size() + " bytes)").toList());
        String from = switch (source) {
            case SYMTAB -> "its symbol table";
            case DEBUG_FILE -> "its debug file " + debugFile;
            case DYNSYM -> "its dynamic symbol table";
        };
        return new DoesNotFitException(String.format("pid %d: the patch replaces function %s at 0x%x (%d bytes) in"
                + " %s, but by %s %s; the patch was not built for this binary, or names another function than the"
                + " one it writes over; nothing was written", pid, f.symbol(), address, f.size(), module.path(), from,
                there));
    }

    /** Equal names, a version suffix ({@code @@GLIBC_2.14}) aside: .symtab may carry it, .dynsym does not. */
    private static boolean sameName(String a, String b) {
        return base(a).equals(base(b));
    }

    private static String base(String name) {
        int at = name.indexOf('@');
        return at > 0 ? name.substring(0, at) : name;
    }

    private static boolean hasFunctions(List<Symbol> symbols) {
        return symbols.stream().anyMatch(s -> s.isFunction() && s.inSection() && !s.name().isEmpty());
    }

    @SafeVarargs
    private static List<Symbol> functions(List<Symbol>... tables) {
        var out = new ArrayList<Symbol>();
        for (var table : tables) {
            for (var s : table) {
                if (s.isFunction() && s.inSection() && !s.name().isEmpty()) {
                    out.add(s);
                }
            }
        }
        return out;
    }

    private static Path debugFile(Module m) {
        if (m.path().startsWith("[")) {
            return null;
        }
        try {
            String path = m.path().endsWith(" (deleted)") ? m.path().substring(0, m.path().length() - 10) : m.path();
            return DebugFiles.find(m.elf(), Path.of(path)).orElse(null);
        } catch (RuntimeException e) {
            return null;
        }
    }
}
