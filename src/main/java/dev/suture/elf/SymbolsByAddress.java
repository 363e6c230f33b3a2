package dev.suture.elf;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.function.Predicate;

/**
 * Symbols sorted by address, for address -> symbol+offset (backtraces, descriptions of addresses). Where several
 * names share an address, the one added first wins; {@link #of} adds them in the order a person looks for.
 */
public final class SymbolsByAddress {
    public static final SymbolsByAddress EMPTY = new SymbolsByAddress(List.of());

    /** A symbol at link-time {@code value} of {@code size} bytes (0 if unknown). */
    public record Entry(String name, long value, long size) {}

    /** A symbolized address: the symbol and the offset of the address in it. */
    public record Hit(String name, long offset) {}

    private final long[] values;
    private final long[] sizes;
    private final String[] names;

    /** The entries, in order of preference among names at one address. */
    public SymbolsByAddress(List<Entry> entries) {
        var list = new ArrayList<Entry>();
        // stable sort keeps the caller's preference order among names at one address
        var indexed = new ArrayList<>(entries);
        indexed.sort((a, b) -> Long.compareUnsigned(a.value(), b.value()));
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

    /**
     * The named, defined symbols of {@code tables} that {@code which} accepts, in the order that decides among
     * aliases at one address: the tables in the order given; within a table a plain name before a versioned alias
     * ("name@GLIBC_2.2.5", as debug files list them), fewer leading underscores (the public name, "nanosleep"
     * rather than "__nanosleep"), then global, weak, local.
     */
    public static SymbolsByAddress of(List<List<Symbol>> tables, Predicate<Symbol> which) {
        var entries = new ArrayList<Entry>();
        for (List<Symbol> table : tables) {
            var chosen = new ArrayList<Symbol>();
            for (Symbol s : table) {
                if (s.isDefined() && s.st_value() != 0 && !s.name().isEmpty() && which.test(s)) {
                    chosen.add(s);
                }
            }
            chosen.sort(Comparator.comparingInt((Symbol s) -> s.name().indexOf('@') >= 0 ? 1 : 0)
                    .thenComparingInt(SymbolsByAddress::underscores).thenComparingInt(SymbolsByAddress::bindRank));
            for (Symbol s : chosen) {
                entries.add(new Entry(s.name(), s.st_value(), s.st_size()));
            }
        }
        return new SymbolsByAddress(entries);
    }

    private static int underscores(Symbol s) {
        int n = 0;
        while (n < s.name().length() && s.name().charAt(n) == '_') {
            n++;
        }
        return n;
    }

    private static int bindRank(Symbol s) {
        return s.isGlobal() ? 0 : s.isWeak() ? 1 : 2;
    }

    public int size() {
        return names.length;
    }

    /**
     * The symbol holding link-time {@code address}: the closest symbol at or below it, if the address is inside
     * its size (or the symbol has no size); null otherwise.
     */
    public Hit lookup(long address) {
        int found = AddressRanges.floor(values, values.length, address);
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
