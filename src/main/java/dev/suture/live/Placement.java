package dev.suture.live;

import dev.suture.proc.Mapping;
import dev.suture.x86.DoesNotFitException;
import java.util.Comparator;
import java.util.List;

/**
 * Chooses where a region goes: a free, page-aligned range from which every byte of the module is within rel32
 * reach (so the jumps at old entries and the region's references to the module fit), as close to the module as
 * possible, but never right above the heap, which brk must stay free to grow into.
 */
final class Placement {
    static final long PAGE = 4096;
    /** Keep this much room for the heap to grow before our region. */
    static final long HEAP_ROOM = 256L << 20;
    /** Keep a little space from any neighbour so guard pages and stack growth are not disturbed. */
    static final long GAP = 16 * PAGE;
    private static final long REACH = (1L << 31) - PAGE;
    private static final long LOWEST = 1L << 20;
    private static final long HIGHEST = 0x7fff_ffff_f000L;

    private Placement() {}

    /**
     * A start address for {@code size} bytes, with the whole region within reach of {@code [moduleStart,
     * moduleEnd)} and ending at or below {@code maxEnd}; DoesNotFitException when there is none.
     */
    static long find(List<Mapping> maps, long moduleStart, long moduleEnd, long size, long maxEnd,
                     String what) {
        return find(maps, moduleStart, moduleEnd, size, maxEnd, brkZone(maps, null), what);
    }

    /**
     * Where the heap may grow with brk: from the end of the executable (the kernel puts the break up to 32 MiB
     * above it) to {@link #HEAP_ROOM} above the current heap. {@code executable} is the main program's path as
     * maps shows it, or null to use only the [heap] mapping.
     */
    static long[] brkZone(List<Mapping> maps, String executable) {
        long start = Long.MAX_VALUE;
        long end = 0;
        for (var m : maps) {
            if (m.path().equals("[heap]")) {
                start = Math.min(start, m.start());
                end = Math.max(end, m.end() + HEAP_ROOM);
            }
        }
        if (executable != null) {
            long exeEnd = maps.stream().filter(m -> m.path().equals(executable)).mapToLong(Mapping::end)
                    .max().orElse(0);
            if (exeEnd > 0) {
                start = Math.min(start, exeEnd);
                end = Math.max(end, exeEnd + (32L << 20) + HEAP_ROOM);
            }
        }
        return start == Long.MAX_VALUE ? new long[] {0, 0} : new long[] {start, end};
    }

    static long find(List<Mapping> maps, long moduleStart, long moduleEnd, long size, long maxEnd,
                     long[] avoid, String what) {
        long lo = Math.max(LOWEST, moduleEnd - REACH);
        long hi = Math.min(Math.min(HIGHEST, maxEnd), moduleStart + REACH);
        var sorted = maps.stream().sorted(Comparator.comparingLong(Mapping::start)).toList();
        long best = -1;
        long bestDistance = Long.MAX_VALUE;
        long prevEnd = 0;
        for (int i = 0; i <= sorted.size(); i++) {
            long gapStart = prevEnd + (prevEnd == 0 ? 0 : GAP);
            long gapEnd = i < sorted.size() ? sorted.get(i).start() - GAP : HIGHEST;
            // the part of the gap the heap may grow into is not free for us
            if (avoid[1] > avoid[0] && gapStart < avoid[1] && gapEnd > avoid[0]) {
                if (gapStart >= avoid[0]) {
                    gapStart = avoid[1];
                } else {
                    gapEnd = Math.min(gapEnd, avoid[0]);
                }
            }
            long start = Math.max(align(gapStart), align(lo));
            long end = Math.min(gapEnd, hi);
            if (start + size <= end) {
                // the lowest start of this gap is closest to a module below it; the highest to one above it
                long candidate = start >= moduleEnd ? start : alignDown(end - size);
                long distance = candidate >= moduleEnd ? candidate - moduleEnd : moduleStart - (candidate + size);
                if (distance >= 0 && distance < bestDistance) {
                    best = candidate;
                    bestDistance = distance;
                }
            }
            if (i < sorted.size()) {
                prevEnd = Math.max(prevEnd, sorted.get(i).end());
            }
        }
        if (best < 0) {
            throw new DoesNotFitException(String.format("%s: no free range of %d bytes within ±2 GiB of the module"
                    + " at 0x%x-0x%x%s", what, size, moduleStart, moduleEnd,
                    maxEnd < Long.MAX_VALUE ? String.format(" below 0x%x", maxEnd) : ""));
        }
        return best;
    }

    private static long align(long v) {
        return (v + PAGE - 1) & ~(PAGE - 1);
    }

    private static long alignDown(long v) {
        return v & ~(PAGE - 1);
    }
}
