package dev.suture.elf;

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
}
