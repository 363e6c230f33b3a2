package dev.suture.elf;

import java.util.function.Supplier;

/** A value computed on first use and then kept; safe to share between threads. */
final class Lazy<T> {
    private Supplier<T> supplier;
    private volatile T value;

    Lazy(Supplier<T> supplier) {
        this.supplier = supplier;
    }

    T get() {
        T v = value;
        if (v == null) {
            synchronized (this) {
                v = value;
                if (v == null) {
                    v = supplier.get();
                    value = v;
                    supplier = null;
                }
            }
        }
        return v;
    }
}
