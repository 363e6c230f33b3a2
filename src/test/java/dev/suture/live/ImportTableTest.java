package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.elf.ElfConstants;
import dev.suture.elf.ElfFile;
import dev.suture.testing.Gcc;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ImportTableTest {
    @TempDir
    Path dir;

    @Test
    void findsTheSlotsReadelfShows() throws Exception {
        Path exe = Gcc.compile(dir, "libimports.so", """
                #include <stdio.h>
                #include <string.h>
                __thread int t;
                int f(const char *s) { fprintf(stderr, "%zu\\n", strlen(s) + t); puts("x"); return 0; }
                """, "-shared", "-fPIC");
        String relocs = Gcc.run(dir, "readelf", "-rW", exe.toString());
        try (var elf = ElfFile.open(exe)) {
            var table = ImportTable.of(elf);
            var puts = table.imported("puts", null, true).orElseThrow();
            assertEquals(ElfConstants.R_X86_64_JUMP_SLOT, puts.type());
            assertTrue(relocs.contains(String.format("%016x", puts.address())), relocs);
            // a library reaches libc data through GLOB_DAT (an executable would use a COPY relocation instead)
            var stderr = table.imported("stderr", "GLIBC_2.2.5", false).orElseThrow();
            assertEquals(ElfConstants.R_X86_64_GLOB_DAT, stderr.type());
            assertFalse(table.imported("stderr", "GLIBC_9.9", false).isPresent());
            assertFalse(table.imported("memcpy", null, true).isPresent());
        }
    }

    @Test
    void libcHasIrelativeSlotsForItsIfuncs() throws Exception {
        Path libc = Path.of(Gcc.run(dir, "gcc", "-print-file-name=libc.so.6").trim());
        try (var elf = ElfFile.open(libc.toRealPath())) {
            var table = ImportTable.of(elf);
            long irelatives = elf.relocationSections().stream().flatMap(r -> r.relocations().stream())
                    .filter(r -> r.type() == ElfConstants.R_X86_64_IRELATIVE).count();
            assertTrue(irelatives > 0);
            var any = elf.relocationSections().stream().flatMap(r -> r.relocations().stream())
                    .filter(r -> r.type() == ElfConstants.R_X86_64_IRELATIVE).findFirst().orElseThrow();
            assertEquals(any.r_offset(), table.irelative(any.r_addend()).orElseThrow().address());
        }
    }
}
