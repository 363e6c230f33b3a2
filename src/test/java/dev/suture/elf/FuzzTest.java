package dev.suture.elf;

import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.suture.cli.Cli;
import dev.suture.testing.Gcc;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Mutated copies of real binaries and objects (bit flips, truncations, overwritten header, section, segment and
 * symbol fields) go through every reader entry point and through {@code suture inspect}: each ends in an
 * {@link ElfFormatException} or a result, never another exception, an OutOfMemoryError or a hang.
 */
class FuzzTest {
    /** Defaults keep the suite fast; -Dsuture.fuzz.mutants=N -Dsuture.fuzz.seed=S for a longer hunt. */
    static final int MUTANTS_PER_SEED = Integer.getInteger("suture.fuzz.mutants", 300);
    static final long SEED = Long.getLong("suture.fuzz.seed", 20261125L);

    @TempDir
    Path dir;

    @Test
    void mutatedFilesEndInFormatErrorsOrResults() throws Exception {
        var seeds = seeds();
        var random = new Random(SEED);
        var failures = new ArrayList<String>();
        int[] outcomes = new int[2]; // [0] read fully, [1] format errors seen
        assertTimeoutPreemptively(Duration.ofMinutes(4L * Math.max(1, MUTANTS_PER_SEED / 300)), () -> {
            int n = 0;
            for (var seed : seeds) {
                for (int i = 0; i < MUTANTS_PER_SEED; i++, n++) {
                    var mutant = mutate(seed.bytes().clone(), random);
                    byte[] bytes = mutant.bytes();
                    String how = mutant.how();
                    String label = seed.name() + " #" + i + " (" + how + ")";
                    try {
                        int errors = walk(ElfFile.parse(label, bytes));
                        outcomes[errors == 0 ? 0 : 1]++;
                    } catch (ElfFormatException e) {
                        outcomes[1]++;
                    } catch (Throwable t) {
                        failures.add(save(label, bytes, t));
                        continue;
                    }
                    if (n % 8 == 0) {
                        String problem = inspect(bytes, n);
                        if (problem != null) {
                            failures.add(save(label, bytes, new AssertionError(problem)));
                        }
                    }
                }
            }
        });
        if (!failures.isEmpty()) {
            fail(failures.size() + " mutants broke the reader:\n" + String.join("\n", failures.subList(0,
                    Math.min(10, failures.size()))));
        }
        // The mutations must really reach both outcomes, or the test proves little.
        assertTrue(outcomes[0] > 50 && outcomes[1] > 50, "read fully: " + outcomes[0] + ", errors: " + outcomes[1]);
    }

    record Seed(String name, byte[] bytes) {}

    private List<Seed> seeds() throws Exception {
        Files.writeString(dir.resolve("v.map"), "V1 { global: f; local: *; };\nV2 { global: g; } V1;\n");
        Files.writeString(dir.resolve("s.c"), """
                #include <stdio.h>
                __thread int t = 1;
                static int s = 2;
                int f(int x) { return x + s + t; }
                int g(int x) { switch (x) { case 0: return 3; case 1: return 5; case 2: return 7; case 3: return 11;
                               case 4: return 13; default: return f(x); } }
                int main(void) { printf("%d\\n", g(4)); return 0; }
                """);
        Gcc.run(dir, "gcc", "-c", "-g", "-O1", "-ffunction-sections", "-fdata-sections", "-o", "s.o", "s.c");
        Gcc.run(dir, "gcc", "-O1", "-o", "s", "s.c");
        Gcc.run(dir, "gcc", "-O1", "-shared", "-fPIC", "-Wl,--version-script=v.map", "-o", "libs.so", "s.c");
        return List.of(new Seed("object", Files.readAllBytes(dir.resolve("s.o"))),
                new Seed("pie", Files.readAllBytes(dir.resolve("s"))),
                new Seed("library", Files.readAllBytes(dir.resolve("libs.so"))),
                new Seed("/bin/ls", Files.readAllBytes(Path.of("/bin/ls"))));
    }

    record Mutant(byte[] bytes, String how) {}

