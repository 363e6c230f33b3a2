package dev.suture.unwind;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * The function symbols of a module sorted by address, for pc -> symbol+offset. Where several names share an
 * address, the one added first wins (callers add .symtab before .dynsym, global before weak).
 */
public final class SymbolTable {
    public static final SymbolTable EMPTY = new SymbolTable(List.of());

    /** A function at link-time {@code value} of {@code size} bytes (0 if unknown). */
    public record Entry(String name, long value, long size) {}

    /** A symbolized address: the symbol and the offset of the address in it. */
    public record Hit(String name, long offset) {}

    private final long[] values;
    private final long[] sizes;
    private final String[] names;

    public SymbolTable(List<Entry> entries) {
        var list = new ArrayList<Entry>();
        // stable sort keeps the caller's preference order among names at one address
        var indexed = new ArrayList<>(entries);
        indexed.sort(Comparator.comparingLong(Entry::value));
        Entry previous = null;
        for (Entry e : indexed) {
            if (previous != null && previous.value() == e.value()) {
                if (previous.size() == 0 && e.size() != 0) {
                    list.set(list.size() - 1, new Entry(previous.name(), previous.value(), e.size()));
                    previous = list.getLast();
                }
                continue;
            }
            list.add(e);
            previous = e;
        }
        int n = list.size();
        values = new long[n];
        sizes = new long[n];
        names = new String[n];
        for (int i = 0; i < n; i++) {
            values[i] = list.get(i).value();
            sizes[i] = list.get(i).size();
            names[i] = list.get(i).name();
        }
    }

    public int size() {
        return names.length;
    }

    /**
     * The function holding link-time {@code address}: the closest symbol at or below it, if the address is inside
     * its size (or the symbol has no size); null otherwise.
     */
    public Hit lookup(long address) {
        int lo = 0;
        int hi = values.length - 1;
        int found = -1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (Long.compareUnsigned(values[mid], address) <= 0) {
                found = mid;
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        // a sized symbol below may still cover the address when a smaller one sits in between (rare; check two)
        for (int i = found; i >= 0 && i > found - 2; i--) {
            long offset = address - values[i];
            if (sizes[i] == 0 ? i == found : Long.compareUnsigned(offset, sizes[i]) < 0) {
                return new Hit(names[i], offset);
            }
        }
        return null;
    }
}
