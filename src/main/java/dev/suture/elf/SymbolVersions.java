package dev.suture.elf;

import static dev.suture.elf.ElfConstants.*;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The GNU symbol versioning tables of a file: {@code .gnu.version} (one index per dynamic symbol),
 * {@code .gnu.version_d} (versions this file defines) and {@code .gnu.version_r} (versions it needs).
 */
final class SymbolVersions {
    static final SymbolVersions NONE = new SymbolVersions(null, null, List.of(), List.of());

    /** A version this file defines: index as used in .gnu.version, flags (VER_FLG_BASE...), name, parents. */
    record Definition(int index, int flags, String name, List<String> parents) {}

    /** A version this file needs from {@code file}; {@code index} is what .gnu.version entries use for it. */
    record Requirement(String file, String name, int index, int flags) {}

    private final ByteBuffer versym;
    private final Section versymSection;
    final List<Definition> definitions;
    final List<Requirement> requirements;
    private final Map<Integer, String> defined = new HashMap<>();
    private final Map<Integer, String> needed = new HashMap<>();

    private SymbolVersions(ByteBuffer versym, Section versymSection, List<Definition> definitions,
                           List<Requirement> requirements) {
        this.versym = versym;
        this.versymSection = versymSection;
        this.definitions = definitions;
        this.requirements = requirements;
        for (var d : definitions) {
            defined.putIfAbsent(d.index(), d.name());
        }
        for (var r : requirements) {
            needed.putIfAbsent(r.index(), r.name());
        }
    }

    static SymbolVersions read(ElfFile elf) {
        var versymSec = elf.sectionOfType(SHT_GNU_versym);
        if (versymSec.isEmpty()) {
            return NONE;
        }
        var defs = new ArrayList<Definition>();
        var reqs = new ArrayList<Requirement>();
        var verdef = elf.sectionOfType(SHT_GNU_verdef);
        if (verdef.isPresent()) {
            readDefinitions(elf, verdef.get(), defs);
        }
        var verneed = elf.sectionOfType(SHT_GNU_verneed);
        if (verneed.isPresent()) {
            readRequirements(elf, verneed.get(), reqs);
        }
        return new SymbolVersions(elf.contents(versymSec.get()), versymSec.get(), List.copyOf(defs),
                List.copyOf(reqs));
    }

    /** The .gnu.version entry of dynamic symbol {@code i}. */
    int versym(int i) {
        if (versym == null) {
            return VER_NDX_GLOBAL;
        }
        return Short.toUnsignedInt(versym.getShort(i * 2));
    }

    boolean covers(int i) {
        return versym == null || (long) i * 2 + 2 <= versym.capacity();
    }

    Section versymSection() {
        return versymSection;
    }

    /** A symbol's version and where it comes from. */
    record Version(String name, boolean needed) {}

    /**
     * The version for a .gnu.version index (hidden bit removed), looked up as readelf does: a defined symbol in the
     * definitions first, then the requirements. The symbol that marks a version definition (named like the
     * version itself) has none. Null for local and base-global symbols.
     */
    Version lookup(int index, boolean definedSymbol, String symbolName) {
        if (index == VER_NDX_LOCAL || index == VER_NDX_GLOBAL) {
            return null;
        }
        if (definedSymbol) {
            String d = defined.get(index);
            if (d != null) {
                return d.equals(symbolName) ? null : new Version(d, false);
            }
        }
        String n = needed.get(index);
        return n == null ? null : new Version(n, true);
    }

    private static void readDefinitions(ElfFile elf, Section sec, List<Definition> out) {
        var b = elf.contents(sec);
        var strings = elf.linkedStrings(sec);
        String where = elf.describe(sec);
        long max = Math.min(Integer.toUnsignedLong(sec.sh_info()), b.capacity() / 20 + 1);
        long off = 0;
        for (long k = 0; k < max; k++) {
            need(elf, b, off, 20, where, "version definition " + k);
            int o = (int) off;
            int flags = Short.toUnsignedInt(b.getShort(o + 2));
            int ndx = Short.toUnsignedInt(b.getShort(o + 4));
            int cnt = Short.toUnsignedInt(b.getShort(o + 6));
            long aux = Integer.toUnsignedLong(b.getInt(o + 12));
            long next = Integer.toUnsignedLong(b.getInt(o + 16));
            String name = null;
            var parents = new ArrayList<String>();
            long a = off + aux;
            for (int j = 0; j < cnt && j <= b.capacity() / 8; j++) {
                need(elf, b, a, 8, where, "auxiliary entry " + j + " of version definition " + k);
                String n = strings.at(Integer.toUnsignedLong(b.getInt((int) a)), where);
                if (j == 0) {
                    name = n;
                } else {
                    parents.add(n);
                }
                long an = Integer.toUnsignedLong(b.getInt((int) a + 4));
                if (an == 0) {
                    break;
                }
                a += an;
            }
            out.add(new Definition(ndx, flags, name == null ? "" : name, List.copyOf(parents)));
            if (next == 0) {
                break;
            }
            off += next;
        }
    }

    private static void readRequirements(ElfFile elf, Section sec, List<Requirement> out) {
        var b = elf.contents(sec);
        var strings = elf.linkedStrings(sec);
        String where = elf.describe(sec);
        long max = Math.min(Integer.toUnsignedLong(sec.sh_info()), b.capacity() / 16 + 1);
        long off = 0;
        for (long k = 0; k < max; k++) {
            need(elf, b, off, 16, where, "version requirement " + k);
            int o = (int) off;
            int cnt = Short.toUnsignedInt(b.getShort(o + 2));
            String file = strings.at(Integer.toUnsignedLong(b.getInt(o + 4)), where);
            long aux = Integer.toUnsignedLong(b.getInt(o + 8));
            long next = Integer.toUnsignedLong(b.getInt(o + 12));
            long a = off + aux;
            for (int j = 0; j < cnt && j <= b.capacity() / 16; j++) {
                need(elf, b, a, 16, where, "auxiliary entry " + j + " of version requirement " + k);
                int ao = (int) a;
                int flags = Short.toUnsignedInt(b.getShort(ao + 4));
                int other = Short.toUnsignedInt(b.getShort(ao + 6));
                String name = strings.at(Integer.toUnsignedLong(b.getInt(ao + 8)), where);
                out.add(new Requirement(file, name, other, flags));
                long an = Integer.toUnsignedLong(b.getInt(ao + 12));
                if (an == 0) {
                    break;
                }
                a += an;
            }
            if (next == 0) {
                break;
            }
            off += next;
        }
    }

    private static void need(ElfFile elf, ByteBuffer b, long off, int len, String where, String what) {
        if (off < 0 || off + len > b.capacity()) {
            throw elf.error(where + ": " + what + " at offset 0x" + Long.toHexString(off)
                    + " lies outside the section (size 0x" + Integer.toHexString(b.capacity()) + ")");
        }
    }
}
