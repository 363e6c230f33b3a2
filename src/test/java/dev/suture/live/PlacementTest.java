package dev.suture.live;

import dev.suture.proc.Mapping;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.x86.DoesNotFitException;
import java.util.List;
import org.junit.jupiter.api.Test;

class PlacementTest {
    static Mapping m(long start, long end, String path) {
        return new Mapping(start, end, "r--p", 0, path);
    }

    @Test
    void nonPieExecutableLeavesTheHeapRoomToGrow() {
        var maps = List.of(m(0x400000, 0x405000, "/demo"), m(0x1000000, 0x1021000, "[heap]"),
                m(0x7f0000000000L, 0x7f0000200000L, "/libc.so.6"), m(0x7ffc00000000L, 0x7ffc00021000L, "[stack]"));
        long at = Placement.find(maps, 0x400000, 0x405000, 0x2000, 0x8000_0000L, "t");
        // the free space below the executable is nearest
        assertEquals(0x400000 - Placement.GAP - 0x2000, at);
        // without it, above the heap's room to grow
        var low = List.of(m(0x100000, 0x400000, "/other"), m(0x400000, 0x405000, "/demo"),
                m(0x1000000, 0x1021000, "[heap]"));
        // below the heap's start is free (the heap grows up)
        assertEquals(0x405000 + Placement.GAP,
                Placement.find(low, 0x400000, 0x405000, 0x2000, 0x8000_0000L, Placement.brkZone(low, null), "t"));
        assertEquals(0x405000 + (32L << 20) + Placement.HEAP_ROOM,
                Placement.find(low, 0x400000, 0x405000, 0x2000, 0x8000_0000L, Placement.brkZone(low, "/demo"), "t"));
        // before the program has a heap, the break may start anywhere up to 32 MiB above the executable
        var noHeap = List.of(m(0x100000, 0x400000, "/other"), m(0x400000, 0x405000, "/demo"));
        assertEquals(0x405000 + (32L << 20) + Placement.HEAP_ROOM, Placement.find(noHeap, 0x400000, 0x405000,
                0x2000, 0x8000_0000L, Placement.brkZone(noHeap, "/demo"), "t"));
    }

    @Test
    void libraryGetsTheNearestGapAndEverythingReaches() {
        long lib = 0x7f1234560000L;
        var maps = List.of(m(0x7f1200000000L, 0x7f1200100000L, "/other.so"), m(lib, lib + 0x200000, "/libx.so"),
                m(lib + 0x200000, lib + 0x300000, "/liby.so"));
        long at = Placement.find(maps, lib, lib + 0x200000, 0x3000, Long.MAX_VALUE, "t");
        assertEquals(lib - Placement.GAP - 0x3000, at);
        assertTrue(at + 0x3000 - lib < (1L << 31) && lib + 0x200000 - at < (1L << 31));
    }

    @Test
    void noRoomIsDoesNotFit() {
        long lib = 0x7f0000000000L;
        // everything within ±2 GiB is taken
        var maps = List.of(m(lib - (3L << 30), lib + (3L << 30), "/huge"));
        var e = assertThrows(DoesNotFitException.class,
                () -> Placement.find(maps, lib, lib + 0x1000, 0x1000, Long.MAX_VALUE, "pid 1"));
        assertTrue(e.getMessage().contains("±2 GiB"), e.getMessage());
    }
}
