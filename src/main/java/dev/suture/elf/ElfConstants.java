package dev.suture.elf;

/** Numeric constants of the ELF64 gABI, the GNU extensions and the x86-64 psABI, named as in the specifications. */
public final class ElfConstants {
    private ElfConstants() {}

    public static final int ELFCLASS64 = 2;
    public static final int ELFDATA2LSB = 1;
    public static final int EV_CURRENT = 1;
    public static final int ELFOSABI_NONE = 0;
    public static final int ELFOSABI_GNU = 3;

    public static final int ET_NONE = 0, ET_REL = 1, ET_EXEC = 2, ET_DYN = 3, ET_CORE = 4;
    public static final int EM_X86_64 = 62;

    public static final int EHDR_SIZE = 64, PHDR_SIZE = 56, SHDR_SIZE = 64, SYM_SIZE = 24, RELA_SIZE = 24,
            REL_SIZE = 16, DYN_SIZE = 16;

    // Program header types and flags.
    public static final int PT_NULL = 0, PT_LOAD = 1, PT_DYNAMIC = 2, PT_INTERP = 3, PT_NOTE = 4, PT_SHLIB = 5,
            PT_PHDR = 6, PT_TLS = 7;
    public static final int PT_GNU_EH_FRAME = 0x6474e550, PT_GNU_STACK = 0x6474e551, PT_GNU_RELRO = 0x6474e552,
            PT_GNU_PROPERTY = 0x6474e553;
    public static final int PF_X = 1, PF_W = 2, PF_R = 4;

    // Special section indices.
    public static final int SHN_UNDEF = 0, SHN_LORESERVE = 0xff00, SHN_ABS = 0xfff1, SHN_COMMON = 0xfff2,
            SHN_XINDEX = 0xffff;

    // Section types.
    public static final int SHT_NULL = 0, SHT_PROGBITS = 1, SHT_SYMTAB = 2, SHT_STRTAB = 3, SHT_RELA = 4,
            SHT_HASH = 5, SHT_DYNAMIC = 6, SHT_NOTE = 7, SHT_NOBITS = 8, SHT_REL = 9, SHT_SHLIB = 10,
            SHT_DYNSYM = 11, SHT_INIT_ARRAY = 14, SHT_FINI_ARRAY = 15, SHT_PREINIT_ARRAY = 16, SHT_GROUP = 17,
            SHT_SYMTAB_SHNDX = 18, SHT_RELR = 19;
    public static final int SHT_GNU_ATTRIBUTES = 0x6ffffff5, SHT_GNU_HASH = 0x6ffffff6,
            SHT_GNU_LIBLIST = 0x6ffffff7, SHT_GNU_verdef = 0x6ffffffd, SHT_GNU_verneed = 0x6ffffffe,
            SHT_GNU_versym = 0x6fffffff, SHT_X86_64_UNWIND = 0x70000001;

    // Section flags.
    public static final long SHF_WRITE = 0x1, SHF_ALLOC = 0x2, SHF_EXECINSTR = 0x4, SHF_MERGE = 0x10,
            SHF_STRINGS = 0x20, SHF_INFO_LINK = 0x40, SHF_LINK_ORDER = 0x80, SHF_OS_NONCONFORMING = 0x100,
            SHF_GROUP = 0x200, SHF_TLS = 0x400, SHF_COMPRESSED = 0x800, SHF_GNU_RETAIN = 0x200000,
            SHF_EXCLUDE = 0x80000000L;
    public static final int GRP_COMDAT = 1;

    // Symbols.
    public static final int STB_LOCAL = 0, STB_GLOBAL = 1, STB_WEAK = 2, STB_GNU_UNIQUE = 10;
    public static final int STT_NOTYPE = 0, STT_OBJECT = 1, STT_FUNC = 2, STT_SECTION = 3, STT_FILE = 4,
            STT_COMMON = 5, STT_TLS = 6, STT_GNU_IFUNC = 10;
    public static final int STV_DEFAULT = 0, STV_INTERNAL = 1, STV_HIDDEN = 2, STV_PROTECTED = 3;

    // Symbol versioning.
    public static final int VER_NDX_LOCAL = 0, VER_NDX_GLOBAL = 1, VERSYM_HIDDEN = 0x8000, VERSYM_VERSION = 0x7fff;
    public static final int VER_FLG_BASE = 1, VER_FLG_WEAK = 2;

