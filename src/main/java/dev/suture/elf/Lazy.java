package dev.suture.elf;

/**
 * A value computed on first use and then kept; safe to share between threads. Subclasses say how to compute it
 * (anonymous classes rather than lambdas: a command's cold start should not pay for lambda bootstrapping).
 */
abstract class Lazy<T> {
    private volatile T value;

    abstract T compute();

    final T get() {
        T v = value;
        if (v == null) {
            synchronized (this) {
                v = value;
                if (v == null) {
                    v = compute();
                    value = v;
                }
            }
        }
        return v;
    }
}