    /** Applies one random mutation and says what it did. */
    static Mutant mutate(byte[] b, Random r) {
        var buf = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        int kind = r.nextInt(10);
        if (kind < 3) {
            int flips = 1 + r.nextInt(8);
            var where = new StringBuilder("bit flips at");
            for (int i = 0; i < flips; i++) {
                // Half the flips land in the first 4 KiB and the section headers, where the structure is.
                int at = r.nextBoolean() ? r.nextInt(Math.min(4096, b.length))
                        : r.nextBoolean() ? b.length - 1 - r.nextInt(Math.min(4096, b.length)) : r.nextInt(b.length);
                b[at] ^= (byte) (1 << r.nextInt(8));
                where.append(' ').append(Integer.toHexString(at));
            }
            return new Mutant(b, where.toString());
        }
        if (kind == 3) {
            int keep = r.nextInt(b.length);
            java.util.Arrays.fill(b, keep, b.length, (byte) 0);
            return new Mutant(b, "zeroed from " + Integer.toHexString(keep));
        }
        long shoff = buf.getLong(40);
        int shnum = Short.toUnsignedInt(buf.getShort(60));
        long phoff = buf.getLong(32);
        int phnum = Short.toUnsignedInt(buf.getShort(56));
        long value = interesting(r, b.length);
        int at;
        int width;
        String what;
        switch (kind) {
            case 4 -> {
                int[][] fields = {{16, 2}, {24, 8}, {32, 8}, {40, 8}, {54, 2}, {56, 2}, {58, 2}, {60, 2}, {62, 2}};
                int[] f = fields[r.nextInt(fields.length)];
                at = f[0];
                width = f[1];
                what = "ELF header field at " + at;
            }
            case 5, 6, 7 -> {
                if (shnum == 0 || shoff <= 0 || shoff + (long) shnum * 64 > b.length) {
                    return truncate(b, r, buf);
                }
                int[][] fields = {{0, 4}, {4, 4}, {8, 8}, {16, 8}, {24, 8}, {32, 8}, {40, 4}, {44, 4}, {48, 8}, {56, 8}};
                int[] f = fields[r.nextInt(fields.length)];
                int index = r.nextInt(shnum);
                at = (int) shoff + index * 64 + f[0];
                width = f[1];
                what = "section " + index + " header field +" + f[0];
            }
            case 8 -> {
                if (phnum == 0 || phoff <= 0 || phoff + (long) phnum * 56 > b.length) {
                    return truncate(b, r, buf);
                }
                int[][] fields = {{0, 4}, {8, 8}, {16, 8}, {32, 8}, {40, 8}};
                int[] f = fields[r.nextInt(fields.length)];
                int index = r.nextInt(phnum);
                at = (int) phoff + index * 56 + f[0];
                width = f[1];
                what = "segment " + index + " field +" + f[0];
            }
            default -> {
                return truncate(b, r, buf);
            }
        }
        switch (width) {
            case 2 -> buf.putShort(at, (short) value);
            case 4 -> buf.putInt(at, (int) value);
            default -> buf.putLong(at, value);
        }
        return new Mutant(b, what + " = 0x" + Long.toHexString(value));
    }

    private static Mutant truncate(byte[] b, Random r, ByteBuffer buf) {
        int keep = r.nextInt(b.length);
        return new Mutant(java.util.Arrays.copyOf(b, keep), "truncated to " + keep + " bytes");
    }

    static long interesting(Random r, int fileSize) {
        return switch (r.nextInt(9)) {
            case 0 -> 0;
            case 1 -> -1;
            case 2 -> 0x7fffffffL;
            case 3 -> 0x80000000L;
            case 4 -> fileSize;
            case 5 -> fileSize - 1 - r.nextInt(64);
            case 6 -> Long.MIN_VALUE;
            case 7 -> r.nextInt(256);
            default -> r.nextLong();
        };
    }

    /** Reads everything the library offers; returns how many format errors were met along the way. */
    static int walk(ElfFile elf) {
        int errors = 0;
        List<Supplier<Object>> steps = List.of(elf::programHeaders, elf::sections, () -> {
            long sum = 0;
            for (var s : elf.sections()) {
                var c = elf.contents(s);
                sum += c.remaining() > 0 ? c.get(c.remaining() - 1) : 0;
            }
            return sum;
        }, () -> names(elf.symbols()), () -> names(elf.dynamicSymbols()), () -> {
            long n = 0;
            for (var rs : elf.relocationSections()) {
                for (var r : rs.relocations()) {
                    n += r.symbol() == null ? 0 : r.symbol().versionedName().length();
                    n += r.typeName().length();
                }
            }
            return n;
        }, elf::dynamic, elf::needed, elf::soname, elf::runpath, elf::interpreter, elf::notes, elf::buildId,
                elf::gnuProperties, elf::debugLink, elf::tls, elf::ehFrame, elf::ehFrameHdr, () -> {
            for (var p : elf.programHeaders()) {
                elf.readAt(p.p_vaddr(), (int) Math.min(64, Math.max(0, p.p_memsz())));
                elf.fileOffsetOf(p.p_vaddr());
            }
            for (var s : elf.dynamicSymbols()) {
                elf.readAt(s.st_value(), (int) Math.min(32, Math.max(0, s.st_size())));
                elf.sectionOf(s);
            }
            return null;
        });
        for (var step : steps) {
            try {
                step.get();
            } catch (ElfFormatException e) {
                errors++;
            }
        }
        return errors;
    }

    private static long names(List<Symbol> symbols) {
        long n = 0;
        for (var s : symbols) {
            n += s.versionedName().length() + s.typeName().length() + s.bindName().length();
        }
        return n;
    }

    /** Runs suture inspect on the mutant in-process; returns a problem, or null if it ended as it should. */
    private String inspect(byte[] bytes, int n) throws Exception {
        Path f = dir.resolve("mutant");
        Files.write(f, bytes);
        for (String[] args : new String[][] {{"--symbols", "--relocs"}, {"--json", "--symbols", "--relocs"}}) {
            var all = new ArrayList<>(List.of("inspect"));
            all.addAll(List.of(args));
            all.add(f.toString());
            var r = Cli.run(all.toArray(String[]::new));
            if (r.code() != 0 && !(r.code() == 2 && r.err().contains("not a valid ELF file"))) {
                return "inspect " + String.join(" ", args) + " exited " + r.code() + ": " + r.err();
            }
        }
        return null;
    }

    private String save(String label, byte[] bytes, Throwable t) throws Exception {
        Path failures = Path.of("target", "fuzz-failures");
        Files.createDirectories(failures);
        Path f = failures.resolve(label.replaceAll("[^A-Za-z0-9#]+", "_"));
        Files.write(f, bytes);
        var sw = new StringWriter();
        t.printStackTrace(new PrintWriter(sw));
        return label + " -> " + f + ": " + sw.toString().lines().limit(6).reduce((a, c) -> a + "\n   " + c).orElse("");
    }
}
