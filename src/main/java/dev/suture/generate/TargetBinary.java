package dev.suture.generate;

import static dev.suture.elf.ElfConstants.*;

import dev.suture.SutureException;
import dev.suture.elf.DebugFiles;
import dev.suture.elf.ElfFile;
import dev.suture.elf.LoadedSections;
import dev.suture.elf.ProgramHeader;
import dev.suture.elf.Symbol;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.function.Predicate;
import java.util.stream.Collectors;

/**
 * The deployed binary a patch is built for: its bytes and build-id, and its symbol table indexed for the diff:
 * globals by name, statics by source file (STT_FILE blocks) and name. The symbols come from the file itself, its
 * separate debug file, or the rebuild's unstripped output once that is proven to load the same bytes; failing
 * those, only its exported functions are known ({@link SymbolSource#EXPORTED}).
 */
final class TargetBinary {
    /** How many differing functions a refusal names before it counts the rest. */
    private static final int NAMED = 12;

    final Path path;
    final ElfFile elf;
    final String buildId;
    /** Whether this is the program itself (its TLS block sits at a fixed offset below the thread pointer). */
    final boolean executable;
    final SymbolSource source;
    /** The rebuild's output compared with the deployed file (null: none was given or needed). */
    private final Path rebuiltPath;
    private final ElfFile rebuilt;
    /** How the rebuild's loaded sections differ from the deployed file's (empty unless {@link #source} is EXPORTED). */
    private final List<LoadedSections.Difference> differences;
    private final Map<String, Symbol> globals = new HashMap<>();
    private final Map<String, List<Located>> locals = new HashMap<>();
    /** How many STT_FILE blocks bear each source file name (same-named files of different directories). */
    private final Map<String, Integer> fileBlocks = new HashMap<>();
    private final Map<String, Symbol> imports = new HashMap<>();

    /**
     * A local symbol with the source file whose STT_FILE block holds it, and which of the blocks of that name it is
     * (0 for the first in the symbol table; the linker writes the blocks in the order it loaded the objects).
     */
    record Located(String file, int block, Symbol symbol) {}

