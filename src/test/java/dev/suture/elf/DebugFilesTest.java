package dev.suture.elf;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.testing.Gcc;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Separate debug files are found by build-id and by .gnu_debuglink, and stale ones are ignored. */
class DebugFilesTest {

    static Path stripped(Path dir, String name, String extraFlags) throws Exception {
        Files.writeString(dir.resolve(name + ".c"), "int answer(void) { return 42; }\nint main(void) { return answer() - 42; }\n");
        Gcc.run(dir, "sh", "-c", "gcc -g " + extraFlags + " -o " + name + " " + name + ".c"
                + " && objcopy --only-keep-debug " + name + " " + name + ".debug"
                + " && objcopy --strip-debug --strip-unneeded --add-gnu-debuglink=" + name + ".debug " + name);
        return dir.resolve(name);
    }

    @Test
    void findsByBuildId(@TempDir Path dir) throws Exception {
        Path exe = stripped(dir, "prog", "");
        Path root = dir.resolve("root");
        try (var elf = ElfFile.open(exe)) {
            String id = elf.buildId().orElseThrow();
            Path target = root.resolve(".build-id").resolve(id.substring(0, 2)).resolve(id.substring(2) + ".debug");
            Files.createDirectories(target.getParent());
            Files.move(dir.resolve("prog.debug"), target);
            assertEquals(Optional.of(target), DebugFiles.find(elf, exe, root));
            try (var debug = ElfFile.open(target)) {
                assertTrue(debug.symbols().stream().anyMatch(s -> s.name().equals("answer")));
            }
        }
    }

    @Test
    void findsByDebugLinkInSubdirectoryAndChecksCrc(@TempDir Path dir) throws Exception {
        Path exe = stripped(dir, "prog", "-Wl,--build-id=none");
        Path root = dir.resolve("root");
        try (var elf = ElfFile.open(exe)) {
            assertTrue(elf.buildId().isEmpty());
            assertEquals("prog.debug", elf.debugLink().orElseThrow().file());
            assertEquals(Optional.of(dir.resolve("prog.debug")), DebugFiles.find(elf, exe, root));
            Files.createDirectories(dir.resolve(".debug"));
            Files.move(dir.resolve("prog.debug"), dir.resolve(".debug/prog.debug"));
            assertEquals(Optional.of(dir.resolve(".debug/prog.debug")), DebugFiles.find(elf, exe, root));
            // A debug file of another build (different CRC) is not taken.
            Files.write(dir.resolve(".debug/prog.debug"), "stale".getBytes());
            assertEquals(Optional.empty(), DebugFiles.find(elf, exe, root));
        }
    }

    @Test
    void findsUnderDebugRootByDirectory(@TempDir Path dir) throws Exception {
        Path exe = stripped(dir, "prog", "-Wl,--build-id=none");
        Path root = dir.resolve("root");
        Path target = root.resolve(dir.getRoot().relativize(dir.toAbsolutePath())).resolve("prog.debug");
        Files.createDirectories(target.getParent());
        Files.move(dir.resolve("prog.debug"), target);
        try (var elf = ElfFile.open(exe)) {
            assertEquals(Optional.of(target), DebugFiles.find(elf, exe, root));
        }
    }
}
