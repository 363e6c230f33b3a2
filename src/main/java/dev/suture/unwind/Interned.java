package dev.suture.unwind;

/**
 * Immutable values keyed by two longs, made on first request and handed out again after: a CFI row is rebuilt for
 * every frame, and interning its rule objects is what keeps that free of allocation. Open addressing; grows up
 * to {@link #MAX_ENTRIES}, past which new values are made fresh each time (only hostile CFI has that many).
 * Not thread-safe, like the context that owns it.
 */
final class Interned<T> {
    static final int MAX_ENTRIES = 1 << 16;

    /** Makes the value for a key. */
    interface Maker<T> {
        T make(long a, long b);
    }

    private final Maker<T> maker;
    private long[] as;
    private long[] bs;
    private Object[] values;
    private int size;

    Interned(Maker<T> maker) {
        this.maker = maker;
        allocate(256); // room for a process's usual rules: growing allocates, which a window should not
    }

    /** The value for {@code (a, b)}: the one made before, else a new one, kept. */
    @SuppressWarnings("unchecked")
    T get(long a, long b) {
        int mask = values.length - 1;
        for (int i = slot(a, b, mask); ; i = (i + 1) & mask) {
            Object v = values[i];
            if (v == null) {
                T made = maker.make(a, b);
                if (size < MAX_ENTRIES) {
                    put(i, a, b, made);
                }
                return made;
            }
            if (as[i] == a && bs[i] == b) {
                return (T) v;
            }
        }
    }

    private void put(int i, long a, long b, Object v) {
        as[i] = a;
        bs[i] = b;
        values[i] = v;
        if (++size * 2 > values.length) {
            long[] oldA = as;
            long[] oldB = bs;
            Object[] old = values;
            allocate(values.length * 2);
            int mask = values.length - 1;
            for (int j = 0; j < old.length; j++) {
                if (old[j] != null) {
                    int k = slot(oldA[j], oldB[j], mask);
                    while (values[k] != null) {
                        k = (k + 1) & mask;
                    }
                    as[k] = oldA[j];
                    bs[k] = oldB[j];
                    values[k] = old[j];
                }
            }
        }
    }

    private void allocate(int capacity) {
        as = new long[capacity];
        bs = new long[capacity];
        values = new Object[capacity];
    }

    private static int slot(long a, long b, int mask) {
        long h = a * 0x9e3779b97f4a7c15L ^ b * 0xc2b2ae3d27d4eb4fL;
        return (int) (h ^ h >>> 29) & mask;
    }
}
