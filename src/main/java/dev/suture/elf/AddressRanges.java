package dev.suture.elf;

/**
 * Address ranges {@code [start, end)} sorted by start, not overlapping, found by binary search; addresses compare
 * unsigned. The one copy of that search: segments, mappings, code ranges, symbols and FDEs all use it. Lookups
 * allocate nothing, so the stop-the-world window may use them.
 */
public final class AddressRanges {
    public static final AddressRanges EMPTY = new AddressRanges(new long[0], new long[0]);

    private final long[] starts;
    private final long[] ends;

    /** The ranges {@code [starts[i], ends[i])}; both arrays are copied; starts must ascend. */
    public AddressRanges(long[] starts, long[] ends) {
        if (starts.length != ends.length) {
            throw new IllegalArgumentException(starts.length + " starts, " + ends.length + " ends");
        }
        for (int i = 1; i < starts.length; i++) {
            if (Long.compareUnsigned(starts[i - 1], starts[i]) > 0) {
                throw new IllegalArgumentException("range " + i + " starts before range " + (i - 1));
            }
        }
        this.starts = starts.clone();
        this.ends = ends.clone();
    }

    public int size() {
        return starts.length;
    }

    public long start(int i) {
        return starts[i];
    }

    public long end(int i) {
        return ends[i];
    }

    /** The index of the range holding {@code address}, or -1. */
    public int indexOf(long address) {
        int i = floor(starts, starts.length, address);
        return i >= 0 && Long.compareUnsigned(address, ends[i]) < 0 ? i : -1;
    }

    /** The end of the range holding {@code address}, or 0 when none holds it. */
    public long endOf(long address) {
        int i = indexOf(address);
        return i < 0 ? 0 : ends[i];
    }

    /**
     * The index of the last of the first {@code count} ascending {@code starts} that is at or below
     * {@code address}, or -1: for ranges whose ends are known only once found (FDEs) or may nest (symbols).
     */
    public static int floor(long[] starts, int count, long address) {
        int lo = 0;
        int hi = count - 1;
        int found = -1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (Long.compareUnsigned(starts[mid], address) <= 0) {
                found = mid;
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        return found;
    }
}