    private TargetBinary(Path path, ElfFile elf, ElfFile symbols, SymbolSource source, Path rebuiltPath,
                         ElfFile rebuilt, List<LoadedSections.Difference> differences) {
        this.path = path;
        this.elf = elf;
        this.source = source;
        this.rebuiltPath = rebuiltPath;
        this.rebuilt = rebuilt;
        this.differences = List.copyOf(differences);
        this.buildId = elf.buildId().orElseThrow(() -> new SutureException(SutureException.Kind.BAD_INPUT,
                path + " has no GNU build-id note; a patch is bound to a build-id (link with -Wl,--build-id)"));
        this.executable = elf.header().e_type() == ET_EXEC || elf.isPie();
        String file = "";
        int block = 0;
        for (Symbol s : symbols == null ? List.<Symbol>of() : symbols.symbols()) {
            if (s.type() == STT_FILE) {
                file = s.name();
                block = fileBlocks.merge(file, 1, Integer::sum) - 1;
                continue;
            }
            if (!s.isDefined() || s.type() == STT_SECTION || s.name().isEmpty()) {
                continue;
            }
            if (s.isLocal()) {
                locals.computeIfAbsent(s.name(), _ -> new ArrayList<>()).add(new Located(file, block, s));
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
        return open(path, null);
    }

    /**
     * The deployed binary at {@code path}; {@code rebuilt}, when not null, is the original build's own output,
     * the symbol source of last resort for a stripped file without a debug file.
     */
    static TargetBinary open(Path path, Path rebuilt) {
        ElfFile elf = ElfFile.open(path);
        int type = elf.header().e_type();
        if ((type != ET_EXEC && type != ET_DYN) || elf.header().e_machine() != EM_X86_64) {
            throw new SutureException(SutureException.Kind.BAD_INPUT,
                    path + " is not an x86-64 executable or shared library");
        }
        if (!elf.symbols().isEmpty()) {
            return new TargetBinary(path, elf, elf, SymbolSource.OWN, null, null, List.of());
        }
        var debug = DebugFiles.find(elf, path);
        if (debug.isPresent()) {
            return new TargetBinary(path, elf, ElfFile.open(debug.get()), SymbolSource.DEBUG_FILE, null, null,
                    List.of());
        }
        if (rebuilt == null) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, path + " has no symbol table and no separate"
                    + " debug file was found (looked in /usr/lib/debug/.build-id and by .gnu_debuglink); give an"
                    + " unstripped binary, install its debug package, or let suture build rebuild it (suture build"
                    + " --target PATH=" + path + ")");
        }
        ElfFile own = ElfFile.open(rebuilt);
        if (own.symbols().isEmpty()) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, path + " has no symbol table and no debug"
                    + " file, and the rebuild's output " + rebuilt + " has none either: it was stripped during the"
                    + " build (for a Debian package, build with DEB_BUILD_OPTIONS=nostrip)");
        }
        var differences = LoadedSections.compare(elf, own);
        return differences.isEmpty()
                ? new TargetBinary(path, elf, own, SymbolSource.REBUILD, rebuilt, own, List.of())
                : new TargetBinary(path, elf, null, SymbolSource.EXPORTED, rebuilt, own, differences);
    }

    /**
     * Why the deployed file's symbols are not proven, for a refusal: how the rebuild's loaded sections differ,
     * which of its functions differ at their address, and what each file's .comment says about its compiler.
     */
    String unproven() {
        if (source != SymbolSource.EXPORTED) {
            return "";
        }
        var differing = new ArrayList<String>();
        int functions = 0;
        for (Symbol s : rebuilt.symbols()) {
            if (!s.isFunction() || !s.isDefined() || s.st_size() <= 0 || s.st_size() > Integer.MAX_VALUE) {
                continue;
            }
            functions++;
            var mine = rebuilt.readAt(s.st_value(), (int) s.st_size());
            var theirs = elf.readAt(s.st_value(), (int) s.st_size());
            if (mine.isEmpty() || theirs.isEmpty() || !Arrays.equals(mine.get(), theirs.get())) {
                differing.add(s.name());
            }
        }
        var text = new StringBuilder(path + " has no symbol table and no debug file, and the rebuild "
                + rebuiltPath + " does not load the same bytes (" + differences.size() + " section"
                + (differences.size() == 1 ? "" : "s") + " differ: "
                + String.join("; ", differences.stream().limit(6).map(LoadedSections.Difference::toString).toList())
                + (differences.size() > 6 ? "; ..." : "") + ").");
        text.append("\n").append(differing.size()).append(" of ").append(functions)
                .append(" functions of the rebuild differ from the deployed bytes at their address");
        if (!differing.isEmpty()) {
            text.append(": ").append(String.join(", ", differing.subList(0, Math.min(NAMED, differing.size()))))
                    .append(differing.size() > NAMED ? " and " + (differing.size() - NAMED) + " more" : "");
        }
        String deployedBy = compilers(elf);
        text.append(".\n").append(path.getFileName()).append(deployedBy == null
                ? " has no .comment naming its compiler (Debian's dh_strip removes it)"
                : " says it was built by " + deployedBy).append("; the rebuild was made by ")
                .append(Objects.requireNonNullElse(compilers(rebuilt), "a compiler it does not name")).append('.');
        return text.toString();
    }

    /** What a file's .comment says about the tools that built it; null when it has none. */
    static String compilers(ElfFile f) {
        var comment = f.section(".comment");
        if (comment.isEmpty() || comment.get().isNobits()) {
            return null;
        }
        var names = new LinkedHashSet<String>();
        for (String s : new String(f.bytes(comment.get()), StandardCharsets.ISO_8859_1).split("\0")) {
            if (!s.isBlank()) {
                names.add(s.strip());
            }
        }
        return names.isEmpty() ? null : String.join(" / ", names);
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
     * Where a static of one original object is, among same-named source files: the object is the {@code ordinal}-th
     * (from 0) of {@code siblings} objects built from a file of its name, in link order ({@code ordinal} -1: not
     * known); {@code object} names it in messages.
     */
    record Origin(String file, String object, int ordinal, int siblings) {}

    /**
     * The static symbol {@code name} of the source file of {@code origin}: the one in that file's STT_FILE block,
     * else the only one of that name. When several files of that name hold one, the link order picks the block
     * (the objects' order is the blocks' order when both count the same) and {@code proven} (its bytes are the
     * original object's) must confirm it; without an order that holds, {@code proven} alone must single one out.
     * A choice that cannot be proven is refused, saying what would resolve it.
     */
    Optional<Symbol> local(Origin origin, String name, Predicate<Symbol> proven) {
        var all = locals.getOrDefault(name, List.of());
        if (all.isEmpty()) {
            return Optional.empty();
        }
        var inFile = all.stream().filter(l -> l.file().equals(origin.file())).toList();
        var candidates = inFile.isEmpty() ? all : inFile;
        if (candidates.size() == 1) {
            return Optional.of(candidates.getFirst().symbol());
        }
        int blocks = fileBlocks.getOrDefault(origin.file(), 0);
        boolean ordered = !inFile.isEmpty() && origin.ordinal() >= 0 && origin.siblings() == blocks;
        if (ordered) {
            var chosen = inFile.stream().filter(l -> l.block() == origin.ordinal()).toList();
            if (chosen.isEmpty()) {
                return Optional.empty();        // the object's block has none: inlined or discarded there
            }
            if (chosen.size() == 1 && proven.test(chosen.getFirst().symbol())) {
                return Optional.of(chosen.getFirst().symbol());
            }
        }
        var matching = candidates.stream().filter(l -> proven.test(l.symbol())).toList();
        if (matching.size() == 1) {
            return Optional.of(matching.getFirst().symbol());
        }
        String order = inFile.isEmpty() ? "none of them is in a block of a file named " + origin.file()
                : origin.ordinal() < 0 ? "the link order is not known (suture build records it; suture diff has only"
                + " the objects)"
                : !ordered ? "the link took " + origin.siblings() + " objects built from a file named "
                + origin.file() + " but " + name() + " has " + blocks + " blocks of that name"
                : "the link order picks the " + ordinalName(origin.ordinal()) + " " + origin.file()
                + ", but its bytes are not " + origin.object() + "'s";
        String content = matching.isEmpty() ? "and the bytes of none of them are"
                : "and the bytes of " + matching.size() + " of them are";
        throw new DiffRefusedException("static symbol " + name + " of " + origin.object() + " cannot be told apart"
                + " in " + path + ": " + candidates.stream()
                .map(l -> String.format("%s at 0x%x (%s %s)", name, l.symbol().st_value(),
                        l.file().isEmpty() ? "no file" : ordinalName(l.block()), l.file().isEmpty() ? "" : l.file()))
                .collect(Collectors.joining(", "))
                + "; " + order + ", " + content + " the original object's. To resolve it, make the patch with suture"
                + " build from exactly the deployed sources and flags: it gives the diff every object in link order,"
                + " which picks one, and the original build's bytes prove the choice");
    }

    private static String ordinalName(int index) {
        return switch (index) {
            case 0 -> "1st";
            case 1 -> "2nd";
            case 2 -> "3rd";
            default -> (index + 1) + "th";
        };
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
