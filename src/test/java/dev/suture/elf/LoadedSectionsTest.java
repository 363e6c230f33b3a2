package dev.suture.elf;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.testing.Gcc;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The loaded-image comparison on real files: a stripped copy against the unstripped file it was made from. */
class LoadedSectionsTest {
    @TempDir
    Path dir;
    Path original;
    Path stripped;

    @BeforeEach
    void build() throws IOException {
        original = Gcc.compile(dir, "libtwo.so", """
                static int counter = 3;
                int add(int a, int b) { return a + b + counter; }
                int twice(int a) { counter++; return add(a, a); }
                """, "-O2", "-shared", "-fPIC", "-Wl,--build-id");
        stripped = dir.resolve("libtwo.stripped.so");
        // What a distribution ships: no .symtab, no debug sections, a .gnu_debuglink to a debug file.
        Gcc.run(dir, "objcopy", "--only-keep-debug", original.toString(), dir.resolve("libtwo.debug").toString());
        Gcc.run(dir, "objcopy", "--strip-all", "--add-gnu-debuglink=libtwo.debug", original.toString(),
                stripped.toString());
    }

    @Test
    void strippedCopyLoadsTheSameBytesAsItsOriginal() {
        try (var a = ElfFile.open(stripped); var b = ElfFile.open(original)) {
            assertTrue(a.symbols().isEmpty() && !b.symbols().isEmpty());
            assertTrue(a.debugLink().isPresent());
            assertEquals(List.of(), LoadedSections.compare(a, b));
        }
    }

    @Test
    void aDifferentBuildIdIsNoDifference() throws IOException {
        long at;
        try (var a = ElfFile.open(stripped)) {
            Section note = a.section(LoadedSections.BUILD_ID_NOTE).orElseThrow();
            at = note.sh_offset() + note.sh_size() - 1;         // the last byte of the id itself
        }
        flip(stripped, at);
        try (var a = ElfFile.open(stripped); var b = ElfFile.open(original)) {
            assertNotEquals(a.buildId(), b.buildId());
            assertEquals(List.of(), LoadedSections.compare(a, b));
        }
    }

    @Test
    void oneByteChangedInTextIsADifference() throws IOException {
        long at;
        long address;
        try (var a = ElfFile.open(original)) {
            Symbol add = a.symbols().stream().filter(s -> s.name().equals("add")).findFirst().orElseThrow();
            address = add.st_value() + 1;
            at = a.fileOffsetOf(address).orElseThrow();
        }
        flip(stripped, at);
        try (var a = ElfFile.open(stripped); var b = ElfFile.open(original)) {
            var differences = LoadedSections.compare(a, b);
            assertEquals(1, differences.size(), differences.toString());
            assertEquals(".text", differences.getFirst().section());
            assertEquals(String.format("bytes differ from 0x%x", address), differences.getFirst().what());
        }
    }

    @Test
    void aSectionThatMovedIsADifference() throws IOException {
        Path other = Gcc.compile(dir, "libthree.so", """
                static int counter = 3;
                int add(int a, int b) { return a + b + counter; }
                int twice(int a) { counter++; return add(a, a); }
                int thrice(int a) { return add(a, twice(a)); }
                """, "-O2", "-shared", "-fPIC", "-Wl,--build-id");
        try (var a = ElfFile.open(stripped); var b = ElfFile.open(other)) {
            var differences = LoadedSections.compare(a, b);
            assertTrue(differences.stream().anyMatch(d -> d.section().equals(".dynsym")), differences.toString());
        }
    }

    static void flip(Path file, long offset) throws IOException {
        byte[] bytes = Files.readAllBytes(file);
        bytes[Math.toIntExact(offset)] ^= 0x01;
        Files.write(file, bytes);
    }
}
