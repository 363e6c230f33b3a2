package dev.suture.unwind;

import dev.suture.elf.AddressRanges;
import java.util.ArrayList;
import java.util.List;

/** The executable address ranges of a process and the module each belongs to, searched by binary search. */
public final class CodeMap {
    private final AddressRanges extents;
    private final CodeModule[] modules;

    /** One executable range {@code [start, end)} of {@code module}. */
    public record Range(long start, long end, CodeModule module) {}

    public CodeMap(List<Range> ranges) {
        var sorted = new ArrayList<>(ranges);
        sorted.sort((a, b) -> Long.compareUnsigned(a.start(), b.start()));
        int n = sorted.size();
        long[] starts = new long[n];
        long[] ends = new long[n];
        modules = new CodeModule[n];
        for (int i = 0; i < n; i++) {
            starts[i] = sorted.get(i).start();
            ends[i] = sorted.get(i).end();
            modules[i] = sorted.get(i).module();
        }
        extents = new AddressRanges(starts, ends);
    }

    /** Number of executable ranges. */
    public int size() {
        return extents.size();
    }

    /** The {@code i}-th executable range, by address. */
    public Range range(int i) {
        return new Range(extents.start(i), extents.end(i), modules[i]);
    }

    /** The module whose executable range holds {@code pc}, or null. */
    public CodeModule moduleAt(long pc) {
        int i = extents.indexOf(pc);
        return i < 0 ? null : modules[i];
    }
}
