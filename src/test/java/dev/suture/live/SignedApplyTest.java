package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.suture.cli.Cli;
import dev.suture.elf.ElfFile;
import dev.suture.patch.PatchFile;
import dev.suture.testing.Commands;
import dev.suture.testing.Target;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Signed patches end to end: keygen, diff --sign, inspect, and apply --require-signed --trust on a running
 * program, which accepts the signed patch and refuses (exit 2, nothing written, the program's output unchanged)
 * an unsigned one, one signed by an unknown key, and signed ones with a byte changed in .text or .suture.info.
 */
class SignedApplyTest {
    static final String PROGRAM = """
            #include <stdio.h>
            #include <time.h>
            #include <unistd.h>

            __attribute__((noinline)) void say(int i) {
                printf("value %d\\n", i);
            }

            int main(void) {
                alarm(120);
                setvbuf(stdout, 0, _IOLBF, 0);
                for (int i = 0;; i++) {
                    say(i);
                    struct timespec t = {0, 20000000L};
                    nanosleep(&t, 0);
                }
            }
            """;

    @TempDir
    Path dir;

    private Path p(String name) {
        return dir.resolve(name);
    }

    private static void ok(Cli.Result r) {
        assertEquals(0, r.code(), r.out() + r.err());
    }

    @Test
    void applyAcceptsOnlyIntactPatchesSignedByTrustedKeys() throws Exception {
        Path orig = Fixture.object(dir, "orig", "prog", PROGRAM, "-fPIE");
        Path patched = Fixture.object(dir, "patched", "prog", PROGRAM.replace("value %d", "patched %d"), "-fPIE");
        Path exe = Fixture.link(dir, "prog", List.of(orig), "-pie");

        Path keys = Files.createDirectories(p("keys"));
        ok(Cli.run("keygen", "-o", keys.toString(), "--name", "alice"));
        ok(Cli.run("keygen", "-o", keys.toString(), "--name", "mallory"));
        Path trust = Files.createDirectories(p("trust"));
        Files.copy(keys.resolve("alice.pub"), trust.resolve("alice.pub"));

        ok(Cli.run("diff", "--target", exe.toString(), "--orig", orig.toString(), "--patched", patched.toString(),
                "-o", p("signed.suture").toString(), "--name", "say-fix", "--sign", keys.resolve("alice.key").toString()));
        ok(Cli.run("diff", "--target", exe.toString(), "--orig", orig.toString(), "--patched", patched.toString(),
                "-o", p("unsigned.suture").toString(), "--name", "say-fix"));
        Files.copy(p("unsigned.suture"), p("mallory.suture"));
        ok(Cli.run("sign", p("mallory.suture").toString(), "--key", keys.resolve("mallory.key").toString()));
        Path badText = flipped("signed.suture", ".text.say", "text.suture");
        Path badInfo = flipped("signed.suture", PatchFile.INFO_SECTION, "info.suture");

        // inspect names the signer, in text and JSON, and notices the changed byte
        var inspect = Cli.run("inspect", p("signed.suture").toString());
        ok(inspect);
        assertTrue(inspect.out().contains("signature: key id " + PatchFile.read(p("signed.suture")).signature().orElseThrow().keyId() + ", claims to be alice"),
                inspect.out());
        assertTrue(inspect.out().contains("verifies against the public key it carries"), inspect.out());
        var json = new ObjectMapper().readTree(Cli.run("inspect", "--json", p("signed.suture").toString()).out());
        assertEquals("alice", json.at("/patch/signature/signer").asText());
        assertEquals("alice", json.at("/patch/signature/claimedSigner").asText());
        assertTrue(json.at("/patch/signature/trustedSigner").isNull(), json.toString());
        // with alice's key in a trust directory, the name is the trusted one
        var trusted = Cli.run("inspect", "--trust", trust.toString(), p("signed.suture").toString());
        assertTrue(trusted.out().contains(", trusted as alice; verifies"), trusted.out());
        assertTrue(json.at("/patch/signature/valid").asBoolean());
        assertEquals(64, json.at("/patch/signature/keyId").asText().length());
        var tamperedInspect = Cli.run("inspect", badText.toString());
        assertTrue(tamperedInspect.out().contains("DOES NOT VERIFY"), tamperedInspect.out());
        assertTrue(Cli.run("inspect", p("unsigned.suture").toString()).out().contains("signature: none (unsigned)"));

        // binutils read the signed file without a complaint
        for (var tool : List.of(List.of("readelf", "-a", "-W"), List.of("objdump", "-dr"))) {
            var cmd = new java.util.ArrayList<>(tool);
            cmd.add(p("signed.suture").toString());
            var r = Commands.run(dir, Duration.ofSeconds(30), cmd);
            assertEquals(0, r.status(), r.output());
            assertFalse(r.output().lines().anyMatch(l -> l.startsWith(tool.getFirst() + ":")), r.output());
        }

        try (var t = Target.start(exe)) {
            Fixture.await(t, 0, "value", 3);
            String pid = Long.toString(t.pid());
            byte[] before = Fixture.text(t.pidInt(), exe);
            String trustArg = trust.toString();
            record Refusal(Path patch, String message) {}
            for (var refusal : List.of(
                    new Refusal(p("unsigned.suture"), "is not signed"),
                    new Refusal(p("mallory.suture"), "(claims to be mallory)"),
                    new Refusal(badText, "changed after it was signed"),
                    new Refusal(badInfo, "changed after it was signed"))) {
                var r = Cli.run("apply", "-p", pid, "--require-signed", "--trust", trustArg, refusal.patch().toString());
                assertEquals(2, r.code(), refusal.patch() + ": " + r.out() + r.err());
                assertTrue(r.err().contains(refusal.message()), r.err());
                assertTrue(r.err().contains(refusal.patch().toString()), "names the file: " + r.err());
            }
            // a changed signed patch is refused even when signatures are not required
            var loose = Cli.run("apply", "-p", pid, badText.toString());
            assertEquals(2, loose.code(), loose.out() + loose.err());
            // a store is checked file by file, before any process is touched, also with --all
            Path store = Files.createDirectories(p("store"));
            String buildId = PatchFile.read(p("signed.suture")).targetBuildId();
            Files.copy(p("signed.suture"), store.resolve(buildId + ".suture"));
            Files.copy(p("unsigned.suture"), store.resolve("00ff.suture"));
            var all = Cli.run("apply", "--all", "--trust", trustArg, store.toString());
            assertEquals(2, all.code(), all.out() + all.err());
            assertTrue(all.err().contains("00ff.suture") && all.err().contains("is not signed"), all.err());

            assertArrayEquals(before, Fixture.text(t.pidInt(), exe), "nothing was written");
            assertTrue(Patcher.applied(t.pidInt()).isEmpty(), "no patch region");
            assertTrue(t.output().lines().noneMatch(l -> l.startsWith("patched")), "output unchanged");
            assertTrue(t.alive());

            Files.delete(store.resolve("00ff.suture"));
            int mark = t.lines().size();
            var accepted = Cli.run("apply", "-p", pid, "--require-signed", "--trust", trustArg, store.toString());
            ok(accepted);
            assertTrue(accepted.out().contains("signed by key ") && accepted.out().contains("(trusted as alice)"),
                    accepted.out());
            Fixture.await(t, mark, "patched", 3);
            assertEquals("say-fix", Patcher.applied(t.pidInt()).getFirst().patchId());
        }
    }

    /** A copy of {@code from} with one bit flipped in the middle of section {@code section}. */
    private Path flipped(String from, String section, String to) throws Exception {
        byte[] bytes = Files.readAllBytes(p(from));
        long at;
        try (var elf = ElfFile.parse(from, bytes)) {
            var s = elf.section(section).orElseThrow();
            at = s.sh_offset() + s.sh_size() / 2;
        }
        bytes[(int) at] ^= 0x01;
        Path out = p(to);
        Files.write(out, bytes);
        return out;
    }
}
