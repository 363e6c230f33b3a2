package dev.suture.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.cli.Cli;
import dev.suture.live.Fixture;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The patch store is a trust boundary (principle 9): a store another user could write to, a patch file another
 * user owns or may write, or a symbolic link planted in the store is refused (exit 5) by status and by apply, before
 * any process is looked at.
 */
class StoreAttackTest {
    @TempDir
    Path dir;

    private Path store() throws Exception {
        return Files.createDirectories(dir.resolve("store"));
    }

    private Path patch() throws Exception {
        return Fixture.program(dir, "versioned", AgentTest.ORIGINAL, AgentTest.PATCHED, "attack-v2", false)
                .patchFile();
    }

    private static void assertRefused(Path store, String why) {
        var status = Cli.run("status", "--store", store.toString());
        assertEquals(5, status.code(), status.toString());
        assertTrue(status.err().contains(why), status.err());
        var apply = Cli.run("apply", "--all", store.toString());
        assertEquals(5, apply.code(), apply.toString());
    }

    @Test
    void aStoreOthersMayWriteIsRefused() throws Exception {
        Path store = store();
        Files.copy(patch(), store.resolve("ab12.suture"));
        Files.setPosixFilePermissions(store, PosixFilePermissions.fromString("rwxrwxrwx"));
        assertRefused(store, "group or others may write it");
        // and a patch file in a good store that others may write
        Files.setPosixFilePermissions(store, PosixFilePermissions.fromString("rwxr-xr-x"));
        Files.setPosixFilePermissions(store.resolve("ab12.suture"), PosixFilePermissions.fromString("rw-rw-rw-"));
        assertRefused(store, "group or others may write it");
    }

    @Test
    void aPatchFileOfAnotherUserIsRefused() throws Exception {
        Path store = store();
        Path file = Files.copy(patch(), store.resolve("ab12.suture"));
        Files.setAttribute(file, "unix:uid", 65534);
        assertRefused(store, "it belongs to uid 65534");
    }

    @Test
    void aSymlinkPlantedInTheStoreIsRefused() throws Exception {
        Path store = store();
        Path elsewhere = Files.copy(patch(), dir.resolve("elsewhere.suture"));
        Files.createSymbolicLink(store.resolve("ab12.suture"), elsewhere);
        assertRefused(store, "symbolic link");
        Files.delete(store.resolve("ab12.suture"));
        Path level = Files.createDirectories(dir.resolve("levels"));
        Files.createSymbolicLink(store.resolve("ab12"), level);
        assertRefused(store, "symbolic link");
    }

    @Test
    void aTrustedStoreIsRead() throws Exception {
        Path store = store();
        Files.copy(patch(), store.resolve("ab12.suture"));
        var status = Cli.run("status", "--store", store.toString(), "--json");
        // stored under the wrong build-id: read, refused by name, nothing vulnerable
        assertEquals(0, status.code(), status.toString());
        assertTrue(status.out().contains("is stored under build-id ab12"), status.out());
    }
}