    // Dynamic tags.
    public static final long DT_NULL = 0, DT_NEEDED = 1, DT_PLTRELSZ = 2, DT_PLTGOT = 3, DT_HASH = 4,
            DT_STRTAB = 5, DT_SYMTAB = 6, DT_RELA = 7, DT_RELASZ = 8, DT_RELAENT = 9, DT_STRSZ = 10,
            DT_SYMENT = 11, DT_INIT = 12, DT_FINI = 13, DT_SONAME = 14, DT_RPATH = 15, DT_SYMBOLIC = 16,
            DT_REL = 17, DT_RELSZ = 18, DT_RELENT = 19, DT_PLTREL = 20, DT_DEBUG = 21, DT_TEXTREL = 22,
            DT_JMPREL = 23, DT_BIND_NOW = 24, DT_INIT_ARRAY = 25, DT_FINI_ARRAY = 26, DT_INIT_ARRAYSZ = 27,
            DT_FINI_ARRAYSZ = 28, DT_RUNPATH = 29, DT_FLAGS = 30, DT_PREINIT_ARRAY = 32,
            DT_PREINIT_ARRAYSZ = 33, DT_SYMTAB_SHNDX = 34, DT_RELRSZ = 35, DT_RELR = 36, DT_RELRENT = 37;
    public static final long DT_GNU_HASH = 0x6ffffef5L, DT_VERSYM = 0x6ffffff0L, DT_RELACOUNT = 0x6ffffff9L,
            DT_RELCOUNT = 0x6ffffffaL, DT_FLAGS_1 = 0x6ffffffbL, DT_VERDEF = 0x6ffffffcL,
            DT_VERDEFNUM = 0x6ffffffdL, DT_VERNEED = 0x6ffffffeL, DT_VERNEEDNUM = 0x6fffffffL;
    /** DT_FLAGS_1 bit the linker sets on a position-independent executable. */
    public static final long DF_1_PIE = 0x08000000L;

    // Notes.
    public static final int NT_GNU_ABI_TAG = 1, NT_GNU_HWCAP = 2, NT_GNU_BUILD_ID = 3, NT_GNU_GOLD_VERSION = 4,
            NT_GNU_PROPERTY_TYPE_0 = 5;
    public static final int GNU_PROPERTY_STACK_SIZE = 1, GNU_PROPERTY_NO_COPY_ON_PROTECTED = 2,
            GNU_PROPERTY_X86_FEATURE_1_AND = 0xc0000002, GNU_PROPERTY_X86_ISA_1_NEEDED = 0xc0008002,
            GNU_PROPERTY_X86_ISA_1_USED = 0xc0010002;
    public static final int GNU_PROPERTY_X86_FEATURE_1_IBT = 1, GNU_PROPERTY_X86_FEATURE_1_SHSTK = 2;

    // x86-64 relocation types (psABI); names in RelocationTypes.
    public static final int R_X86_64_NONE = 0, R_X86_64_64 = 1, R_X86_64_PC32 = 2, R_X86_64_GOT32 = 3,
            R_X86_64_PLT32 = 4, R_X86_64_COPY = 5, R_X86_64_GLOB_DAT = 6, R_X86_64_JUMP_SLOT = 7,
            R_X86_64_RELATIVE = 8, R_X86_64_GOTPCREL = 9, R_X86_64_32 = 10, R_X86_64_32S = 11, R_X86_64_16 = 12,
            R_X86_64_PC16 = 13, R_X86_64_8 = 14, R_X86_64_PC8 = 15, R_X86_64_DTPMOD64 = 16,
            R_X86_64_DTPOFF64 = 17, R_X86_64_TPOFF64 = 18, R_X86_64_TLSGD = 19, R_X86_64_TLSLD = 20,
            R_X86_64_DTPOFF32 = 21, R_X86_64_GOTTPOFF = 22, R_X86_64_TPOFF32 = 23, R_X86_64_PC64 = 24,
            R_X86_64_GOTOFF64 = 25, R_X86_64_GOTPC32 = 26, R_X86_64_GOT64 = 27, R_X86_64_GOTPCREL64 = 28,
            R_X86_64_GOTPC64 = 29, R_X86_64_GOTPLT64 = 30, R_X86_64_PLTOFF64 = 31, R_X86_64_SIZE32 = 32,
            R_X86_64_SIZE64 = 33, R_X86_64_GOTPC32_TLSDESC = 34, R_X86_64_TLSDESC_CALL = 35,
            R_X86_64_TLSDESC = 36, R_X86_64_IRELATIVE = 37, R_X86_64_RELATIVE64 = 38, R_X86_64_GOTPCRELX = 41,
            R_X86_64_REX_GOTPCRELX = 42;
}
