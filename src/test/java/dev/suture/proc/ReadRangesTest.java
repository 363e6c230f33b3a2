package dev.suture.proc;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.suture.testing.Gcc;
import dev.suture.testing.Procs;
import dev.suture.testing.Target;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link Tracer#readRanges}, the one read of every stack in a window: ranges come back packed in order, and a
 * range the kernel cannot read (a hole) ends the read there, so the caller sees exactly which ranges are whole.
 */
class ReadRangesTest {
    @TempDir
    Path dir;

    @AfterEach
    void nothingLeftTraced() {
        assertEquals(List.of(), Procs.tracedByThisJvm(), "threads left traced by this JVM");
    }

    @Test
    void rangesArePackedAndAHoleEndsTheRead() throws Exception {
        Path exe = Gcc.compile(dir, "pages", """
                #include <stdio.h>
                #include <string.h>
                #include <sys/mman.h>
                #include <unistd.h>
                int main(void) {
                    alarm(120); /* ends by itself even if the test dies before killing it */
                    char *p = mmap(0, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                    memset(p, 'a', 4096);
                    memset(p + 2 * 4096, 'c', 4096);
                    munmap(p + 4096, 4096);
                    printf("pages %lx\\n", (unsigned long) p);
                    fflush(stdout);
                    for (;;) pause();
                }
                """, "-O1");
        try (var target = Target.start(exe)) {
            String line = target.awaitLine(l -> l.startsWith("pages "), Duration.ofSeconds(10));
            long a = Long.parseUnsignedLong(line.substring(6), 16);
            long hole = a + 4096;
            long c = a + 2 * 4096;
            try (var tracer = Tracer.attach(target.pidInt())) {
                byte[] dst = new byte[3 * 4096];
                long n = tracer.readRanges(new long[] {c + 100, a, c}, new int[] {16, 4096, 8}, 3, dst);
                assertEquals(16 + 4096 + 8, n);
                assertArrayEquals(bytes('c', 16), Arrays.copyOfRange(dst, 0, 16));
                assertArrayEquals(bytes('a', 4096), Arrays.copyOfRange(dst, 16, 16 + 4096));
                assertArrayEquals(bytes('c', 8), Arrays.copyOfRange(dst, 16 + 4096, 16 + 4096 + 8));

                n = tracer.readRanges(new long[] {a, hole, c}, new int[] {4096, 64, 4096}, 3, dst);
                assertEquals(4096, n, "the read ends at the hole: only the first range is whole");
                assertEquals(0, tracer.readRanges(new long[] {hole, a}, new int[] {64, 64}, 2, dst),
                        "a hole first: nothing read");
            }
        }
    }

    private static byte[] bytes(char c, int n) {
        byte[] b = new byte[n];
        Arrays.fill(b, (byte) c);
        return b;
    }
}
