package dev.suture.bench;

import dev.suture.generate.SourceBuild;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Costs of {@code suture build} on this machine: the compiler wrapper's overhead per compilation and per link
 * (the same commands run with the real gcc and through the wrapper), and a whole {@code suture build} of a
 * generated make project of N files. Run with bench/build.sh [FILES] [ROUNDS].
 */
public final class BuildBench {
    private BuildBench() {}

    public static void main(String[] args) throws Exception {
        int files = args.length > 0 ? Integer.parseInt(args[0]) : 40;
        int rounds = args.length > 1 ? Integer.parseInt(args[1]) : 3;
        Path dir = Files.createTempDirectory("suture-build-bench");
        try {
            Path src = project(dir.resolve("src"), files);
            Path diff = Files.writeString(dir.resolve("fix.diff"), """
                    --- a/f0.c
                    +++ b/f0.c
                    @@ -1,3 +1,3 @@
                     int f0(int x) {
                    -    int s = 0; for (int i = 0; i < x; i++) s += i * 1 + (s >> 3); return s;
                    +    int s = 1; for (int i = 0; i < x; i++) s += i * 1 + (s >> 3); return s;
                     }
                    """);
            System.out.printf(Locale.ROOT, "machine: %d cores, load %s%n", Runtime.getRuntime().availableProcessors(),
                    Files.readString(Path.of("/proc/loadavg")).split(" ")[0]);

            // The same make, once with the real tools and once through suture build (which runs it twice).
            var plain = new ArrayList<Long>();
            for (int r = 0; r < rounds; r++) {
                Path copy = dir.resolve("plain" + r);
                run(List.of("cp", "-a", src.toString(), copy.toString()), dir);
                long t0 = System.nanoTime();
                run(List.of("make", "-s"), copy);
                plain.add(System.nanoTime() - t0);
            }
            var total = new ArrayList<Long>();
            var build = new ArrayList<Long>();
            var diffs = new ArrayList<Long>();
            for (int r = 0; r < rounds; r++) {
                var request = new SourceBuild.Request(src, List.of(diff), 1, "make -s",
                        List.of(SourceBuild.Target.parse("prog")), dir.resolve("out" + r), false, false, true,
                        Duration.ofMinutes(10));
                long t0 = System.nanoTime();
                var result = SourceBuild.run(request);
                total.add(System.nanoTime() - t0);
                build.add(result.buildTime().toNanos());
                diffs.add(result.diffTime().toNanos());
                if (!result.targets().getFirst().diff().replaced().equals(List.of("f0"))) {
                    throw new AssertionError("unexpected patch: " + result.targets());
                }
            }
            System.out.printf(Locale.ROOT, "project: %d C files + static library + executable, median of %d%n",
                    files, rounds);
            System.out.printf(Locale.ROOT, "  plain make (real gcc):              %8.1f ms%n", median(plain));
            System.out.printf(Locale.ROOT, "  suture build, both trees serially:   %8.1f ms (%.1f ms per tree, %.2fx plain)%n",
                    median(build), median(build) / 2, median(build) / 2 / median(plain));
            System.out.printf(Locale.ROOT, "  diff stage:                         %8.1f ms%n", median(diffs));
            System.out.printf(Locale.ROOT, "  suture build total (--serial):      %8.1f ms%n", median(total));
        } finally {
            run(List.of("rm", "-rf", dir.toString()), Path.of("/"));
        }
    }

    /**
     * N files of one function each (a loop, so even f0 is longer than the 5-byte jump a patch needs), archived into a static library, and a program calling them all. */
    private static Path project(Path dir, int files) throws IOException {
        Files.createDirectories(dir);
        var objects = new StringBuilder();
        var calls = new StringBuilder();
        var decls = new StringBuilder();
        for (int i = 0; i < files; i++) {
            Files.writeString(dir.resolve("f" + i + ".c"), "int f" + i + "(int x) {\n"
                    + "    int s = 0; for (int i = 0; i < x; i++) s += i * " + (i + 1) + " + (s >> 3); return s;\n}\n");
            objects.append(" f").append(i).append(".o");
            decls.append("int f").append(i).append("(int);\n");
            calls.append("    s += f").append(i).append("(argc);\n");
        }
        Files.writeString(dir.resolve("main.c"), decls + "int main(int argc, char **argv) {\n    int s = 0;\n"
                + calls + "    return s & 1;\n}\n");
        Files.writeString(dir.resolve("Makefile"), "CFLAGS = -O2 -g\n"
                + "prog: main.o libf.a\n\t$(CC) -o $@ main.o libf.a\n"
                + "libf.a:" + objects + "\n\t$(AR) rcs $@ $^\n");
        return dir;
    }

    private static void run(List<String> command, Path dir) throws IOException, InterruptedException {
        var p = new ProcessBuilder(command).directory(dir.toFile()).inheritIO().start();
        if (!p.waitFor(10, java.util.concurrent.TimeUnit.MINUTES)) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
            throw new IOException("timed out: " + command);
        }
        if (p.exitValue() != 0) {
            throw new IOException("failed: " + command);
        }
    }

    private static double median(List<Long> nanos) {
        var sorted = nanos.stream().sorted().toList();
        return sorted.get(sorted.size() / 2) / 1e6;
    }
}
