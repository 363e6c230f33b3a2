package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.cli.Cli;
import dev.suture.testing.Commands;
import dev.suture.testing.ScratchRoot;
import dev.suture.testing.Target;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * suture as an operator meets it (issue 18): its .deb, built by ./suture-package, installed on this machine (in a
 * scratch root over it, so the machine stays as it was), upgraded and purged, leaving nothing behind; the
 * installed command, man page and completion; and a patch package from {@code suture package} that patches a
 * running process when dpkg installs it and reverts it when dpkg removes it.
 */
@Tag("slow")
class InstalledPackageTest {
    static final Duration DPKG = Duration.ofMinutes(3);

    @TempDir
    Path dir;

    @Test
    void installedUpgradedAndPurgedCleanlyAndPatchPackagesPatchRunningProcesses() throws Exception {
        Path debs = Files.createDirectories(dir.resolve("debs"));
        var built = Commands.run(Path.of("").toAbsolutePath(), Duration.ofMinutes(20), "./suture-package", "-o",
                debs.toString(), "--version", "0.1.0~test1");
        assertEquals(0, built.status(), built.output());
        Path deb = debs.resolve("suture_0.1.0~test1_amd64.deb");
        assertTrue(Files.isRegularFile(deb), built.output());
        Path upgrade = repack(deb, "0.1.0~test2");

        var root = new ScratchRoot(dir.resolve("scratch"));
        ok(root.run(DPKG, "dpkg -i " + deb));
        // no JDK, no checkout: the package's own runtime
        var installed = ok(root.run(DPKG, """
                env -i PATH=/usr/bin:/bin suture --version
                stat -c '%U:%G %a %n' /var/lib/suture/patches /etc/suture/trusted-keys /usr/bin/suture
                MANWIDTH=200 man -P cat suture-apply
                bash -c '. /usr/share/bash-completion/completions/suture; COMP_WORDS=(suture ap); COMP_CWORD=1
                         _complete_suture; echo "completes: ${COMPREPLY[*]}"'
                if command -v zsh >/dev/null; then
                  test "$(zsh -c 'autoload -U compinit && compinit -u -D; echo $_comps[suture]')" = _suture
                  zsh -c 'autoload -U +X compinit && compinit -u -D; autoload -U +X bashcompinit && bashcompinit
                          source /usr/share/bash-completion/completions/suture; COMP_WORDS=(suture pack); COMP_CWORD=1
                          _complete_suture; echo "zsh completes: ${COMPREPLY[*]}"'
                fi
                """));
        for (String expected : List.of("suture 0.1.0", "root:root 755 /var/lib/suture/patches",
                "root:root 755 /etc/suture/trusted-keys", "root:root 755 /usr/bin/suture",
                "suture-apply - Patches running processes.", "--timeout TIME", "completes: apply")) {
            assertTrue(installed.contains(expected), expected + " in:\n" + installed);
        }
        if (installed.contains("zsh completes")) {
            // zsh's bashcompinit filters the candidates by the word itself; the function must offer them
            assertTrue(installed.lines().anyMatch(l -> l.startsWith("zsh completes: ") && l.contains(" package")),
                    installed);
        }

        var b = Fixture.program(dir, "prog", SignedApplyTest.PROGRAM,
                SignedApplyTest.PROGRAM.replace("value %d", "patched %d"), "say-fix", true);
        Path keys = dir.resolve("keys");
        ok(Cli.run("keygen", "-o", keys.toString(), "--name", "alice"));
        Path unsigned = Files.copy(b.patchFile(), dir.resolve("unsigned.suture"));
        ok(Cli.run("sign", b.patchFile().toString(), "--key", keys.resolve("alice.key").toString()));
        ok(Cli.run("package", b.patchFile().toString(), "--name", "say", "--version", "1.0", "-o", debs.toString()));
        ok(Cli.run("package", unsigned.toString(), "--name", "say-unsigned", "--version", "1.0", "-o",
                debs.toString()));
        ok(root.run(DPKG, "install -m 644 " + keys.resolve("alice.pub") + " /etc/suture/trusted-keys/alice.pub"));

        try (var t = Target.start(b.exe())) {
            Fixture.await(t, 0, "value", 3);
            int pid = t.pidInt();
            // the installed suture requires signatures (its trust directory exists): the unsigned patch is refused,
            // and that fails neither the installation nor the process
            var refused = root.run(DPKG, "dpkg -i " + debs.resolve("suture-patch-say-unsigned_1.0_amd64.deb"));
            assertEquals(0, refused.status(), refused.output());
            assertTrue(refused.output().contains("not every process could be patched now"), refused.output());
            assertTrue(Patcher.applied(pid).isEmpty(), "nothing applied");
            ok(root.run(DPKG, "dpkg -r suture-patch-say-unsigned"));

            int mark = t.lines().size();
            var install = ok(root.run(DPKG, "dpkg -i " + debs.resolve("suture-patch-say_1.0_amd64.deb")));
            assertTrue(install.contains("applied say-fix"), install);
            Fixture.await(t, mark, "patched", 3);
            assertEquals("say-fix", Patcher.applied(pid).getFirst().patchId());

            // with the installed agent running, info is served by it through the package's client (no JVM)
            var served = ok(root.run(DPKG, """
                    install -d -m 755 /run/test-store
                    suture agent --store /run/test-store > /run/agent.log 2>&1 &
                    agent=$!
                    for i in $(seq 600); do [ -S /run/suture/agent.sock ] && break; sleep 0.1; done
                    suture info -p %d
                    kill $agent; wait $agent
                    cat /run/agent.log
                    """.formatted(pid)));
            assertTrue(served.contains("say-fix") && served.contains("served a request from root"), served);

            // upgrading suture keeps the patch package and what it applied
            ok(root.run(DPKG, "dpkg -i " + upgrade));
            assertTrue(ok(root.run(DPKG, "dpkg-query -W suture; suture info")).contains("0.1.0~test2"));
            assertEquals("say-fix", Patcher.applied(pid).getFirst().patchId());

            var remove = ok(root.run(DPKG, "dpkg -r suture-patch-say"));
            assertTrue(remove.contains("reverted say-fix"), remove);
            assertTrue(Patcher.applied(pid).isEmpty(), "reverted");
            mark = t.lines().size();
            Fixture.await(t, mark, "value", 3);
        }
        // a lock a suture left in the run directory (as the applies above did) goes with the purge, and the directory
        ok(root.run(DPKG, "rm /etc/suture/trusted-keys/alice.pub && install -d -m 700 /run/suture"
                + " && install -m 600 /dev/null /run/suture/" + ProcessHandle.current().pid() + ".lock"
                + " && dpkg --purge suture && test ! -e /run/suture"));
        assertEquals(List.of(), root.leftovers(), "install, upgrade, purge leave the machine as it was");
    }

    /** {@code deb} with another version: what an upgrade installs. */
    private Path repack(Path deb, String version) throws Exception {
        Path tree = dir.resolve("repack-" + version);
        assertEquals(0, Commands.run(dir, DPKG, "dpkg-deb", "-R", deb.toString(), tree.toString()).status());
        Path control = tree.resolve("DEBIAN/control");
        Files.writeString(control, Files.readString(control).replaceFirst("(?m)^Version: .*$", "Version: " + version));
        Path out = deb.resolveSibling("suture_" + version + "_amd64.deb");
        var r = Commands.run(dir, DPKG, "dpkg-deb", "--root-owner-group", "-Zgzip", "--build", tree.toString(),
                out.toString());
        assertEquals(0, r.status(), r.output());
        return out;
    }

    private static String ok(Commands.Result r) {
        assertEquals(0, r.status(), r.output());
        return r.output();
    }

    private static void ok(Cli.Result r) {
        assertEquals(0, r.code(), r.out() + r.err());
    }
}
