package dev.suture.bench;

import dev.suture.elf.ElfFile;
import java.nio.file.Path;

/**
 * How long reading all of a library's symbols and relocations takes: the first read in a fresh JVM (what a
 * command pays) and the steady state after warm-up. Prints numbers; asserts nothing.
 *
 * <p>Run: {@code java -cp target/classes:target/test-classes dev.suture.bench.ElfReadBench [FILE] [ROUNDS]}
 */
public final class ElfReadBench {
    public static void main(String[] args) {
        Path file = Path.of(args.length > 0 ? args[0] : "/lib/x86_64-linux-gnu/libc.so.6");
        int rounds = args.length > 1 ? Integer.parseInt(args[1]) : 200;
        long t0 = System.nanoTime();
        long count = readAll(file);
        long first = System.nanoTime() - t0;
        System.out.printf("%s: %d symbols + relocations%n", file, count);
        System.out.printf("first read (cold JVM):  %.2f ms%n", first / 1e6);
        long best = Long.MAX_VALUE;
        long total = 0;
        for (int i = 0; i < rounds; i++) {
            long s = System.nanoTime();
            readAll(file);
            long d = System.nanoTime() - s;
            best = Math.min(best, d);
            total += d;
        }
        System.out.printf("warm, %d rounds:        mean %.3f ms, best %.3f ms%n", rounds, total / 1e6 / rounds, best / 1e6);
    }

    private static long readAll(Path file) {
        try (var elf = ElfFile.open(file)) {
            long n = elf.symbols().size() + elf.dynamicSymbols().size();
            for (var rs : elf.relocationSections()) {
                n += rs.relocations().size();
            }
            return n;
        }
    }
}
