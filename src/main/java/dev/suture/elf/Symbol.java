package dev.suture.elf;

import static dev.suture.elf.ElfConstants.*;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * One symbol table entry. {@code version} is the symbol version from {@code .gnu.version} (dynamic symbols only;
 * null when the symbol has none, i.e. local or base-global), {@code versionHidden} is the hidden bit (a non-default
 * version, {@code name@VER} rather than {@code name@@VER}), and {@code versionNeeded} says the version is one this
 * file requires from another ({@code .gnu.version_r}) rather than one it defines ({@code .gnu.version_d}).
 */
public record Symbol(int index, String name, long st_value, long st_size, int type, int bind, int visibility,
                     int st_shndx, String version, boolean versionHidden, boolean versionNeeded) {

    /** A symbol whose version, if any, is one the file defines. */
    public Symbol(int index, String name, long st_value, long st_size, int type, int bind, int visibility,
                  int st_shndx, String version, boolean versionHidden) {
        this(index, name, st_value, st_size, type, bind, visibility, st_shndx, version, versionHidden, false);
    }

    public boolean isUndefined() {
        return st_shndx == ElfConstants.SHN_UNDEF;
    }

    public boolean isDefined() {
        return st_shndx != ElfConstants.SHN_UNDEF;
    }

    public boolean isAbsolute() {
        return st_shndx == ElfConstants.SHN_ABS;
    }

    public boolean isCommon() {
        return st_shndx == ElfConstants.SHN_COMMON;
    }

    public boolean isFunction() {
        return type == ElfConstants.STT_FUNC || type == ElfConstants.STT_GNU_IFUNC;
    }

    public boolean isObject() {
        return type == ElfConstants.STT_OBJECT;
    }

    public boolean isSection() {
        return type == ElfConstants.STT_SECTION;
    }

    public boolean isLocal() {
        return bind == ElfConstants.STB_LOCAL;
    }

    public boolean isGlobal() {
        return bind == ElfConstants.STB_GLOBAL;
    }

    public boolean isWeak() {
        return bind == ElfConstants.STB_WEAK;
    }

    /** Whether {@code st_shndx} is the index of a real section (not UNDEF, ABS, COMMON or another reserved value). */
    public boolean inSection() {
        return st_shndx != ElfConstants.SHN_UNDEF && (st_shndx < ElfConstants.SHN_LORESERVE || st_shndx > 0xffff);
    }

    /**
     * The name with its version as readelf shows it: {@code name@@VER} for the default version a file defines,
     * {@code name@VER} for a hidden one or a version required from another file, else the plain name.
     */
    public String versionedName() {
        if (version == null) {
            return name;
        }
        return name + (versionHidden || versionNeeded ? "@" : "@@") + version;
    }

    public String typeName() {
        return switch (type) {
            case ElfConstants.STT_NOTYPE -> "NOTYPE";
            case ElfConstants.STT_OBJECT -> "OBJECT";
            case ElfConstants.STT_FUNC -> "FUNC";
            case ElfConstants.STT_SECTION -> "SECTION";
            case ElfConstants.STT_FILE -> "FILE";
            case ElfConstants.STT_COMMON -> "COMMON";
            case ElfConstants.STT_TLS -> "TLS";
            case ElfConstants.STT_GNU_IFUNC -> "IFUNC";
            default -> "<" + type + ">";
        };
    }

    public String bindName() {
        return switch (bind) {
            case ElfConstants.STB_LOCAL -> "LOCAL";
            case ElfConstants.STB_GLOBAL -> "GLOBAL";
            case ElfConstants.STB_WEAK -> "WEAK";
            case ElfConstants.STB_GNU_UNIQUE -> "UNIQUE";
            default -> "<" + bind + ">";
        };
    }

    public String visibilityName() {
        return switch (visibility) {
            case ElfConstants.STV_DEFAULT -> "DEFAULT";
            case ElfConstants.STV_INTERNAL -> "INTERNAL";
            case ElfConstants.STV_HIDDEN -> "HIDDEN";
            default -> "PROTECTED";
        };
    }

    /** The section index as readelf -s prints it: UND, ABS, COM or the number. */
    public String sectionIndexName() {
        return switch (st_shndx) {
            case ElfConstants.SHN_UNDEF -> "UND";
            case ElfConstants.SHN_ABS -> "ABS";
            case ElfConstants.SHN_COMMON -> "COM";
            default -> Integer.toString(st_shndx);
        };
    }

    /** Decodes a SHT_SYMTAB or SHT_DYNSYM section (with versions for the latter). */
    static List<Symbol> readTable(ElfFile elf, Section table) {
        if (table.sh_entsize() != SYM_SIZE) {
            throw elf.error(elf.describe(table) + ": sh_entsize is " + table.sh_entsize() + ", expected " + SYM_SIZE);
        }
        int base = elf.checkRange(table.sh_offset(), table.sh_size(), elf.describe(table));
        int count = (int) (table.sh_size() / SYM_SIZE);
        var strings = elf.linkedStrings(table);
        // Section indices >= SHN_LORESERVE are escaped through SHT_SYMTAB_SHNDX when st_shndx is SHN_XINDEX.
        ByteBuffer xindex = null;
        for (var s : elf.sections()) {
            if (s.sh_type() == SHT_SYMTAB_SHNDX && s.sh_link() == table.index()) {
                xindex = elf.contents(s);
            }
        }
        SymbolVersions vers = table.sh_type() == SHT_DYNSYM ? elf.versions() : SymbolVersions.NONE;
        var out = new ArrayList<Symbol>(count);
        for (int i = 0; i < count; i++) {
            int o = base + i * SYM_SIZE;
            int info = elf.data().get(o + 4) & 0xff;
            int other = elf.data().get(o + 5) & 0xff;
            int shndx = elf.u16(o + 6);
            if (shndx == SHN_XINDEX) {
                if (xindex == null || (long) i * 4 + 4 > xindex.capacity()) {
                    throw elf.error(elf.describe(table) + ": symbol " + i
                            + " has st_shndx SHN_XINDEX but no SHT_SYMTAB_SHNDX entry holds its section index");
                }
                shndx = xindex.getInt(i * 4);
            }
            String symName = i == 0 && elf.u32(o) == 0 ? "" : strings.at(elf.u32(o), elf.describe(table) + " symbol " + i);
            SymbolVersions.Version version = null;
            boolean hidden = false;
            if (vers != SymbolVersions.NONE && i > 0) {
                if (!vers.covers(i)) {
                    throw elf.error(elf.describe(vers.versymSection()) + " has fewer entries than " + elf.describe(table)
                            + " has symbols (" + count + ")");
                }
                int vs = vers.versym(i);
                hidden = (vs & VERSYM_HIDDEN) != 0;
                version = vers.lookup(vs & VERSYM_VERSION, shndx != SHN_UNDEF, symName);
            }
            out.add(new Symbol(i, symName, elf.data().getLong(o + 8), elf.data().getLong(o + 16), info & 0xf, info >>> 4,
                    other & 0x3, shndx, version == null ? null : version.name(), version != null && hidden,
                    version != null && version.needed()));
        }
        return Collections.unmodifiableList(out);
    }

}
