package dev.suture.elf;

import static dev.suture.elf.ElfConstants.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.testing.Gcc;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Objects written by ElfWriter are accepted by readelf, objdump and ld, and link into working programs. */
class ElfWriterTest {

    static final String PROGRAM = """
            #include <stdio.h>
            #include <string.h>
            static int counter = 3;
            int table[4] = {1, 2, 3, 4};
            static char buffer[64];
            __thread int tls_value = 7;
            const char *greeting = "hello";
            static int twice(int x) { return 2 * x + counter; }
            int sum(void) { int s = 0; for (int i = 0; i < 4; i++) s += table[i]; return s; }
            int main(void) {
                strcpy(buffer, greeting);
                tls_value += twice(sum());
                printf("%s %d %d %zu\\n", buffer, sum(), tls_value, strlen(buffer));
                return 0;
            }
            """;

    /** Copies every section, symbol and relocation of an object through ElfWriter. */
    static byte[] rewrite(ElfFile in) {
        var w = new ElfWriter();
        w.osabi(in.header().ei_osabi());
        Map<Integer, ElfWriter.SectionRef> sections = new HashMap<>();
        for (var s : in.sections()) {
            switch (s.sh_type()) {
                case SHT_NULL, SHT_SYMTAB, SHT_STRTAB, SHT_RELA, SHT_REL -> { }
                case SHT_NOBITS -> sections.put(s.index(),
                        w.addNobits(s.name(), s.sh_flags(), s.sh_addralign(), s.sh_size()));
                default -> sections.put(s.index(), w.addSection(s.name(), s.sh_type(), s.sh_flags(),
                        s.sh_addralign(), s.sh_entsize(), in.bytes(s)));
            }
        }
        Map<Integer, ElfWriter.SymbolRef> symbols = new HashMap<>();
        for (var sym : in.symbols()) {
            if (sym.index() == 0) {
                continue;
            }
            var sec = sections.get(sym.st_shndx());
            if (sym.isSection()) {
                if (sec != null) {
                    symbols.put(sym.index(), w.sectionSymbol(sec));
                }
            } else if (sym.inSection()) {
                symbols.put(sym.index(), w.addSymbol(sym.name(), sym.st_value(), sym.st_size(), sym.type(),
                        sym.bind(), sym.visibility(), sec));
            } else {
                symbols.put(sym.index(), w.addSpecialSymbol(sym.name(), sym.st_value(), sym.st_size(), sym.type(),
                        sym.bind(), sym.visibility(), sym.st_shndx()));
            }
        }
        for (var rs : in.relocationSections()) {
            var target = sections.get(rs.target().index());
            for (var r : rs.relocations()) {
                w.addRelocation(target, r.r_offset(), r.type(), r.symbol() == null ? null : symbols.get(r.symbolIndex()),
                        r.r_addend());
            }
        }
        return w.toBytes();
    }

    @Test
    void rewrittenObjectLinksAndRunsLikeTheOriginal(@TempDir Path dir) throws Exception {
        for (String flags : new String[] {"-O0 -g", "-O2 -ffunction-sections -fdata-sections", "-O1 -fPIC"}) {
            java.nio.file.Files.writeString(dir.resolve("p.c"), PROGRAM);
            Gcc.run(dir, "sh", "-c", "gcc -c " + flags + " -o p.o p.c");
            try (var in = ElfFile.open(dir.resolve("p.o"))) {
                java.nio.file.Files.write(dir.resolve("q.o"), rewrite(in));
            }
            // Both tools must read it without a single warning.
            String readelf = Gcc.run(dir, "sh", "-c", "readelf -a -W q.o 2>&1 >/dev/null");
            assertEquals("", readelf, "readelf complained about the written object");
            String objdump = Gcc.run(dir, "sh", "-c", "objdump -dr q.o 2>&1 >/dev/null");
            assertEquals("", objdump, "objdump complained about the written object");
            Gcc.run(dir, "gcc", "-o", "p", "p.o");
            Gcc.run(dir, "gcc", "-o", "q", "q.o");
            String expected = Gcc.run(dir, "./p");
            assertEquals("hello 10 30 5\n", expected);
            assertEquals(expected, Gcc.run(dir, "./q"), "program linked from the rewritten object (" + flags + ")");
            // The disassembly with relocations is the same as the original's.
            assertEquals(disassembly(dir, "p.o"), disassembly(dir, "q.o"));
        }
    }

    private static String disassembly(Path dir, String object) throws Exception {
        return Gcc.run(dir, "objdump", "-dr", object).replace(object, "OBJ");
    }

    @Test
    void writtenSymbolTableHasLocalsFirst(@TempDir Path dir) throws Exception {
        var w = new ElfWriter();
        var text = w.addSection(".text", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, 16,
                new byte[] {(byte) 0xe8, 0, 0, 0, 0, (byte) 0xc3});
        var data = w.addSection(".data", SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, 8, new byte[8]);
        var bss = w.addNobits(".bss", SHF_ALLOC | SHF_WRITE, 32, 100);
        var f = w.addSymbol("f", 0, 6, STT_FUNC, STB_GLOBAL, STV_DEFAULT, text);
        var local = w.addSymbol("local_data", 0, 8, STT_OBJECT, STB_LOCAL, STV_DEFAULT, data);
        var ext = w.addUndefined("external_function", STT_NOTYPE, STB_GLOBAL);
        w.addSymbol("zeros", 0, 100, STT_OBJECT, STB_LOCAL, STV_DEFAULT, bss);
        w.addRelocation(text, 1, R_X86_64_PLT32, ext, -4);
        w.addRelocation(data, 0, R_X86_64_64, w.sectionSymbol(text), 0);
        w.write(dir.resolve("w.o"));
        try (var elf = ElfFile.open(dir.resolve("w.o"))) {
            var syms = elf.symbols();
            var symtab = elf.section(".symtab").orElseThrow();
            assertEquals(4, symtab.sh_info(), "first non-local index: null + 3 locals");
            for (var s : syms) {
                assertEquals(s.index() < symtab.sh_info(), s.isLocal(), s.toString());
            }
            var relocs = elf.relocationSections();
            assertEquals(2, relocs.size());
            assertEquals("external_function", relocs.get(0).relocations().getFirst().symbol().name());
            assertEquals(".text", relocs.get(0).target().name());
            assertEquals(STT_SECTION, relocs.get(1).relocations().getFirst().symbol().type());
            assertEquals(100, elf.section(".bss").orElseThrow().sh_size());
            assertFalse(local.name().isEmpty());
            assertTrue(f.name().equals("f"));
        }
        String readelf = Gcc.run(dir, "sh", "-c", "readelf -a -W w.o 2>&1 >/dev/null");
        assertEquals("", readelf);
        // ld accepts it (as a relocatable link; the external stays undefined).
        Gcc.run(dir, "ld", "-r", "-o", "linked.o", "w.o");
    }
}
