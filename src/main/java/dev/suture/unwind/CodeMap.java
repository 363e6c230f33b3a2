package dev.suture.unwind;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/** The executable address ranges of a process and the module each belongs to, searched by binary search. */
public final class CodeMap {
    private final long[] starts;
    private final long[] ends;
    private final CodeModule[] modules;

    /** One executable range {@code [start, end)} of {@code module}. */
    public record Range(long start, long end, CodeModule module) {}

    public CodeMap(List<Range> ranges) {
        var sorted = new ArrayList<>(ranges);
        sorted.sort(Comparator.comparingLong(Range::start));
        int n = sorted.size();
        starts = new long[n];
        ends = new long[n];
        modules = new CodeModule[n];
        for (int i = 0; i < n; i++) {
            starts[i] = sorted.get(i).start();
            ends[i] = sorted.get(i).end();
            modules[i] = sorted.get(i).module();
        }
    }

    /** The module whose executable range holds {@code pc}, or null. */
    public CodeModule moduleAt(long pc) {
        int lo = 0;
        int hi = starts.length - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (Long.compareUnsigned(starts[mid], pc) <= 0) {
                if (Long.compareUnsigned(pc, ends[mid]) < 0) {
                    return modules[mid];
                }
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        return null;
    }
}
