package dev.suture.generate;

import static dev.suture.elf.ElfConstants.*;

import dev.suture.SutureException;
import dev.suture.elf.ElfFile;
import dev.suture.elf.Relocation;
import dev.suture.elf.Section;
import dev.suture.elf.Symbol;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * One relocatable object of a build, indexed for the diff: the symbols that own each section (with
 * -ffunction-sections -fdata-sections, one function or variable per section), and each section's relocations.
 */
final class ObjectFile {
    final Path path;
    /** What pairs this object with its counterpart in the other build (null: its relative path decides). */
    final String key;
    final ElfFile elf;
    /** The source file name of the first STT_FILE symbol (as in the linked binary's symbol table). */
    final String sourceFile;
    private final Map<Integer, List<Symbol>> owners = new HashMap<>();
    private final Map<Integer, List<Relocation>> relocations = new HashMap<>();
    private final Map<Integer, byte[]> bytes = new HashMap<>();
    private LineTable lines;

    private ObjectFile(Path path, String key, ElfFile elf) {
        this.path = path;
        this.key = key;
        this.elf = elf;
        String file = null;
        for (Symbol s : elf.symbols()) {
            if (s.type() == STT_FILE && file == null) {
                file = s.name();
            }
            if (s.inSection() && (s.isFunction() || s.isObject() || s.type() == STT_TLS)) {
                owners.computeIfAbsent(s.st_shndx(), _ -> new ArrayList<>()).add(s);
            }
        }
        owners.values().forEach(l -> l.sort(Comparator.comparingLong(Symbol::st_value)));
        this.sourceFile = file != null ? file : path.getFileName().toString();
        var sections = elf.sections();
        var symbols = elf.symbols();
        for (Section rs : sections) {
            if (rs.sh_type() == SHT_REL) {
                throw new SutureException(SutureException.Kind.BAD_INPUT, path + ": section " + rs.name()
                        + " is SHT_REL; x86-64 objects use SHT_RELA");
            }
            if (rs.sh_type() != SHT_RELA || rs.sh_info() <= 0 || rs.sh_info() >= sections.size()
                    || !(sections.get(rs.sh_info()).isAlloc() || sections.get(rs.sh_info()).name().equals(".debug_line"))) {
                continue; // debug info relocations are most of an object built with -g; the diff needs the line table's
            }
            relocations.computeIfAbsent(rs.sh_info(), _ -> new ArrayList<>()).addAll(decodeRela(rs, symbols));
        }
        relocations.values().forEach(l -> l.sort(Comparator.comparingLong(Relocation::r_offset)));
    }

    /** The entries of one SHT_RELA section of this object (its symbols are the object's .symtab). */
    private List<Relocation> decodeRela(Section rs, List<Symbol> symbols) {
        if (rs.sh_entsize() != 24) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, path + ": " + rs.name() + " has sh_entsize "
                    + rs.sh_entsize() + ", expected 24");
        }
        var b = elf.contents(rs);
        int count = b.remaining() / 24;
        var out = new ArrayList<Relocation>(count);
        for (int i = 0; i < count; i++) {
            int at = i * 24;
            long info = b.getLong(at + 8);
            int symIndex = (int) (info >>> 32);
            if (symIndex < 0 || symIndex >= symbols.size()) {
                throw new SutureException(SutureException.Kind.BAD_INPUT, path + ": " + rs.name() + " entry " + i
                        + " names symbol " + Integer.toUnsignedString(symIndex) + ", beyond the symbol table");
            }
            out.add(new Relocation(b.getLong(at), (int) info, symIndex == 0 ? null : symbols.get(symIndex),
                    b.getLong(at + 16), symIndex));
        }
        return out;
    }

    /** The object read from its file, or decoded from the image it was given in. */
    static ObjectFile open(DiffRequest.ObjectInput input) {
        Path path = input.path();
        var elf = input.image() == null ? ElfFile.open(path) : ElfFile.parse(path.toString(), input.image());
        if (elf.header().e_type() != ET_REL || elf.header().e_machine() != EM_X86_64) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, path
                    + ": not an x86-64 relocatable object (give the .o files of the build, not a linked file)");
        }
        return new ObjectFile(path, input.key(), elf);
    }

    String name() {
        return path.toString();
    }

    Section section(int index) {
        return elf.section(index);
    }

    List<Section> sections() {
        return elf.sections();
    }

    List<Symbol> symbols() {
        return elf.symbols();
    }

    Symbol symbol(int index) {
        return elf.symbols().get(index);
    }

    byte[] bytes(int section) {
        return bytes.computeIfAbsent(section, i -> {
            var s = elf.section(i);
            return s.isNobits() ? new byte[0] : elf.bytes(s);
        });
    }

    List<Relocation> relocations(int section) {
        return relocations.getOrDefault(section, List.of());
    }

    /** The object's DWARF line table (empty when it was built without -g), decoded on first use. */
    synchronized LineTable lines() {
        if (lines == null) {
            lines = LineTable.of(this);
        }
        return lines;
    }

    /** The functions and variables defined in a section, by address. */
    List<Symbol> owners(int section) {
        return owners.getOrDefault(section, List.of());
    }

    /** The function or variable of {@code section} that covers {@code offset} (the last one starting at or before). */
    Symbol owner(int section, long offset) {
        var list = owners(section);
        Symbol best = null;
        for (Symbol s : list) {
            if (s.st_value() <= offset) {
                best = s;
            }
        }
        return best != null ? best : (list.isEmpty() ? null : list.getFirst());
    }

    @Override
    public String toString() {
        return path.toString();
    }
}
