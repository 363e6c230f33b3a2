package dev.suture.generate;

import static dev.suture.elf.ElfConstants.*;

import dev.suture.elf.Relocation;
import dev.suture.elf.Section;
import dev.suture.elf.Symbol;

import java.util.Arrays;

/**
 * Where a relocation points, independent of how the assembler spelled it: GNU as writes a reference to a static
 * variable as "section symbol + offset" in one build and may write it differently in the next, so the diff
 * compares these instead of raw symbols.
 */
sealed interface Reference {

    /** A function or variable of the object, plus an offset from its start (S + A = symbol + offset). */
    record ToSymbol(ObjectFile object, Symbol symbol, long offset) implements Reference {}

    /** A string literal or constant in a mergeable section, identified by its content. */
    record ToLiteral(ObjectFile object, int section, byte[] content, long offset) implements Reference {
        boolean sameAs(ToLiteral o) {
            return offset == o.offset && Arrays.equals(content, o.content);
        }
    }

    /** A section without a named owner (a switch table, .gcc_except_table), at an offset. */
    record ToSection(ObjectFile object, int section, long offset) implements Reference {}

    /** A symbol the object does not define, plus the addend. */
    record ToUndefined(ObjectFile object, Symbol symbol, long offset) implements Reference {}

    /** Resolves a relocation of {@code object} to what it points at. */
    static Reference of(ObjectFile object, Relocation r) {
        Symbol sym = r.symbol();
        if (sym == null) {
            throw new DiffRefusedException(object + ": relocation " + r.typeName() + " at 0x"
                    + Long.toHexString(r.r_offset()) + " has no symbol, which suture cannot follow");
        }
        if (sym.isUndefined()) {
            return new ToUndefined(object, sym, r.r_addend());
        }
        if (sym.isCommon()) {
            throw new DiffRefusedException(object + ": " + sym.name()
                    + " is a common symbol; compile with -fno-common so each variable has its own section");
        }
        if (!sym.inSection()) {
            throw new DiffRefusedException(object + ": relocation at 0x" + Long.toHexString(r.r_offset())
                    + " refers to absolute symbol " + sym.name() + ", which suture cannot follow");
        }
        int shndx = sym.st_shndx();
        Section section = object.section(shndx);
        long base = sym.st_value() + r.r_addend();
        if ((section.sh_flags() & SHF_MERGE) != 0) {
            long at = base + pcBias(r.type());
            byte[] bytes = object.bytes(shndx);
            int start, end;
            if ((section.sh_flags() & SHF_STRINGS) != 0) {
                int width = (int) Math.max(1, section.sh_entsize());
                start = (int) Math.clamp(at, 0, bytes.length);
                start -= start % width;
                while (start >= width && !isNul(bytes, start - width, width)) {
                    start -= width;
                }
                end = start;
                while (end + width <= bytes.length && !isNul(bytes, end, width)) {
                    end += width;
                }
                end = Math.min(bytes.length, end + width);
            } else {
                int width = (int) Math.max(1, section.sh_entsize());
                start = (int) Math.clamp(at - Math.floorMod(at, width), 0, bytes.length);
                end = Math.min(bytes.length, start + width);
            }
            return new ToLiteral(object, shndx, Arrays.copyOfRange(bytes, start, end), base - start);
        }
        if (sym.isFunction() || sym.isObject() || sym.type() == STT_TLS) {
            return new ToSymbol(object, sym, r.r_addend());
        }
        Symbol owner = object.owner(shndx, base + pcBias(r.type()));
        if (owner != null) {
            return new ToSymbol(object, owner, base - owner.st_value());
        }
        if (!section.isExecutable() && !section.isWritable() && !section.isNobits()
                && object.relocations(shndx).isEmpty()) {
            // Plain read-only data without symbols (strings in .rodata at -O0): compare what is referenced, the
            // string up to its NUL but at least 8 bytes, so a change elsewhere in the section does not count.
            byte[] bytes = object.bytes(shndx);
            int start = (int) Math.clamp(base + pcBias(r.type()), 0, bytes.length);
            int end = start;
            while (end < bytes.length && bytes[end] != 0) {
                end++;
            }
            end = Math.min(bytes.length, Math.max(end + 1, start + 8));
            return new ToLiteral(object, shndx, Arrays.copyOfRange(bytes, start, end), base - start);
        }
        return new ToSection(object, shndx, base);
    }

    private static boolean isNul(byte[] b, int at, int width) {
        for (int i = 0; i < width; i++) {
            if (b[at + i] != 0) {
                return false;
            }
        }
        return true;
    }

    /**
     * What a PC-relative field adds to reach the byte it means: the CPU adds the displacement to the end of the
     * instruction, so the compiler's addend is "target - 4" when the field ends the instruction (the usual case).
     */
    static long pcBias(int type) {
        return switch (type) {
            case R_X86_64_PC32, R_X86_64_PLT32, R_X86_64_GOTPCREL, R_X86_64_GOTPCRELX, R_X86_64_REX_GOTPCRELX,
                 R_X86_64_GOTTPOFF, R_X86_64_TLSGD, R_X86_64_TLSLD, R_X86_64_GOTPC32_TLSDESC -> 4;
            default -> 0;
        };
    }

    /** Whether the rel32 field at {@code offset} of {@code code} belongs to a call, jmp or jcc instruction. */
    static boolean isBranch(byte[] code, long offset) {
        int at = (int) offset;
        if (at < 1 || at > code.length) {
            return false;
        }
        int op = code[at - 1] & 0xff;
        if (op == 0xe8 || op == 0xe9) {
            return true;
        }
        return at >= 2 && (code[at - 2] & 0xff) == 0x0f && op >= 0x80 && op <= 0x8f;
    }
}
