package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.proc.RemoteMemory;
import dev.suture.SutureException;
import dev.suture.cli.Cli;
import dev.suture.elf.ElfFile;
import dev.suture.elf.Symbol;
import dev.suture.patch.PatchFile;
import dev.suture.proc.Modules;
import dev.suture.testing.Procs;
import dev.suture.testing.Target;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Attack: a patch whose replaced function is not the function it names. Its records point at the module's GOT or
 * .rodata, or at another real function, each with the hash of the bytes there, so the hash check alone passes.
 * Apply must refuse it as not fitting (exit 3) before a byte is written, and the program must run on unchanged.
 */
class NonCodeFunctionTest {
    static final String PROGRAM = """
            #include <stdio.h>
            #include <time.h>
            #include <unistd.h>

            static const char banner[] = "a constant string in .rodata, long enough to hash";

            __attribute__((noinline)) int other(int i) {
                return i * 7 + (int) sizeof banner;
            }

            __attribute__((noinline)) void say(int i) {
                printf("value %d other %d\\n", i, other(i));
            }

            int main(void) {
                alarm(120);
                setvbuf(stdout, 0, _IOLBF, 0);
                puts(banner);
                for (int i = 0;; i++) {
                    say(i % 3);
                    struct timespec t = {0, 20000000L};
                    nanosleep(&t, 0);
                }
            }
            """;

    @TempDir
    Path dir;

    @AfterEach
    void nothingLeftTraced() {
        assertEquals(List.of(), Procs.tracedByThisJvm(), "threads left traced by this JVM");
    }

    @Test
    void replacedFunctionsThatAreNotTheNamedCodeAreRefusedBeforeAnyWrite() throws Exception {
        var built = Fixture.program(dir, "prog", PROGRAM, PROGRAM.replace("value %d", "patched %d"), "say-fix", true);
        var seed = new PatchMutator(Files.readAllBytes(built.patchFile()));
        String record = seed.info().lines().filter(l -> l.startsWith("replace say ")).findFirst().orElseThrow();
        String patchSymbol = record.split(" ")[5];
        long gotAt;
        long rodataAt;
        Symbol other;
        try (var elf = ElfFile.open(built.exe())) {
            gotAt = elf.section(".got").orElseThrow().sh_addr();
            rodataAt = elf.section(".rodata").orElseThrow().sh_addr();
            other = elf.symbols().stream().filter(s -> s.name().equals("other")).findFirst().orElseThrow();
        }

        try (var t = Target.start(built.exe())) {
            Fixture.await(t, 0, "value 2 other", 1);
            var module = Modules.of(t.pidInt()).all().stream()
                    .filter(m -> m.buildId() != null && m.buildId().equals(built.patch().targetBuildId()))
                    .findFirst().orElseThrow();
            record Attack(String name, long address, long size, String expected) {}
            var attacks = List.of(
                    new Attack("got", gotAt, 16, "not code of"),
                    new Attack("rodata", rodataAt, 48, "not code of"),
                    new Attack("other", other.st_value(), other.st_size(), "what starts there is other"));
            byte[] textBefore = Fixture.text(t.pidInt(), built.exe());
            for (var a : attacks) {
                long runtime = module.runtime(a.address());
                byte[] there = read(t.pidInt(), runtime, (int) a.size());
                // the hash of what is really there: only the new check can tell the record is a lie
                String forged = String.format("replace say 0x%x 0x%x %s %s", a.address(), a.size(),
                        PatchFile.sha256(there), patchSymbol);
                Path file = dir.resolve(a.name() + ".suture");
                Files.write(file, seed.withInfo(seed.info().replace(record, forged)));

                var e = assertThrows(SutureException.class, () -> Patcher.apply(t.pidInt(), PatchFile.read(file),
                        Patcher.ApplyOptions.defaults()), a.name());
                assertEquals(SutureException.Kind.DOES_NOT_FIT, e.kind(), a.name() + ": " + e.getMessage());
                assertTrue(e.getMessage().contains(a.expected()), e.getMessage());
                var cli = Cli.run("apply", "-p", Long.toString(t.pid()), file.toString());
                assertEquals(3, cli.code(), a.name() + ": " + cli.out() + cli.err());
                assertTrue(cli.err().contains("nothing was written"), cli.err());

                assertArrayEquals(there, read(t.pidInt(), runtime, (int) a.size()), a.name() + ": bytes changed");
                assertArrayEquals(textBefore, Fixture.text(t.pidInt(), built.exe()), a.name() + ": code changed");
                assertTrue(Patcher.applied(t.pidInt()).isEmpty(), a.name() + ": a patch region was left");
            }
            int mark = t.lines().size();
            Fixture.await(t, mark, "value 2 other 64", 2);
            assertTrue(t.lines().stream().noneMatch(l -> l.startsWith("patched")), t.output());

            // the real record still applies: the check refuses lies, not patches
            var applied = Patcher.apply(t.pidInt(), built.patch(), Patcher.ApplyOptions.defaults());
            assertEquals(Patcher.Outcome.APPLIED, applied.outcome());
            Fixture.await(t, t.lines().size(), "patched 2 other 64", 2);
        }
    }

    private static byte[] read(int pid, long address, int size) {
        byte[] b = new byte[size];
        try (var mem = RemoteMemory.open(pid)) {
            assertEquals(size, mem.read(address, b, 0, size));
        }
        return b;
    }
}
