package dev.suture.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.suture.patch.Keys;
import dev.suture.elf.ElfConstants;
import dev.suture.patch.PatchBuilder;
import dev.suture.patch.PatchFile;
import dev.suture.testing.Commands;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code suture keygen}, {@code suture sign} and {@code build --sign} from the command line. */
class SignCommandsTest {
    @TempDir
    Path dir;

    private static final String PROGRAM = """
            #include <stdio.h>
            #include <unistd.h>
            __attribute__((noinline)) void say(int i) { printf("say %d\\n", i); }
            int main(void) { alarm(120); say(1); return 0; }
            """;

    @Test
    void keygenWritesAPairOnceAndSaysItsKeyId() throws Exception {
        var r = Cli.run("keygen", "-o", dir.toString(), "--name", "ops", "--json");
        assertEquals(0, r.code(), r.err());
        var doc = new ObjectMapper().readTree(r.out());
        Path key = Path.of(doc.get("privateKey").asText());
        assertEquals(dir.resolve("ops.key"), key);
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(key)));
        assertEquals(Keys.keyId(Keys.readPublicKey(dir.resolve("ops.pub"))), doc.get("keyId").asText());
        String before = Files.readString(key);

        var again = Cli.run("keygen", "-o", dir.toString(), "--name", "ops");
        assertEquals(2, again.code());
        assertTrue(again.err().contains("already exists"), again.err());
        assertEquals(before, Files.readString(key), "the old key is untouched");
        var badName = Cli.run("keygen", "-o", dir.toString(), "--name", "a/b");
        assertEquals(2, badName.code());
        // a directory that does not exist yet is made (the README's example), private like the key
        var newDir = Cli.run("keygen", "-o", dir.resolve("missing/keys").toString());
        assertEquals(0, newDir.code(), newDir.err());
        assertTrue(Files.isRegularFile(dir.resolve("missing/keys/suture.key")));
        assertEquals("rwx------", java.nio.file.attribute.PosixFilePermissions.toString(
                Files.getPosixFilePermissions(dir.resolve("missing/keys"))));
    }

    @Test
    void buildSignsEachPatchAndAMissingKeyFailsBeforeBuilding() throws Exception {
        Path src = Files.createDirectories(dir.resolve("src"));
        Files.writeString(src.resolve("prog.c"), PROGRAM);
        Files.writeString(src.resolve("Makefile"), "prog: prog.c\n\t$(CC) -O1 -o prog prog.c\n");
        Files.writeString(dir.resolve("fix.diff"), """
                --- a/prog.c
                +++ b/prog.c
                @@ -1,4 +1,4 @@
                 #include <stdio.h>
                 #include <unistd.h>
                -__attribute__((noinline)) void say(int i) { printf("say %d\\n", i); }
                +__attribute__((noinline)) void say(int i) { printf("fixed %d\\n", i); }
                 int main(void) { alarm(120); say(1); return 0; }
                """);
        assertEquals(0, Cli.run("keygen", "-o", dir.toString(), "--name", "release").code());
        Path out = dir.resolve("out");

        var missing = Cli.run("build", "--src", src.toString(), "--diff", dir.resolve("fix.diff").toString(),
                "--target", "prog", "-o", out.toString(), "--sign", dir.resolve("nope.key").toString());
        assertEquals(2, missing.code());
        assertTrue(missing.err().contains("nope.key: no such key file"), missing.err());
        assertFalse(Files.exists(out), "nothing built");

        var r = Cli.run("build", "--src", src.toString(), "--diff", dir.resolve("fix.diff").toString(),
                "--target", "prog", "-o", out.toString(), "--sign", dir.resolve("release.key").toString(), "--json");
        assertEquals(0, r.code(), r.out() + r.err());
        var target = new ObjectMapper().readTree(r.out()).at("/targets/0");
        assertEquals("release", target.at("/signature/signer").asText());
        assertEquals("release", target.at("/signature/claimedSigner").asText());
        var patch = PatchFile.read(Path.of(target.get("patch").asText()));
        var sig = patch.signature().orElseThrow();
        assertTrue(sig.valid());
        assertEquals(target.at("/signature/keyId").asText(), sig.keyId());

        // signing again with another key replaces the signature; a file that is not a patch is refused
        assertEquals(0, Cli.run("keygen", "-o", dir.toString(), "--name", "second").code());
        var resign = Cli.run("sign", target.get("patch").asText(), "--key", dir.resolve("second.key").toString());
        assertEquals(0, resign.code(), resign.err());
        assertTrue(resign.out().contains(" with key ") && resign.out().contains("(claims to be second)"), resign.out());
        assertFalse(resign.err().contains("warning"), "a 0600 key is no warning: " + resign.err());
        // a private key others may read still signs, with a warning that says what to do
        Files.setPosixFilePermissions(dir.resolve("second.key"), java.nio.file.attribute.PosixFilePermissions
                .fromString("rw-r--r--"));
        var exposed = Cli.run("sign", target.get("patch").asText(), "--key", dir.resolve("second.key").toString());
        assertEquals(0, exposed.code(), exposed.err());
        assertTrue(exposed.err().contains("may be read by group or others (mode 0644)")
                && exposed.err().contains("chmod 600 " + dir.resolve("second.key")), exposed.err());
        assertEquals("second", PatchFile.read(Path.of(target.get("patch").asText())).signature().orElseThrow().signer());
        var notPatch = Cli.run("sign", dir.resolve("fix.diff").toString(), "--key", dir.resolve("second.key").toString());
        assertEquals(2, notPatch.code(), notPatch.err());
        var pubAsKey = Cli.run("sign", target.get("patch").asText(), "--key", dir.resolve("second.pub").toString());
        assertEquals(2, pubAsKey.code());
        assertTrue(pubAsKey.err().contains("BEGIN PRIVATE KEY"), pubAsKey.err());
    }

    /**
     * The configured trust directory ($SUTURE_TRUST_DIR) makes signatures required without any option. Runs suture
     * in a child JVM (the environment is per process). The pid does not exist: a patch that passes the check fails
     * with "vanished" (6), so exit 2 proves the refusal came first.
     */
    @Test
    void aConfiguredTrustDirectoryRequiresSignatures() throws Exception {
        var b = new PatchBuilder("cfg-fix", "0123abcd", "server", ElfConstants.ET_EXEC);
        byte[] code = {0x31, (byte) 0xc0, (byte) 0xc3, (byte) 0x90, (byte) 0x90};
        int text = b.addSection(".text.f", ElfConstants.SHT_PROGBITS,
                ElfConstants.SHF_ALLOC | ElfConstants.SHF_EXECINSTR, 16, 0, code, code.length);
        b.replaced("f", 0x401136, 8, "ab".repeat(32), b.defined("f", ElfConstants.STT_FUNC, text, 0, code.length), false);
        Path unsigned = dir.resolve("unsigned.suture");
        b.build().write(unsigned);
        Path trust = Files.createDirectories(dir.resolve("trust"));
        assertEquals(0, Cli.run("keygen", "-o", trust.toString(), "--name", "cfg").code());
        Path signed = Files.copy(unsigned, dir.resolve("signed.suture"));
        assertEquals(0, Cli.run("sign", signed.toString(), "--key", trust.resolve("cfg.key").toString()).code());
        Files.move(trust.resolve("cfg.key"), dir.resolve("cfg.key"));

        var refused = suture(trust.toString(), "apply", "-p", "999999999", unsigned.toString());
        assertEquals(2, refused.status(), refused.output());
        assertTrue(refused.output().contains("is not signed") && refused.output().contains(trust.toString()),
                refused.output());
        var accepted = suture(trust.toString(), "apply", "-p", "999999999", signed.toString());
        assertEquals(2, accepted.status(), accepted.output());
        assertTrue(accepted.output().contains("no process 999999999"), "past the signature check: " + accepted.output());
        var broken = suture(dir.resolve("nowhere").toString(), "apply", "-p", "999999999", signed.toString());
        assertEquals(2, broken.status(), broken.output());
        assertTrue(broken.output().contains("SUTURE_TRUST_DIR"), broken.output());
    }

    private Commands.Result suture(String trustDir, String... args) throws Exception {
        var cmd = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElse("java"),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                "dev.suture.cli.Main"));
        cmd.addAll(List.of(args));
        // Commands runs with the test's environment; env(1) adds the one variable for the child
        var withEnv = new ArrayList<>(List.of("env", "SUTURE_TRUST_DIR=" + trustDir));
        withEnv.addAll(cmd);
        return Commands.run(dir, Duration.ofSeconds(60), withEnv);
    }
}
