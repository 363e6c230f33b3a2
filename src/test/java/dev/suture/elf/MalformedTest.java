package dev.suture.elf;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.testing.Gcc;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.function.Consumer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Specific kinds of damage each give an ElfFormatException that names the file and says what is wrong. */
class MalformedTest {
    @TempDir
    static Path dir;
    static byte[] object;
    static ElfFile good;

    @BeforeAll
    static void compile() throws Exception {
        Files.writeString(dir.resolve("m.c"), "int g; static int s; int f(void) { return g + s; }\n");
        Gcc.run(dir, "gcc", "-c", "-O1", "-o", "m.o", "m.c");
        object = Files.readAllBytes(dir.resolve("m.o"));
        good = ElfFile.parse("m.o", object);
    }

    /** The damaged copy's reading of {@code what} must fail with a message naming the file and {@code expected}. */
    static void assertDamage(Consumer<ByteBuffer> damage, Consumer<ElfFile> what, String expected) {
        byte[] copy = object.clone();
        damage.accept(ByteBuffer.wrap(copy).order(ByteOrder.LITTLE_ENDIAN));
        var e = assertThrows(ElfFormatException.class, () -> what.accept(ElfFile.parse("damaged.o", copy)));
        assertTrue(e.getMessage().startsWith("damaged.o: not a valid ELF file: "), e.getMessage());
        assertTrue(e.getMessage().contains(expected), e.getMessage());
    }

    static int header(String section) {
        return (int) good.header().e_shoff() + good.section(section).orElseThrow().index() * 64;
    }

    static int index(String section) {
        return good.section(section).orElseThrow().index();
    }

    @Test
    void truncated() {
        byte[] half = Arrays.copyOf(object, object.length / 2);
        var e = assertThrows(ElfFormatException.class, () -> ElfFile.parse("half.o", half).sections());
        assertTrue(e.getMessage().contains("section header table") && e.getMessage().contains("truncated"),
                e.getMessage());
        var tiny = assertThrows(ElfFormatException.class, () -> ElfFile.parse("tiny", Arrays.copyOf(object, 40)));
        assertTrue(tiny.getMessage().contains("shorter than the 64-byte ELF header"), tiny.getMessage());
    }

    @Test
    void unterminatedString() {
        // Cut the last NUL off .strtab: the last symbol name runs off the table.
        assertDamage(b -> b.putLong(header(".strtab") + 32, b.getLong(header(".strtab") + 32) - 1),
                ElfFile::symbols, "is not NUL-terminated");
    }

    @Test
    void nameOffsetOutsideTable() {
        assertDamage(b -> b.putInt(header(".text"), 0x7fffff00), ElfFile::sections, "is outside the section name table");
    }

    @Test
    void linkLoops() {
        assertDamage(b -> b.putInt(header(".symtab") + 40, index(".symtab")), ElfFile::symbols,
                "which is SYMTAB, not a string table");
        assertDamage(b -> b.putInt(header(".rela.text") + 40, index(".rela.text")), ElfFile::relocationSections,
                "which is RELA, not a symbol table");
    }

    @Test
    void enormousTables() {
        assertDamage(b -> b.putShort(60, (short) 0xfff0), ElfFile::sections, "extends past the end of the file");
        assertDamage(b -> b.putLong(header(".symtab") + 32, 0x7fff_ffff_ffffL), ElfFile::symbols,
                "extends past the end of the file");
        assertDamage(b -> b.putLong(header(".symtab") + 24, -24), ElfFile::symbols, "extends past the end");
    }

    @Test
    void badIndices() {
        assertDamage(b -> b.putShort(62, (short) 0x7000), ElfFile::sections, "e_shstrndx 28672 is outside");
        int rela = (int) good.section(".rela.text").orElseThrow().sh_offset();
        assertDamage(b -> b.putInt(rela + 12, 5000), ElfFile::relocationSections, "refers to symbol 5000");
        assertDamage(b -> b.putInt(header(".rela.text") + 44, 999), ElfFile::relocationSections, "sh_info 999");
        assertDamage(b -> b.putLong(header(".symtab") + 56, 16), ElfFile::symbols, "sh_entsize is 16, expected 24");
    }

    @Test
    void notElfOr32Bit() {
        assertDamage(b -> b.put(0, (byte) 0x7e), ElfFile::header, "ELF magic");
        assertDamage(b -> b.put(4, (byte) 1), ElfFile::header, "only 64-bit ELF");
        assertDamage(b -> b.put(5, (byte) 2), ElfFile::header, "only little-endian");
    }
}
