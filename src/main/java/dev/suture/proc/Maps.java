package dev.suture.proc;

import dev.suture.SutureException;
import dev.suture.sys.TrustedFiles;
import dev.suture.sys.ProcessVanishedException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/** /proc/PID/maps: reading it, and finding free address ranges within reach of a module. */
public final class Maps {
    static final long PAGE = 4096;
    /** rel32 reach: a jump or call can span at most 2 GiB in either direction. */
    static final long REACH = 1L << 31;
    /** Lowest address mmap accepts by default (vm.mmap_min_addr). */
    static final long MIN_ADDRESS = 0x10000;
    /** One past the highest user address with 4-level paging. */
    static final long MAX_ADDRESS = 0x7ffffffff000L;
    /** The kernel keeps this much (stack_guard_gap, 256 pages) free below a stack that grows down. */
    static final long STACK_GUARD = 256 * PAGE;

    private Maps() {}

    /** The mappings of process {@code pid}, in address order. */
    public static List<Mapping> read(int pid) {
        String text;
        try {
            text = Files.readString(Path.of("/proc/" + pid + "/maps"));
        } catch (NoSuchFileException e) {
            throw ProcessVanishedException.process(pid, "reading /proc/" + pid + "/maps");
        } catch (IOException e) {
            if (ThreadState.processGone(pid, ThreadState.VANISH_GRACE_MILLIS)) {
                throw ProcessVanishedException.process(pid, "reading /proc/" + pid + "/maps");
            }
            throw new SutureException(SutureException.Kind.NOT_PERMITTED, "cannot read /proc/" + pid + "/maps: "
                    + TrustedFiles.reason(e) + ProcessIds.WHY_DENIED);
        }
        return parse(text, "/proc/" + pid + "/maps");
    }

    /** Parses the text of a maps file; {@code name} is used in errors. */
    public static List<Mapping> parse(String text, String name) {
        var out = new ArrayList<Mapping>();
        int lineNo = 0;
        for (String line : text.split("\n")) {
            lineNo++;
            if (line.isBlank()) {
                continue;
            }
            try {
                out.add(parseLine(line));
            } catch (RuntimeException e) {
                throw new SutureException(SutureException.Kind.BAD_INPUT, name + " line " + lineNo
                        + " is not a mapping: \"" + line + "\"");
            }
        }
        return out;
    }

    private static Mapping parseLine(String line) {
        // start-end perms offset dev inode [path]; the path may contain spaces.
        String[] f = line.strip().split("\\s+", 6);
        int dash = f[0].indexOf('-');
        long start = Long.parseUnsignedLong(f[0].substring(0, dash), 16);
        long end = Long.parseUnsignedLong(f[0].substring(dash + 1), 16);
        if (Long.compareUnsigned(end, start) < 0 || f[1].length() != 4) {
            throw new IllegalArgumentException(line);
        }
        String path = f.length > 5 ? f[5] : "";
        return new Mapping(start, end, f[1], Long.parseUnsignedLong(f[2], 16), f[3], Long.parseLong(f[4]), path);
    }

    /**
     * A page-aligned free range of {@code size} bytes whose every byte is within ±2 GiB of {@code anchor}, as close
     * to it as possible, with a free guard page on either side.
     *
     * @throws SutureException (DOES_NOT_FIT) when there is none
     */
    public static long findFreeNear(List<Mapping> maps, long anchor, long size) {
        return findFreeWithin(maps, anchor, anchor + 1, size);
    }

    /**
     * A page-aligned free range of {@code size} bytes that a rel32 jump reaches from every byte of
     * [{@code from}, {@code to}) and back (e.g. the whole text of a module), as close to it as possible.
     */
    public static long findFreeWithin(List<Mapping> maps, long from, long to, long size) {
        long length = (size + PAGE - 1) & -PAGE;
        long lo = Math.max(MIN_ADDRESS, to - REACH + PAGE);
        long hi = Math.min(MAX_ADDRESS, from + REACH - PAGE); // the range must end at or below hi
        var sorted = new ArrayList<>(maps);
        sorted.sort(Comparator.comparingLong(Mapping::start));
        long best = -1;
        long bestDistance = Long.MAX_VALUE;
        long gapStart = MIN_ADDRESS;
        for (int i = 0; i <= sorted.size(); i++) {
            long gapEnd = i < sorted.size() ? sorted.get(i).start() : MAX_ADDRESS;
            if (i < sorted.size() && isStack(sorted.get(i))) {
                gapEnd -= STACK_GUARD;
            }
            // keep one free page to each neighbour, so our range never merges with theirs in /proc/PID/maps
            long start = Math.max(alignUp(gapStart + (i == 0 ? 0 : PAGE)), alignUp(lo));
            long end = Math.min(gapEnd - PAGE, hi);
            if (end - start >= length) {
                // nearest placement in this gap: its low end if above the anchor, its high end if below
                long candidate = start >= to ? start : Math.min(end - length, Math.max(start, alignDown(from)));
                long distance = candidate >= to ? candidate + length - from : to - candidate;
                if (distance < bestDistance) {
                    bestDistance = distance;
                    best = candidate;
                }
            }
            if (i < sorted.size()) {
                gapStart = Math.max(gapStart, sorted.get(i).end());
            }
        }
        if (best < 0) {
            throw new SutureException(SutureException.Kind.DOES_NOT_FIT, "no free range of " + length
                    + " bytes within 2 GiB of 0x" + Long.toHexString(from) + "-0x" + Long.toHexString(to)
                    + " in the process's address space");
        }
        return best;
    }

    private static boolean isStack(Mapping m) {
        return m.path().equals("[stack]") || m.path().startsWith("[stack:");
    }

    private static long alignUp(long a) {
        return (a + PAGE - 1) & -PAGE;
    }

    private static long alignDown(long a) {
        return a & -PAGE;
    }
}
