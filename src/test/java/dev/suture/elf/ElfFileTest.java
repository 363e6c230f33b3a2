package dev.suture.elf;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.testing.Gcc;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Basic reading of real files; the exhaustive comparison with readelf is in ReadelfComparisonTest. */
class ElfFileTest {

    @Test
    void readsBinLs() throws Exception {
        try (var elf = ElfFile.open(Path.of("/bin/ls"))) {
            assertEquals(ElfConstants.EM_X86_64, elf.header().e_machine());
            assertEquals(ElfConstants.ET_DYN, elf.header().e_type());
            String notes = Gcc.run(Path.of("/"), "readelf", "-n", "/bin/ls");
            String id = elf.buildId().orElseThrow();
            assertTrue(notes.contains("Build ID: " + id), notes);
            assertEquals("/lib64/ld-linux-x86-64.so.2", elf.interpreter().orElseThrow());
            assertTrue(elf.needed().contains("libc.so.6"), elf.needed().toString());
            assertTrue(elf.dynamicSymbols().stream().anyMatch(s -> s.name().equals("malloc")
                    && s.isUndefined() && "GLIBC_2.2.5".equals(s.version())));
            assertTrue(elf.section(".text").orElseThrow().isExecutable());
            assertFalse(elf.relocationSections().isEmpty());
            var text = elf.section(".text").orElseThrow();
            byte[] viaAddress = elf.readAt(text.sh_addr(), 16).orElseThrow();
            assertTrue(Arrays.equals(Arrays.copyOf(elf.bytes(text), 16), viaAddress));
        }
    }

    @Test
    void objectRelocationsNameTheirSymbols(@TempDir Path dir) throws Exception {
        Gcc.run(dir, "sh", "-c", "printf 'int g; int f(void){return g+1;}\\n' > t.c && gcc -c -O1 -o t.o t.c");
        try (var elf = ElfFile.open(dir.resolve("t.o"))) {
            assertEquals(ElfConstants.ET_REL, elf.header().e_type());
            var rela = elf.relocationSections().stream()
                    .filter(r -> r.section().name().equals(".rela.text")).findFirst().orElseThrow();
            assertEquals(".text", rela.target().name());
            var r = rela.relocations().getFirst();
            assertEquals("g", r.symbol().name());
            assertEquals("R_X86_64_PC32", r.typeName());
            assertEquals(-4, r.r_addend());
        }
    }

    @Test
    void pieIsAnExecutableNotEveryObjectWithAnInterpreter(@TempDir Path dir) throws Exception {
        Gcc.run(dir, "sh", "-c", "printf 'int main(void){return 0;}\\n' > m.c && gcc -pie -fPIE -o pie m.c"
                + " && gcc -no-pie -o nopie m.c && gcc -shared -fPIC -o lib.so m.c");
        try (var pie = ElfFile.open(dir.resolve("pie")); var noPie = ElfFile.open(dir.resolve("nopie"));
             var lib = ElfFile.open(dir.resolve("lib.so"));
             var libc = ElfFile.open(Path.of("/lib/x86_64-linux-gnu/libc.so.6"))) {
            assertTrue(pie.isPie());
            assertFalse(noPie.isPie(), "ET_EXEC");
            assertFalse(lib.isPie());
            assertTrue(libc.interpreter().isPresent(), "libc.so.6 can be run, so it names an interpreter");
            assertFalse(libc.isPie(), "and is a library all the same");
        }
    }

    @Test
    void notElfIsFormatError(@TempDir Path dir) throws Exception {
        Path f = Files.writeString(dir.resolve("x"), "hello, not an ELF file at all, but long enough to matter");
        var e = assertThrows(ElfFormatException.class, () -> ElfFile.open(f));
        assertTrue(e.getMessage().startsWith(f.toString()), e.getMessage());
    }
}
