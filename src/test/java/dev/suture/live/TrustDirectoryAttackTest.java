package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.suture.cli.Cli;
import dev.suture.patch.PatchFile;
import dev.suture.testing.Commands;
import dev.suture.testing.Procs;
import dev.suture.testing.Stranger;
import dev.suture.testing.Target;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Attack: a local user (the {@link Stranger}) makes a key named "alice", signs a patch with it, and gets its public
 * key into what root's suture trusts: a world-writable trust directory of their own (by --trust or
 * $SUTURE_TRUST_DIR), a symlink from root's trust directory into their directory, a .pub of root's directory that
 * they own, or a --trust FILE.pub in their directory. Each is refused (exit 5) before a byte is written; inspect
 * names the signer by key id and shows "alice" only as the file's claim, unless alice's real key is trusted.
 */
class TrustDirectoryAttackTest {
    static final String PROGRAM = SignedApplyTest.PROGRAM;

    @TempDir
    Path dir;

    @AfterEach
    void nothingLeftTraced() {
        assertEquals(List.of(), Procs.tracedByThisJvm(), "threads left traced by this JVM");
    }

    @Test
    void keysAStrangerControlsAreNotTrustedAndClaimedNamesAreShownAsClaims() throws Exception {
        var built = Fixture.program(dir, "prog", PROGRAM, PROGRAM.replace("value %d", "patched %d"), "say-fix", true);
        Path real = Files.createDirectories(dir.resolve("real"));
        Path attacker = Files.createDirectories(dir.resolve("attacker"));
        ok(Cli.run("keygen", "-o", real.toString(), "--name", "alice"));
        ok(Cli.run("keygen", "-o", attacker.toString(), "--name", "alice"));
        Path evil = Files.copy(built.patchFile(), dir.resolve("evil.suture"));
        ok(Cli.run("sign", evil.toString(), "--key", attacker.resolve("alice.key").toString()));
        Path good = Files.copy(built.patchFile(), dir.resolve("good.suture"));
        ok(Cli.run("sign", good.toString(), "--key", real.resolve("alice.key").toString()));
        String evilKey = PatchFile.read(evil).signature().orElseThrow().keyId();
        String attackerPub = Files.readString(attacker.resolve("alice.pub"));

        // the stranger's world-writable directory, with their key in it
        Path lair = Path.of(Stranger.must("d=$(mktemp -d /tmp/suture-stranger.XXXXXX) && chmod 777 $d && echo $d")
                .strip());
        try (var t = Target.start(built.exe())) {
            Stranger.must("cat > " + lair + "/alice.pub <<'EOF'\n" + attackerPub + "EOF\n");
            Fixture.await(t, 0, "value", 3);
            String pid = Long.toString(t.pid());
            byte[] before = Fixture.text(t.pidInt(), built.exe());

            // a root-owned 0755 trust directory whose alice.pub is a symlink into the stranger's directory
            Path linked = Files.createDirectories(dir.resolve("trust-link"));
            Files.createSymbolicLink(linked.resolve("alice.pub"), lair.resolve("alice.pub"));
            // a root-owned trust directory holding a .pub the stranger owns
            Path owned = Files.createDirectories(dir.resolve("trust-owned"));
            Files.writeString(owned.resolve("alice.pub"), attackerPub);
            Files.setAttribute(owned.resolve("alice.pub"), "unix:uid", Stranger.UID);

            record Attack(String trust, String why) {}
            for (var a : List.of(
                    new Attack(lair.toString(), "belongs to uid " + Stranger.UID),
                    new Attack(linked.toString(), "symbolic link"),
                    new Attack(owned.toString(), "belongs to uid " + Stranger.UID),
                    new Attack(lair.resolve("alice.pub").toString(), "belongs to uid " + Stranger.UID))) {
                var r = Cli.run("apply", "-p", pid, "--trust", a.trust(), evil.toString());
                assertEquals(5, r.code(), a.trust() + ": " + r.out() + r.err());
                assertTrue(r.err().contains(a.why()) && r.err().contains("chown"), r.err());
                var shown = Cli.run("inspect", "--trust", a.trust(), evil.toString());
                assertEquals(5, shown.code(), "inspect believes it too: " + shown.out() + shown.err());
            }
            // the same directory as the configured one ($SUTURE_TRUST_DIR), in a child JVM for the environment
            var configured = suture(lair, "apply", "-p", pid, evil.toString());
            assertEquals(5, configured.status(), configured.output());
            assertTrue(configured.output().contains("belongs to uid " + Stranger.UID), configured.output());

            assertArrayEquals(before, Fixture.text(t.pidInt(), built.exe()), "nothing was written");
            assertTrue(Patcher.applied(t.pidInt()).isEmpty(), "no patch region");
            assertTrue(t.output().lines().noneMatch(l -> l.startsWith("patched")), "output unchanged");

            // inspect: the key id first, and "alice" only as the file's claim
            var inspect = Cli.run("inspect", evil.toString());
            ok(inspect);
            assertTrue(inspect.out().contains("signature: key id " + evilKey + ", claims to be alice"), inspect.out());
            var json = new ObjectMapper().readTree(Cli.run("inspect", "--json", evil.toString()).out());
            var sig = json.at("/patch/signature");
            assertEquals("keyId", sig.fieldNames().next());
            assertEquals(evilKey, sig.get("keyId").asText());
            assertEquals("alice", sig.get("claimedSigner").asText());
            assertTrue(sig.get("trustedSigner").isNull(), sig.toString());

            // with the real alice's key in root's trust directory: her patch shows the trusted name, his still a claim
            Path trust = Files.createDirectories(dir.resolve("trust"));
            Files.copy(real.resolve("alice.pub"), trust.resolve("alice.pub"));
            var mine = Cli.run("inspect", "--trust", trust.toString(), good.toString());
            assertTrue(mine.out().contains(", trusted as alice; verifies"), mine.out());
            var trustedJson = new ObjectMapper().readTree(Cli.run("inspect", "--json", "--trust", trust.toString(),
                    good.toString()).out());
            assertEquals("alice", trustedJson.at("/patch/signature/trustedSigner").asText());
            var his = Cli.run("inspect", "--trust", trust.toString(), evil.toString());
            assertTrue(his.out().contains(", claims to be alice"), his.out());
            var refused = Cli.run("apply", "-p", pid, "--trust", trust.toString(), evil.toString());
            assertEquals(2, refused.code(), refused.out() + refused.err());
            assertTrue(refused.err().contains("(claims to be alice), which is not one of the 1 trusted keys"),
                    refused.err());
            assertArrayEquals(before, Fixture.text(t.pidInt(), built.exe()), "nothing was written");

            int mark = t.lines().size();
            var applied = Cli.run("apply", "-p", pid, "--trust", trust.toString(), good.toString());
            ok(applied);
            assertTrue(applied.out().contains("(trusted as alice)"), applied.out());
            Fixture.await(t, mark, "patched", 3);
        } finally {
            Commands.run(dir, Duration.ofSeconds(30), List.of("rm", "-rf", lair.toString()));
        }
    }

    private static void ok(Cli.Result r) {
        assertEquals(0, r.code(), r.out() + r.err());
    }

    /** suture in a child JVM with $SUTURE_TRUST_DIR set (the environment is per process). */
    private Commands.Result suture(Path trustDir, String... args) throws Exception {
        var cmd = new ArrayList<>(List.of("env", "SUTURE_TRUST_DIR=" + trustDir,
                ProcessHandle.current().info().command().orElse("java"), "--enable-native-access=ALL-UNNAMED", "-cp",
                System.getProperty("java.class.path"), "dev.suture.cli.Main"));
        cmd.addAll(List.of(args));
        return Commands.run(dir, Duration.ofSeconds(60), cmd);
    }
}
