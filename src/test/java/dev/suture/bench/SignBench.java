package dev.suture.bench;

import dev.suture.generate.DiffRequest;
import dev.suture.generate.Differ;
import dev.suture.patch.Keys;
import dev.suture.patch.PatchFile;
import dev.suture.testing.Gcc;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Supplier;

/**
 * What signing costs: writing a patch signed vs unsigned, and reading it with the signature check vs without, for
 * a one-function patch and one of N functions (made by the real Differ from gcc objects). Warm numbers, after
 * warm-up rounds. Prints numbers; asserts nothing.
 *
 * <p>Run: {@code bench/sign.sh [FUNCTIONS] [ROUNDS]}
 */
public final class SignBench {
    public static void main(String[] args) throws Exception {
        int functions = args.length > 0 ? Integer.parseInt(args[0]) : 200;
        int rounds = args.length > 1 ? Integer.parseInt(args[1]) : 300;
        Path dir = Files.createTempDirectory("suture-signbench");
        try {
            Keys.writePair(dir, "bench");
            var key = Keys.readSigningKey(dir.resolve("bench.key"));
            for (int n : new int[] {1, functions}) {
                Path unsigned = patch(dir.resolve("n" + n), n);
                var patch = PatchFile.read(unsigned);
                byte[] plain = patch.toBytes();
                byte[] signed = patch.toBytes(key);
                System.out.printf("patch of %d function(s): %d bytes unsigned, %d signed%n", n, plain.length,
                        signed.length);
                double write = time(rounds, () -> patch.toBytes());
                double sign = time(rounds, () -> patch.toBytes(key));
                double read = time(rounds, () -> PatchFile.parse("plain", plain));
                double verify = time(rounds, () -> PatchFile.parse("signed", signed));
                System.out.printf("  write: %.3f ms unsigned, %.3f ms signed (signing adds %.3f ms)%n", write, sign,
                        sign - write);
                System.out.printf("  read:  %.3f ms unsigned, %.3f ms signed (verifying adds %.3f ms)%n", read,
                        verify, verify - read);
            }
        } finally {
            try (var walk = Files.walk(dir)) {
                walk.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    /** Median of {@code rounds} timed calls after as many warm-up calls, in ms. */
    private static double time(int rounds, Supplier<Object> work) {
        for (int i = 0; i < rounds; i++) {
            work.get();
        }
        long[] t = new long[rounds];
        for (int i = 0; i < rounds; i++) {
            long s = System.nanoTime();
            work.get();
            t[i] = System.nanoTime() - s;
        }
        java.util.Arrays.sort(t);
        return t[rounds / 2] / 1e6;
    }

    /** A patch replacing {@code n} functions of a generated program, made by the Differ from gcc objects. */
    private static Path patch(Path dir, int n) throws Exception {
        var src = new StringBuilder("#include <stdio.h>\n");
        for (int i = 0; i < n; i++) {
            src.append("__attribute__((noinline)) int f").append(i).append("(int x) { printf(\"f").append(i)
                    .append(" %d\\n\", x); return x + ").append(i).append("; }\n");
        }
        src.append("int main(void) { int s = 0;\n");
        for (int i = 0; i < n; i++) {
            src.append("s += f").append(i).append("(s);\n");
        }
        src.append("return s & 1; }\n");
        String original = src.toString();
        String patched = original.replace("(\"f", "(\"g");
        for (String variant : new String[] {"orig", "patched"}) {
            Path d = Files.createDirectories(dir.resolve(variant));
            Files.writeString(d.resolve("p.c"), variant.equals("orig") ? original : patched);
            Gcc.run(d, "gcc", "-O2", "-c", "-ffunction-sections", "-fdata-sections", "-o", "p.o", "p.c");
        }
        Gcc.run(dir, "gcc", "-no-pie", "-o", "p", "orig/p.o");
        Path out = dir.resolve("p.suture");
        Differ.diff(DiffRequest.ofFiles(dir.resolve("p"), List.of(dir.resolve("orig/p.o")),
                List.of(dir.resolve("patched/p.o")), "bench", false), out);
        return out;
    }
}
