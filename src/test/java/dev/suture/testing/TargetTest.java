package dev.suture.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TargetTest {
    @TempDir
    Path dir;

    @Test
    void startsDetachedAndKills() throws Exception {
        Path exe = Gcc.compile(dir, "ticker", """
                #include <stdio.h>
                #include <unistd.h>
                int main(void) { for (int i = 0; ; i++) { printf("tick %d\\n", i); fflush(stdout); usleep(10000); } }
                """);
        long pid;
        try (var t = Target.start(exe)) {
            pid = t.pid();
            t.awaitLine("tick 3", Duration.ofSeconds(10));
            String status = Files.readString(Path.of("/proc/" + pid + "/status"));
            long ppid = Long.parseLong(status.lines().filter(l -> l.startsWith("PPid:")).findFirst().orElseThrow()
                    .substring(5).trim());
            assertTrue(ppid != ProcessHandle.current().pid(), "target must not be a child of the test JVM");
            String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
            String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
            assertEquals(Long.toString(pid), f[3], "target leads its own session");
            assertTrue(t.alive());
            t.close();
            assertFalse(t.alive());
        }
    }
}
