package dev.suture.elf;

import static dev.suture.elf.ElfConstants.*;

/**
 * The ELF file header. {@code e_shnum}, {@code e_shstrndx} and {@code e_phnum} are the real values: when the file
 * uses extended numbering (too many sections) they are taken from section header 0, as the gABI says.
 */
public record ElfHeader(int ei_class, int ei_data, int ei_osabi, int ei_abiversion, int e_type, int e_machine,
                        long e_version, long e_entry, long e_phoff, long e_shoff, long e_flags, int e_ehsize,
                        int e_phentsize, int e_phnum, int e_shentsize, int e_shnum, int e_shstrndx) {

    /** The type as readelf names it: REL, EXEC, DYN, CORE, NONE or a number. */
    public String typeName() {
        return switch (e_type) {
            case ElfConstants.ET_NONE -> "NONE";
            case ElfConstants.ET_REL -> "REL";
            case ElfConstants.ET_EXEC -> "EXEC";
            case ElfConstants.ET_DYN -> "DYN";
            case ElfConstants.ET_CORE -> "CORE";
            default -> "0x" + Integer.toHexString(e_type);
        };
    }

    /** The machine, by its short name for the few that matter here. */
    public String machineName() {
        return switch (e_machine) {
            case ElfConstants.EM_X86_64 -> "x86-64";
            case 3 -> "i386";
            case 183 -> "aarch64";
            case 243 -> "riscv";
            case 0 -> "none";
            default -> "machine " + e_machine;
        };
    }

    /** Decodes and checks the ELF header: 64-bit, little-endian, x86-64, with its tables inside the file. */
    static ElfHeader read(ElfFile elf) {
        if (elf.size() < 16 || elf.data().get(0) != 0x7f || elf.data().get(1) != 'E' || elf.data().get(2) != 'L' || elf.data().get(3) != 'F') {
            throw elf.error("it does not start with the ELF magic bytes (\\x7fELF)");
        }
        int cls = elf.data().get(4) & 0xff;
        int enc = elf.data().get(5) & 0xff;
        if (cls != ELFCLASS64) {
            throw elf.error("EI_CLASS is " + cls + "; only 64-bit ELF (ELFCLASS64) is supported");
        }
        if (enc != ELFDATA2LSB) {
            throw elf.error("EI_DATA is " + enc + "; only little-endian ELF (ELFDATA2LSB) is supported");
        }
        if (elf.size() < EHDR_SIZE) {
            throw elf.error("the file is " + elf.size() + " bytes, shorter than the 64-byte ELF header");
        }
        int eType = elf.u16(16);
        int machine = elf.u16(18);
        long version = elf.u32(20);
        long entry = elf.data().getLong(24);
        long phoff = elf.data().getLong(32);
        long shoff = elf.data().getLong(40);
        long flags = elf.u32(48);
        int ehsize = elf.u16(52);
        int phentsize = elf.u16(54);
        int phnum = elf.u16(56);
        int shentsize = elf.u16(58);
        int shnum = elf.u16(60);
        int shstrndx = elf.u16(62);
        if (shoff != 0) {
            if (shentsize != SHDR_SIZE) {
                throw elf.error("e_shentsize is " + shentsize + ", expected " + SHDR_SIZE);
            }
            if (shnum == 0 || shstrndx == SHN_XINDEX || phnum == 0xffff) {
                // Extended numbering: the real counts live in section header 0.
                int s0 = elf.checkRange(shoff, SHDR_SIZE, "section header 0");
                long realShnum = elf.data().getLong(s0 + 32);
                if (shnum == 0) {
                    if (realShnum > elf.size() / SHDR_SIZE) {
                        throw elf.error("section header 0 claims " + realShnum + " sections, more than the file can hold");
                    }
                    shnum = (int) realShnum;
                }
                if (shstrndx == SHN_XINDEX) {
                    shstrndx = elf.data().getInt(s0 + 40);
                }
                if (phnum == 0xffff) {
                    long realPhnum = elf.u32(s0 + 44);
                    if (realPhnum > elf.size() / PHDR_SIZE) {
                        throw elf.error("section header 0 claims " + realPhnum + " program headers, more than the file can hold");
                    }
                    phnum = (int) realPhnum;
                }
            }
        } else {
            shnum = 0;
        }
        if (phnum > 0 && phentsize != PHDR_SIZE) {
            throw elf.error("e_phentsize is " + phentsize + ", expected " + PHDR_SIZE);
        }
        return new ElfHeader(cls, enc, elf.data().get(7) & 0xff, elf.data().get(8) & 0xff, eType, machine, version, entry, phoff,
                shoff, flags, ehsize, phentsize, phnum, shentsize, shnum, shstrndx);
    }

}
