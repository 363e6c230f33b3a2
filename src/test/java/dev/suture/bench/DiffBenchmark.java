package dev.suture.bench;

import dev.suture.generate.DiffRequest;
import dev.suture.generate.Differ;
import dev.suture.testing.Gcc;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The diff stage alone (objects in, patch out) on two builds of a generated 200-object C project, each object
 * with a dozen functions, static data, string literals and static locals; the patched build changes a few
 * functions in a few files. Prints the first (cold JVM) and the best of the following runs. Goal: under 2 s.
 *
 * <p>Run: {@code ./run-tests -o -q -DskipTests && java -cp target/classes:target/test-classes:$(cat cp.txt)
 * dev.suture.bench.DiffBenchmark [objects]} — or see bench/README in the report.
 */
public final class DiffBenchmark {
    public static void main(String[] args) throws Exception {
        // An existing project directory (from an earlier run) skips the slow part, compiling.
        boolean reuse = args.length > 0 && Files.isDirectory(Path.of(args[0]));
        int objects = reuse ? 200 : args.length > 0 ? Integer.parseInt(args[0]) : 200;
        Path dir = reuse ? Path.of(args[0]) : Files.createTempDirectory("suture-diff-bench");
        var orig = new ArrayList<Path>();
        var patched = new ArrayList<Path>();
        if (reuse) {
            try (var files = Files.list(dir.resolve("orig"))) {
                objects = (int) files.filter(f -> f.toString().endsWith(".o")).count();
            }
            for (int i = 0; i < objects; i++) {
                orig.add(dir.resolve("orig/m" + i + ".o"));
                patched.add(dir.resolve("patched/m" + i + ".o"));
            }
        }
        for (String build : reuse ? new String[0] : new String[] {"orig", "patched"}) {
            Path d = Files.createDirectories(dir.resolve(build));
            long t = System.nanoTime();
            for (int first = 0; first < objects; first += 20) {
                // A batch per gcc run keeps each run well inside Gcc.run's time bound on a busy machine.
                var cmd = new ArrayList<>(List.of("gcc", "-O2", "-g", "-c", "-ffunction-sections", "-fdata-sections"));
                for (int i = first; i < Math.min(objects, first + 20); i++) {
                    Files.writeString(d.resolve("m" + i + ".c"), source(i, build.equals("patched")));
                    cmd.add("m" + i + ".c");
                    (build.equals("orig") ? orig : patched).add(d.resolve("m" + i + ".o"));
                }
                Gcc.run(d, cmd);
            }
            System.out.printf("compiled %d objects (%s) in %.1f s%n", objects, build, (System.nanoTime() - t) / 1e9);
        }
        if (!reuse) {
            link(dir, orig);
        }
        benchmark(dir, orig, patched);
    }

    private static void link(Path dir, List<Path> orig) throws Exception {
        Files.writeString(dir.resolve("main.c"), "int m0_f0(int);\nint main(int c, char **v) { return m0_f0(c); }\n");
        var link = new ArrayList<>(List.of("gcc", "-no-pie", "-o", "target", "main.c"));
        orig.forEach(p -> link.add(p.toString()));
        Gcc.run(dir, link);
    }

    private static void benchmark(Path dir, List<Path> orig, List<Path> patched) throws Exception {
        int objects = orig.size();
        long size = 0;
        for (Path p : orig) {
            size += Files.size(p);
        }
        System.out.printf("project: %d objects, %.1f MB of objects per build%n", objects, size / 1e6);
        var request = DiffRequest.ofFiles(dir.resolve("target"), orig, patched, "bench", false);
        var os = (com.sun.management.OperatingSystemMXBean)
                java.lang.management.ManagementFactory.getOperatingSystemMXBean();
        double best = Double.MAX_VALUE, bestCpu = Double.MAX_VALUE;
        for (int run = 0; run < 6; run++) {
            long t = System.nanoTime();
            long cpu = os.getProcessCpuTime();
            var result = Differ.diff(request, dir.resolve("bench.suture"));
            double s = (System.nanoTime() - t) / 1e9;
            double c = (os.getProcessCpuTime() - cpu) / 1e9;
            if (run == 0) {
                System.out.printf("diff (first run, cold JVM): %.3f s wall, %.3f s CPU -> replaced %s, new %s%n",
                        s, c, result.replaced(), result.added());
            } else {
                best = Math.min(best, s);
                bestCpu = Math.min(bestCpu, c);
            }
        }
        System.out.printf("diff (best of 5 warm runs): %.3f s wall, %.3f s CPU  (goal < 2 s)%n", best, bestCpu);
        System.out.printf("machine load average while measuring: %.1f on %d cores%n", os.getSystemLoadAverage(),
                os.getAvailableProcessors());
        System.out.println("project left in " + dir + " (for ./suture diff timing); remove it when done");
    }

    /** One generated source file; the patched build changes functions in every 50th file. */
    private static String source(int i, boolean patched) {
        var sb = new StringBuilder("#include <stdio.h>\n#include <string.h>\n");
        sb.append("static int state_").append(i).append(";\n");
        sb.append("int table_").append(i).append("[8] = {1, 2, 3, 4, 5, 6, 7, 8};\n");
        sb.append("static const char *names_").append(i).append("[] = {\"alpha\", \"beta\", \"gamma\"};\n");
        for (int f = 0; f < 12; f++) {
            String name = "m" + i + "_f" + f;
            boolean change = patched && i % 50 == 0 && f == 3;
            sb.append("__attribute__((noinline)) int ").append(name).append("(int x) {\n");
            sb.append("  static int calls;\n  calls++;\n");
            sb.append("  state_").append(i).append(" += x * ").append(f + 1).append(";\n");
            sb.append("  if (x > ").append(100 + f).append(") printf(\"").append(name)
                    .append(change ? " big (patched) %d\\n" : " big %d\\n").append("\", x);\n");
            sb.append("  return table_").append(i).append("[x & 7] + (int) strlen(names_").append(i)
                    .append("[x % 3]) + calls").append(f > 0 ? " + m" + i + "_f" + (f - 1) + "(x - 1)" : "")
                    .append(";\n}\n");
        }
        return sb.toString();
    }
}
