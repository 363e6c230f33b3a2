package dev.suture.proc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.SutureException;
import java.util.List;
import org.junit.jupiter.api.Test;

class MapsTest {
    static final long GIB = 1L << 30;

    @Test
    void parsesPathsWithSpacesAndDeletedFiles() {
        var maps = Maps.parse("""
                55d0c0a3d000-55d0c0a3f000 r--p 00000000 fe:00 1234                       /opt/my app/bin
                7f12a0000000-7f12a0021000 rw-p 00000000 00:00 0
                7f12a1000000-7f12a1200000 r-xp 00026000 fe:00 99                         /usr/lib/libz.so.1 (deleted)
                7ffd5e3a0000-7ffd5e3c1000 rw-p 00000000 00:00 0                          [stack]
                """, "test");
        assertEquals(4, maps.size());
        assertEquals("/opt/my app/bin", maps.get(0).path());
        assertEquals(0x55d0c0a3d000L, maps.get(0).start());
        assertEquals("", maps.get(1).path());
        assertTrue(maps.get(2).isDeleted());
        assertEquals("/usr/lib/libz.so.1", maps.get(2).filePath());
        assertEquals(0x26000, maps.get(2).offset());
        assertEquals(99, maps.get(2).inode());
        assertTrue(maps.get(2).executable());
        assertEquals("7f12a1000000-7f12a1200000", maps.get(2).mapFilesName());
    }

    @Test
    void malformedLineIsBadInput() {
        var e = assertThrows(SutureException.class, () -> Maps.parse("zzzz-1 r--p\n", "x"));
        assertEquals(SutureException.Kind.BAD_INPUT, e.kind());
    }

    @Test
    void findsNearestFreeRangeWithinReach() {
        var module = new Mapping(0x555555554000L, 0x555555600000L, "r-xp", 0, "/bin/app");
        var heap = new Mapping(0x555555600000L, 0x555555700000L, "rw-p", 0, "[heap]");
        var libs = new Mapping(0x7ffff7a00000L, 0x7ffff7e00000L, "r-xp", 0, "/lib/libc.so.6");
        var stack = new Mapping(0x7ffffffde000L, 0x7ffffffff000L, "rw-p", 0, "[stack]");
        var maps = List.of(module, heap, libs, stack);
        long at = Maps.findFreeNear(maps, module.start(), 0x3000);
        assertEquals(0, at % 4096);
        assertEquals(module.start() - 4096 - 0x3000, at, "just below the module, one guard page away");
        assertFree(maps, at, 0x3000);

        long nearLibc = Maps.findFreeWithin(maps, libs.start(), libs.end(), 0x10000);
        assertEquals(libs.start() - 4096 - 0x10000, nearLibc, "just below libc");
        assertFree(maps, nearLibc, 0x10000);
        assertTrue(libs.end() - nearLibc < 2 * GIB);
    }

    @Test
    void respectsReachAndFailsWhenFull() {
        // everything within 2 GiB of the module is taken
        var module = new Mapping(0x100000000L, 0x100010000L, "r-xp", 0, "/bin/app");
        var below = new Mapping(0x10000L, 0x100000000L, "rw-p", 0, "");
        var above = new Mapping(0x100010000L, 0x100010000L + 3 * GIB, "rw-p", 0, "");
        var e = assertThrows(SutureException.class, () -> Maps.findFreeNear(List.of(below, module, above),
                module.start(), 4096));
        assertEquals(SutureException.Kind.DOES_NOT_FIT, e.kind());

        var shorter = new Mapping(0x100010000L, 0x100010000L + GIB, "rw-p", 0, "");
        long at = Maps.findFreeNear(List.of(below, module, shorter), module.start(), 4096);
        assertEquals(shorter.end() + 4096, at);
    }

    @Test
    void keepsClearOfTheStackGuardGap() {
        var stack = new Mapping(0x7ffffffde000L, 0x7ffffffff000L, "rw-p", 0, "[stack]");
        var below = new Mapping(0x7fff00000000L, 0x7fffff000000L, "rw-p", 0, "");
        long at = Maps.findFreeNear(List.of(below, stack), stack.start(), 4096);
        assertEquals(stack.start() - 256 * 4096 - 4096 - 4096, at, Long.toHexString(at));
    }

    private static void assertFree(List<Mapping> maps, long at, long size) {
        for (var m : maps) {
            assertTrue(at + size + 4096 <= m.start() || at >= m.end() + 4096, "overlaps or touches " + m);
        }
    }
}
