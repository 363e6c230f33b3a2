package dev.suture.generate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.SutureException;
import dev.suture.elf.ElfFile;
import dev.suture.elf.Symbol;
import dev.suture.testing.Gcc;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A deployed library stripped of its symbols, with no debug file: its symbols come from the rebuild only when the
 * two load the same bytes; else only exported functions whose bytes match the original build are patched.
 */
class StrippedTargetTest {
    @TempDir
    Path dir;

    private static final String LIB = """
            static int counter = 3;
            __attribute__((noinline)) static int helper(int a) { return a * counter; }
            int api(int a) { counter++; return helper(a) + 1; }
            int other(int a) { return a - 7; }
            int plain(int a) { return a * 5 + 1; }
            """;

    private TwoBuilds build(String... changes) throws IOException {
        return new TwoBuilds(dir).link("shared").file("lib.c", LIB, changes).build();
    }

    /** The deployed file as a distribution ships it: no .symtab, no debug sections, no debug file to be found. */
    private Path stripped(TwoBuilds b) throws IOException {
        Path out = dir.resolve("deployed.so");
        Gcc.run(dir, "objcopy", "--strip-all", b.target.toString(), out.toString());
        return out;
    }

    private DiffResult diff(TwoBuilds b, Path deployed, boolean force) {
        return Differ.diff(new DiffRequest(deployed, b.originals.stream().map(DiffRequest.ObjectInput::file).toList(),
                b.patched.stream().map(DiffRequest.ObjectInput::file).toList(), "p", force, b.target, false),
                dir.resolve("out.suture"));
    }

    @Test
    void strippedWithoutDebugFileAndNoRebuildIsRefused() throws IOException {
        var b = build("a * counter", "a * counter + 1");
        Path deployed = stripped(b);
        var e = assertThrows(SutureException.class, () -> Differ.diff(DiffRequest.ofFiles(deployed, b.originals,
                b.patched, "p", false), dir.resolve("out.suture")));
        assertEquals(SutureException.Kind.BAD_INPUT, e.kind());
        assertTrue(e.getMessage().contains("has no symbol table and no separate debug file"), e.getMessage());
    }

    @Test
    void symbolsComeFromTheRebuildWhenItLoadsTheSameBytes() throws IOException {
        var b = build("a * counter", "a * counter + 1");
        Path deployed = stripped(b);
        var result = diff(b, deployed, false);
        assertEquals(SymbolSource.REBUILD, result.symbols());
        assertEquals(java.util.List.of("helper"), result.replaced());
        try (var elf = ElfFile.open(deployed)) {
            assertEquals(elf.buildId().orElseThrow(), result.targetBuildId());
        }
    }

    @Test
    void oneByteChangedInTextRefusesAStaticNamingTheDifferingFunction() throws IOException {
        var b = build("a * counter", "a * counter + 1");
        Path deployed = stripped(b);
        flipByteOf(deployed, b.target, "other");
        var e = assertThrows(DiffRefusedException.class, () -> diff(b, deployed, true),
                "a static function of a file that does not reproduce cannot be located");
        assertEquals(SutureException.Kind.DOES_NOT_FIT, e.kind());
        String m = e.getMessage();
        assertTrue(m.contains("cannot locate the changed function helper"), m);
        assertTrue(m.contains(".text: bytes differ from"), m);
        assertTrue(m.matches("(?s).*\\n1 of \\d+ functions of the rebuild differ from the deployed bytes at their"
                + " address: other\\..*"), m);
        assertTrue(m.contains("the rebuild was made by GCC: "), m);
    }

    @Test
    void anExportedFunctionWhoseBytesMatchIsPatchedFromDynsym() throws IOException {
        var b = build("a * 5 + 1", "a * 5 + 2");
        Path deployed = stripped(b);
        flipByteOf(deployed, b.target, "other");
        var result = diff(b, deployed, false);
        assertEquals(SymbolSource.EXPORTED, result.symbols());
        assertEquals(java.util.List.of("plain"), result.replaced());
    }

    @Test
    void anExportedFunctionWhoseBytesDifferIsRefusedEvenWithForce() throws IOException {
        var b = build("a * 5 + 1", "a * 5 + 2");
        Path deployed = stripped(b);
        flipByteOf(deployed, b.target, "plain");
        var e = assertThrows(DiffRefusedException.class, () -> diff(b, deployed, true));
        assertEquals(SutureException.Kind.DOES_NOT_FIT, e.kind());
        assertTrue(e.getMessage().contains("does not reproduce the deployed binary"), e.getMessage());
        assertTrue(e.getMessage().contains(": plain."), e.getMessage());
    }

    /** Flips the second byte of {@code function} (as the unstripped {@code original} places it) in {@code file}. */
    private static void flipByteOf(Path file, Path original, String function) throws IOException {
        long offset;
        try (var elf = ElfFile.open(original)) {
            Symbol s = elf.symbols().stream().filter(x -> x.name().equals(function)).findFirst().orElseThrow();
            offset = elf.fileOffsetOf(s.st_value() + 1).orElseThrow();
        }
        byte[] bytes = Files.readAllBytes(file);
        bytes[Math.toIntExact(offset)] ^= 0x01;
        Files.write(file, bytes);
    }
}
