package dev.suture.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.suture.patch.PatchFile;
import dev.suture.testing.Commands;
import dev.suture.testing.Gcc;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code suture package}: what the .deb holds, read back with dpkg-deb. InstalledPackageTest (slow) installs one and
 * watches it patch a running process.
 */
class PackageCommandTest {
    @TempDir
    Path dir;

    @Test
    void thePackageCarriesThePatchForTheStoreAndScriptsThatApplyAndRevertIt() throws Exception {
        String source = "#include <stdio.h>\n__attribute__((noinline)) void say(void) { puts(\"%s\"); }\n"
                + "int main(void) { say(); return 0; }\n";
        for (String variant : List.of("orig", "patched")) {
            Path d = Files.createDirectories(dir.resolve(variant));
            Files.writeString(d.resolve("p.c"), source.formatted(variant));
            Gcc.run(d, "gcc", "-O1", "-fPIE", "-ffunction-sections", "-fdata-sections", "-c", "p.c", "-o", "p.o");
        }
        Gcc.run(dir, "gcc", "-pie", "-o", "p", "orig/p.o");
        Path patch = dir.resolve("fix.suture");
        assertEquals(0, Cli.run("diff", "--target", dir.resolve("p").toString(), "--orig", dir.resolve("orig/p.o")
                .toString(), "--patched", dir.resolve("patched/p.o").toString(), "-o", patch.toString(), "--name",
                "say-fix").code());
        String buildId = PatchFile.read(patch).targetBuildId();

        var r = Cli.run("package", patch.toString(), "--name", "say", "--version", "1.2-1", "-o",
                dir.resolve("out").toString(), "--json");
        assertEquals(0, r.code(), r.err());
        var doc = new ObjectMapper().readTree(r.out());
        Path deb = Path.of(doc.get("file").asText());
        assertEquals(dir.resolve("out/suture-patch-say_1.2-1_amd64.deb"), deb);
        assertEquals("/var/lib/suture/patches/" + buildId + ".suture", doc.at("/patches/0/installedAs").asText());
        assertTrue(!doc.at("/patches/0/signed").asBoolean());

        var text = Cli.run("package", patch.toString(), "--name", "say", "--version", "1.2-2", "-o",
                dir.resolve("out").toString());
        assertTrue(text.err().contains("is not signed"), "warns of an unsigned patch: " + text.err());

        String info = dpkgDeb("-I", deb.toString());
        for (String field : List.of("Package: suture-patch-say", "Version: 1.2-1", "Architecture: amd64",
                "Depends: suture", "say-fix: p (build-id " + buildId + "): say")) {
            assertTrue(info.contains(field), field + " in:\n" + info);
        }
        String contents = dpkgDeb("-c", deb.toString());
        assertTrue(contents.lines().anyMatch(l -> l.startsWith("-rw-r--r-- root/root")
                && l.endsWith("./var/lib/suture/patches/" + buildId + ".suture")), contents);
        Path control = dir.resolve("control");
        dpkgDeb("-e", deb.toString(), control.toString());
        String postinst = Files.readString(control.resolve("postinst"));
        assertTrue(postinst.contains("suture apply --all --replace /var/lib/suture/patches"), postinst);
        assertTrue(postinst.strip().endsWith("exit 0"), "a failed live patch never fails the installation");
        String prerm = Files.readString(control.resolve("prerm"));
        assertTrue(prerm.contains("suture revert 'say-fix'"), prerm);
        for (String script : List.of("postinst", "prerm")) {
            var sh = Commands.run(dir, Duration.ofSeconds(10), "sh", "-n", control.resolve(script).toString());
            assertEquals(0, sh.status(), script + ": " + sh.output());
        }
        byte[] shipped = Files.readAllBytes(patch);
        Path unpacked = dir.resolve("unpacked");
        dpkgDeb("-x", deb.toString(), unpacked.toString());
        assertTrue(java.util.Arrays.equals(shipped, Files.readAllBytes(unpacked.resolve("var/lib/suture/patches/"
                + buildId + ".suture"))), "the patch's bytes, unchanged (a signature covers them)");
    }

    private String dpkgDeb(String... args) throws Exception {
        var cmd = new java.util.ArrayList<>(List.of("dpkg-deb"));
        cmd.addAll(List.of(args));
        var r = Commands.run(dir, Duration.ofSeconds(60), cmd);
        assertEquals(0, r.status(), r.output());
        return r.output();
    }
}
