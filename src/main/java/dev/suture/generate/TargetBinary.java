package dev.suture.generate;

import static dev.suture.elf.ElfConstants.*;

import dev.suture.SutureException;
import dev.suture.elf.DebugFiles;
import dev.suture.elf.ElfFile;
import dev.suture.elf.ProgramHeader;
import dev.suture.elf.Symbol;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Predicate;
import java.util.stream.Collectors;

/**
 * The deployed binary a patch is built for: its bytes and build-id, and its symbol table (from the file or its
 * separate debug file) indexed for the diff: globals by name, statics by source file (STT_FILE blocks) and name.
 */
final class TargetBinary {
    final Path path;
    final ElfFile elf;
    final String buildId;
    /** Whether this is the program itself (its TLS block sits at a fixed offset below the thread pointer). */
    final boolean executable;
    private final Map<String, Symbol> globals = new HashMap<>();
    private final Map<String, List<Located>> locals = new HashMap<>();
    private final Map<String, Symbol> imports = new HashMap<>();

    /** A local symbol with the source file whose STT_FILE block holds it. */
    record Located(String file, Symbol symbol) {}

    private TargetBinary(Path path, ElfFile elf, ElfFile symbols) {
        this.path = path;
        this.elf = elf;
        this.buildId = elf.buildId().orElseThrow(() -> new SutureException(SutureException.Kind.BAD_INPUT,
                path + " has no GNU build-id note; a patch is bound to a build-id (link with -Wl,--build-id)"));
        this.executable = elf.header().e_type() == ET_EXEC || elf.isPie();
        String file = "";
        for (Symbol s : symbols.symbols()) {
            if (s.type() == STT_FILE) {
                file = s.name();
                continue;
            }
            if (!s.isDefined() || s.type() == STT_SECTION || s.name().isEmpty()) {
                continue;
            }
            if (s.isLocal()) {
                locals.computeIfAbsent(s.name(), _ -> new ArrayList<>()).add(new Located(file, s));
            } else {
                globals.putIfAbsent(s.name(), s);
            }
        }
        for (Symbol s : elf.dynamicSymbols()) {
            if (s.isUndefined() && !s.name().isEmpty()) {
                imports.putIfAbsent(s.name(), s);
            } else if (s.isDefined() && !s.isLocal()) {
                globals.putIfAbsent(s.name(), s);
            }
        }
    }

    static TargetBinary open(Path path) {
        ElfFile elf = ElfFile.open(path);
        int type = elf.header().e_type();
        if ((type != ET_EXEC && type != ET_DYN) || elf.header().e_machine() != EM_X86_64) {
            throw new SutureException(SutureException.Kind.BAD_INPUT,
                    path + " is not an x86-64 executable or shared library");
        }
        if (!elf.symbols().isEmpty()) {
            return new TargetBinary(path, elf, elf);
        }
        var debug = DebugFiles.find(elf, path).orElseThrow(() -> new SutureException(SutureException.Kind.BAD_INPUT,
                path + " has no symbol table and no separate debug file was found (looked in "
                        + "/usr/lib/debug/.build-id and by .gnu_debuglink); give an unstripped binary"));
        return new TargetBinary(path, elf, ElfFile.open(debug));
    }

    String name() {
        return path.getFileName().toString();
    }

    Optional<Symbol> global(String name) {
        return Optional.ofNullable(globals.get(name));
    }

    /** The symbol version under which the binary already imports {@code name}, if it does. */
    Optional<Symbol> imported(String name) {
        return Optional.ofNullable(imports.get(name));
    }

    /**
     * The static symbol {@code name} of source file {@code file}: the one in that file's STT_FILE block, else the
     * only one of that name. Several candidates left after {@code prefer} (e.g. "its bytes match the original
     * object") are an error listing them.
     */
    Optional<Symbol> local(String file, String name, Predicate<Symbol> prefer) {
        var all = locals.getOrDefault(name, List.of());
        if (all.isEmpty()) {
            return Optional.empty();
        }
        var inFile = all.stream().filter(l -> l.file().equals(file)).toList();
        var candidates = inFile.isEmpty() ? all : inFile;
        if (candidates.size() > 1) {
            var preferred = candidates.stream().filter(l -> prefer.test(l.symbol())).toList();
            if (preferred.size() == 1) {
                return Optional.of(preferred.getFirst().symbol());
            }
            throw new DiffRefusedException("static symbol " + name + " of " + file + " is ambiguous in "
                    + path + ": " + candidates.stream()
                    .map(l -> String.format("%s at 0x%x (file %s)", name, l.symbol().st_value(),
                            l.file().isEmpty() ? "?" : l.file()))
                    .collect(Collectors.joining(", "))
                    + "; rename one of them or build each file with a distinct name");
        }
        return Optional.of(candidates.getFirst().symbol());
    }

    /** The bytes of the deployed file at a link-time address. */
    Optional<byte[]> bytes(long address, long size) {
        if (size < 0 || size > Integer.MAX_VALUE) {
            return Optional.empty();
        }
        return elf.readAt(address, (int) size);
    }

    /**
     * The thread-pointer offset of a TLS symbol of the executable: its block lies just below the thread pointer,
     * rounded up to the segment's alignment (x86-64 TLS variant II).
     */
    long threadPointerOffset(Symbol tls) {
        ProgramHeader pt = elf.tls().orElseThrow(() -> new DiffRefusedException(
                path + " has no PT_TLS segment, yet the patch uses its thread-local variable " + tls.name()));
        long align = Math.max(1, pt.p_align());
        long block = (pt.p_memsz() + align - 1) / align * align;
        return tls.st_value() - block;
    }
}
