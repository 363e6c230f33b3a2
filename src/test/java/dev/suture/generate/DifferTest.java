package dev.suture.generate;

import static dev.suture.generate.TwoBuilds.addedNames;
import static dev.suture.generate.TwoBuilds.partNames;
import static dev.suture.generate.TwoBuilds.referencedFrom;
import static dev.suture.generate.TwoBuilds.replacedNames;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.SutureException;
import dev.suture.elf.ElfConstants;
import dev.suture.patch.PatchFile;
import dev.suture.patch.PatchSymbol;
import dev.suture.testing.Gcc;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The diff engine on real gcc/g++ builds: what is replaced, what is added, what is refused. */
class DifferTest {
    @TempDir
    Path dir;

    private static final String GREET = """
            #include <stdio.h>
            int counter = 41;
            __attribute__((noinline)) void greet(const char *who) { printf("hello %s\\n", who); }
            __attribute__((noinline)) int untouched(int x) { return x * 7 + counter; }
            int main(void) { greet("world"); return untouched(1) == 0; }
            """;

    @Test
    void changedStringLiteralReplacesOnlyItsFunction() throws Exception {
        var b = new TwoBuilds(dir).file("greet.c", GREET, "hello %s", "goodbye %s");
        PatchFile p = b.diff();
        assertEquals(List.of("greet"), replacedNames(p));
        assertEquals(List.of(), addedNames(p));
        var greet = p.replaced().getFirst();
        assertEquals(b.nm("greet"), greet.targetAddress());
        String strings = p.sections().stream().filter(s -> s.name().startsWith(".rodata"))
                .map(s -> new String(s.bytes())).reduce("", String::concat);
        assertTrue(strings.contains("goodbye %s"), strings);
        assertTrue(p.externals().stream().anyMatch(e -> e.name().equals("printf")
                && "GLIBC_2.2.5".equals(e.version())), p.externals().toString());
    }

    @Test
    void movedCodeAloneIsNoChange() throws Exception {
        // A new function before the others shifts every offset, string label and static-local number.
        String src = """
                #include <stdio.h>
                static int calls;
                __attribute__((noinline)) int first(int x) { static int seen; seen += x; calls++; return seen; }
                __attribute__((noinline)) int second(int x) { static int seen; printf("second\\n"); return seen += x * 2; }
                int main(void) { return first(1) + second(2); }
                """;
        var b = new TwoBuilds(dir).file("m.c", src,
                "static int calls;", "static int calls;\n__attribute__((noinline)) int zeroth(void) { static int z; printf(\"zeroth\\n\"); return z++; }",
                "return seen += x * 2;", "return seen += x * 3;");
        PatchFile p = b.diff();
        assertEquals(List.of("second"), replacedNames(p));
    }

    @Test
    void newFunctionCalledByChangedOneIsAdded() throws Exception {
        String src = """
                volatile int sink;
                __attribute__((noinline)) int compute(int x) { sink = x; return x + 1; }
                int main(int argc, char **argv) { return compute(argc); }
                """;
        var b = new TwoBuilds(dir).file("c.c", src,
                "__attribute__((noinline)) int compute(int x) { sink = x; return x + 1; }",
                "__attribute__((noinline)) static int twice(int x) { sink = x; return x * 2 + (x >> 3); }\n"
                        + "__attribute__((noinline)) int compute(int x) { sink = x; return twice(x) + 1; }");
        PatchFile p = b.diff();
        assertEquals(List.of("compute"), replacedNames(p));
        assertNotNull(p);
        assertEquals(List.of("twice"), addedNames(p));
        var twice = p.added().getFirst().symbol();
        assertTrue(referencedFrom(p, ".text.compute").contains(twice), "compute calls the patch's twice");
    }

    @Test
    void newGlobalIsAddedWithItsInitialValue() throws Exception {
        String src = """
                volatile int sink;
                __attribute__((noinline)) int work(int x) { sink = x; return x * 3; }
                int main(int argc, char **argv) { return work(argc); }
                """;
        var b = new TwoBuilds(dir).file("g.c", src,
                "__attribute__((noinline)) int work(int x) { sink = x; return x * 3; }",
                "int hits = 1234;\n__attribute__((noinline)) int work(int x) { hits++; return x * 3 + hits; }");
        PatchFile p = b.diff();
        assertEquals(List.of("work"), replacedNames(p));
        assertEquals(List.of("hits"), addedNames(p));
        var hits = p.added().getFirst().symbol();
        var section = p.section(hits.section()).orElseThrow();
        assertEquals(1234, ByteBuffer.wrap(section.bytes()).order(ByteOrder.LITTLE_ENDIAN).getInt((int) hits.value()));
    }

    @Test
    void changedStaticLocalKeepsTheOriginalVariable() throws Exception {
        String src = """
                #include <stdio.h>
                __attribute__((noinline)) int tick(void) { static int count; return ++count; }
                __attribute__((noinline)) int tock(void) { static int count = 5; return count += 2; }
                int main(void) { printf("%d %d\\n", tick(), tock()); return 0; }
                """;
        // The patched tick uses a second static local, which renumbers count.N in the patched object.
        var b = new TwoBuilds(dir).file("s.c", src,
                "static int count; return ++count;",
                "static int calls; static int count; calls++; return count += 10;");
        PatchFile p = b.build().diff();
        assertEquals(List.of("tick"), replacedNames(p));
        assertEquals(List.of("calls.0"), addedNames(p).stream().map(n -> n.replaceAll("\\.\\d+$", ".0")).toList());
        var refs = referencedFrom(p, ".text.tick");
        long tickCount = tickCountAddress(b);
        assertTrue(refs.stream().anyMatch(s -> s instanceof PatchSymbol.TargetRelative t
                && t.name().startsWith("count.") && t.value() == tickCount), refs.toString());
    }

    /** The address of tick's count in the deployed binary: the count.N variable tick's code refers to. */
    private long tickCountAddress(TwoBuilds b) throws Exception {
        String dis = Gcc.run(dir, "objdump", "-d", "--no-show-raw-insn", b.target.toString());
        int at = dis.indexOf("<tick>:");
        String body = dis.substring(at, dis.indexOf("\n\n", at));
        var m = java.util.regex.Pattern.compile("# ([0-9a-f]+) <").matcher(body);
        assertTrue(m.find(), body);
        return Long.parseLong(m.group(1), 16);
    }

    @Test
    void callersOfAChangedInlinedHelperAreReplaced() throws Exception {
        String src = """
                static inline int scale(int x) { return x * 3; }
                __attribute__((noinline)) int left(int x) { return scale(x) + 1; }
                __attribute__((noinline)) int right(int x) { return scale(x) - 1; }
                __attribute__((noinline)) int other(int x) { return x ^ 5; }
                int main(int argc, char **argv) { return left(argc) + right(argc) + other(argc); }
                """;
        var b = new TwoBuilds(dir).file("i.c", src, "return x * 3;", "return x * 5;");
        PatchFile p = b.diff();
        assertTrue(replacedNames(p).containsAll(List.of("left", "right")), replacedNames(p).toString());
        assertFalse(replacedNames(p).contains("other"));
    }

    @Test
    void coldSplitGoesWithItsParent() throws Exception {
        String src = """
                #include <stdio.h>
                __attribute__((cold, noinline)) void report(const char *m, int v) { fprintf(stderr, "%s %d\\n", m, v); }
                int process(int *a, int n) {
                  int s = 0;
                  for (int i = 0; i < n; i++) {
                    if (a[i] < 0) { report("negative", a[i]); printf("fixing %d\\n", i); a[i] = -a[i]; }
                    s += a[i] * 7;
                  }
                  return s;
                }
                int main(void) { int a[3] = {1, -2, 3}; return process(a, 3) == 0; }
                """;
        var b = new TwoBuilds(dir).file("cold.c", src, "fixing %d", "repairing %d");
        PatchFile p = b.diff();
        assertEquals(List.of("process"), replacedNames(p));
        assertEquals(List.of("process.cold"), partNames(p));
        assertTrue(p.sections().stream().anyMatch(s -> s.name().equals(".text.unlikely.process")));
        assertTrue(p.sections().stream().anyMatch(s -> s.name().equals(".text.process")));
        // The cold part jumps back into the new process, not the old one.
        assertTrue(referencedFrom(p, ".text.unlikely.process").stream()
                .anyMatch(s -> s instanceof PatchSymbol.Defined d && d.name().equals("process")));
    }

    @Test
    void staticFunctionsWithTheSameNameInTwoFilesAreTellApart() throws Exception {
        String a = """
                __attribute__((noinline)) static int helper(int x) { return x + 100; }
                __attribute__((noinline)) int use_a(int x) { return helper(x) * 2; }
                """;
        String bsrc = """
                __attribute__((noinline)) static int helper(int x) { return x + 200; }
                __attribute__((noinline)) int use_b(int x) { return helper(x) * 3; }
                int use_a(int);
                int main(int argc, char **argv) { return use_a(argc) + use_b(argc); }
                """;
        var b = new TwoBuilds(dir).file("a.c", a, "return helper(x) * 2;", "return helper(x) * 4;")
                .file("b.c", bsrc, "return x + 200;", "return x + 201;");
        PatchFile p = b.build().diff();
        assertEquals(List.of("helper", "use_a"), replacedNames(p));
        var helper = p.replaced().stream().filter(r -> r.symbol().equals("helper")).findFirst().orElseThrow();
        String syms = Gcc.run(dir, "readelf", "-sW", b.target.toString());
        long aHelper = -1, bHelper = -1;
        String file = "";
        for (String line : syms.split("\n")) {
            var f = line.trim().split("\\s+");
            if (f.length >= 8 && f[3].equals("FILE")) {
                file = f[7];
            } else if (f.length >= 8 && f[7].equals("helper")) {
                if (file.equals("a.c")) aHelper = Long.parseLong(f[1], 16);
                if (file.equals("b.c")) bHelper = Long.parseLong(f[1], 16);
            }
        }
        assertEquals(bHelper, helper.targetAddress(), "b.c's helper is the one replaced");
        long finalAHelper = aHelper;
        assertTrue(referencedFrom(p, ".text.use_a").stream().anyMatch(s -> s instanceof PatchSymbol.TargetRelative t
                && t.name().equals("helper") && t.value() == finalAHelper), "use_a calls a.c's unchanged helper");
    }

    @Test
    void recursionStaysInTheNewCode() throws Exception {
        String src = """
                __attribute__((noinline)) long fact(long n) { return n <= 1 ? 1 : n * fact(n - 1); }
                int main(int argc, char **argv) { return (int) fact(argc); }
                """;
        var b = new TwoBuilds(dir).file("r.c", src, "n <= 1 ? 1", "n <= 2 ? n").flags("-O1");
        PatchFile p = b.diff();
        assertEquals(List.of("fact"), replacedNames(p));
        var refs = referencedFrom(p, ".text.fact");
        assertTrue(refs.stream().anyMatch(s -> s instanceof PatchSymbol.Defined d && d.name().equals("fact")),
                "the recursive call goes to the new fact: " + refs);
    }

    @Test
    void addressOfAReplacedFunctionStaysTheOriginalAddress() throws Exception {
        String src = """
                #include <stdio.h>
                typedef int (*handler_t)(int);
                handler_t registered;
                volatile int sink;
                __attribute__((noinline)) int on_event(int x) { sink = x; return x + 1; }
                __attribute__((noinline)) int dispatch(int x) { if (registered == on_event) return registered(x); return on_event(x) + 1; }
                int main(int argc, char **argv) { registered = on_event; printf("%d\\n", dispatch(argc)); return 0; }
                """;
        var b = new TwoBuilds(dir).file("h.c", src, "return x + 1; }", "return x + 2; }",
                "return on_event(x) + 1;", "return on_event(x) + 3;");
        PatchFile p = b.diff();
        assertEquals(List.of("dispatch", "on_event"), replacedNames(p));
        long original = b.nm("on_event");
        var refs = referencedFrom(p, ".text.dispatch");
        assertTrue(refs.stream().anyMatch(s -> s instanceof PatchSymbol.TargetRelative t
                && t.name().equals("on_event") && t.value() == original), "comparison uses the old address: " + refs);
    }

    @Test
    void tlsInAnExecutableIsResolvedToThreadPointerOffsets() throws Exception {
        String src = """
                #include <stdio.h>
                __thread int tls_value = 3;
                extern __thread long tls_other;
                __attribute__((noinline)) int say(void) { tls_value = 666; tls_other += 1; printf("%d\\n", tls_value); return 0; }
                int main(void) { return say(); }
                """;
        String other = "__thread long tls_other = 7;\n";
        var b = new TwoBuilds(dir).file("t.c", src, "tls_value = 666;", "tls_value = 666666;")
                .file("o.c", other).flags("-O0");
        PatchFile p = b.diff();
        assertEquals(List.of("say"), replacedNames(p));
        var counts = p.relocationCounts();
        assertFalse(counts.containsKey("R_X86_64_TPOFF32"), counts.toString());
        assertFalse(counts.containsKey("R_X86_64_GOTTPOFF"), counts.toString());
        // The local-exec store carries the same %fs offset the deployed code uses.
        String deployed = Gcc.run(dir, "objdump", "-d", b.target.toString());
        String patch = Gcc.run(dir, "objdump", "-d", b.result.patchFile().toString());
        var fs = java.util.regex.Pattern.compile("movl\\s+\\$0x[0-9a-f]+,%fs:(0x[0-9a-f]+)");
        var dm = fs.matcher(deployed.substring(deployed.indexOf("<say>:")));
        var pm = fs.matcher(patch);
        assertTrue(dm.find() && pm.find(), patch);
        assertEquals(dm.group(1), pm.group(1));
        assertTrue(p.sections().stream().anyMatch(s -> s.name().equals(".rodata.suture.tpoff")),
                "the initial-exec access to tls_other reads its offset from the patch");
    }

    @Test
    void tlsInASharedLibraryStaysARelocation() throws Exception {
        String src = """
                __thread int lib_tls;
                __attribute__((noinline)) int lib_bump(int x) { lib_tls += x; return lib_tls; }
                """;
        var b = new TwoBuilds(dir).file("lib.c", src, "lib_tls += x;", "lib_tls += 2 * x;").link("shared");
        PatchFile p = b.diff();
        assertEquals(List.of("lib_bump"), replacedNames(p));
        assertTrue(p.relocationCounts().containsKey("R_X86_64_TLSGD"), p.relocationCounts().toString());
        assertTrue(p.targetRelative().stream().anyMatch(t -> t.name().equals("lib_tls")
                && t.type() == ElfConstants.STT_TLS));
        assertTrue(p.externals().stream().anyMatch(e -> e.name().equals("__tls_get_addr")));
        assertEquals(ElfConstants.ET_DYN, p.info().targetType());
    }

    @Test
    void newLibcCallStaysAnUnversionedExternal() throws Exception {
        String src = """
                #include <stdio.h>
                #include <string.h>
                __attribute__((noinline)) int measure(const char *s) { printf("%s\\n", s); return 0; }
                int main(void) { return measure("abc"); }
                """;
        var b = new TwoBuilds(dir).file("l.c", src, "return 0; }", "return (int) strlen(s) + (int) strspn(s, \"a\"); }");
        PatchFile p = b.diff();
        assertEquals(List.of("measure"), replacedNames(p));
        var strspn = p.externals().stream().filter(e -> e.name().equals("strspn")).findFirst().orElseThrow();
        assertEquals(null, strspn.version(), "the binary never imported strspn: no version known");
    }

    @Test
    void changedConstDataIsRefused() throws Exception {
        String src = """
                static const int table[4] = {1, 2, 3, 4};
                __attribute__((noinline)) int lookup(int i) { return table[i & 3]; }
                int main(int argc, char **argv) { return lookup(argc); }
                """;
        var b = new TwoBuilds(dir).file("k.c", src, "{1, 2, 3, 4}", "{1, 2, 3, 5}");
        var e = assertThrows(DiffRefusedException.class, b::diff);
        assertEquals(SutureException.Kind.DOES_NOT_FIT, e.kind());
        assertTrue(e.getMessage().contains("table"), e.getMessage());
        assertTrue(e.getMessage().contains("initial value"), e.getMessage());
    }

    @Test
    void cxxFunctionWithAMangledName() throws Exception {
        String src = """
                #include <cstdio>
                namespace shapes {
                struct Box { int w, h; __attribute__((noinline)) int area() const; };
                int Box::area() const { return w * h; }
                }
                int main() { shapes::Box b{3, 4}; std::printf("%d\\n", b.area()); return 0; }
                """;
        var b = new TwoBuilds(dir).cxx().file("box.cpp", src, "return w * h;", "return w * h + 1;");
        PatchFile p = b.diff();
        assertEquals(List.of("_ZNK6shapes3Box4areaEv"), replacedNames(p));
    }

    @Test
    void functionShorterThanAJumpIsRefused() throws Exception {
        String src = """
                __attribute__((noinline)) int inc(int x) { return x + 1; }
                int main(int argc, char **argv) { return inc(argc); }
                """;
        var b = new TwoBuilds(dir).file("short.c", src, "x + 1", "x + 2");
        var e = assertThrows(DiffRefusedException.class, b::diff);
        assertTrue(e.getMessage().contains("inc") && e.getMessage().contains("too short"), e.getMessage());
    }

    @Test
    void ambiguousStaticIsAnErrorListingTheCandidates() throws Exception {
        // Two util.c in two directories, each with an identical static helper: STT_FILE blocks cannot tell them
        // apart, and neither can their bytes; objects given to suture diff carry no link order.
        String util = """
                volatile int sink;
                __attribute__((noinline)) static int helper(int x) { sink = x; return x + 1; }
                __attribute__((noinline)) int use_%s(int x) { sink = 2; return helper(x) * 2; }
                """;
        String main = "int use_x(int); int use_y(int);\nint main(int c, char **v) { return use_x(c) + use_y(c); }\n";
        var b = new TwoBuilds(dir)
                .file("x/util.c", util.formatted("x").replace("volatile int sink;", "extern volatile int sink;"),
                        "sink = 2; return helper(x) * 2;", "sink = 3; return helper(x) * 2;")
                .file("y/util.c", util.formatted("y"))
                .file("main.c", main);
        var e = assertThrows(DiffRefusedException.class, b::diff);
        assertTrue(e.getMessage().contains("static symbol helper of ") && e.getMessage().contains("cannot be told apart")
                && e.getMessage().contains("link order is not known") && e.getMessage().contains("suture build"),
                e.getMessage());
        assertEquals(2, e.getMessage().split(" at 0x", -1).length - 1, e.getMessage());
    }

    @Test
    void pieTargetIsLoadBiasRelative() throws Exception {
        var b = new TwoBuilds(dir).file("greet.c", GREET, "hello %s", "goodbye %s").link("pie");
        PatchFile p = b.diff();
        assertEquals(List.of("greet"), replacedNames(p));
        assertEquals(ElfConstants.ET_DYN, p.info().targetType());
        assertTrue(p.info().hasLoadBias());
        assertEquals(b.nm("greet"), p.replaced().getFirst().targetAddress());
    }

    @Test
    void gccClonesAreCorrelatedAndReplacedThemselves() throws Exception {
        String src = """
                volatile int sink;
                struct big { int a, b, c, d[16]; };
                __attribute__((noinline)) static int scale(int x, int factor) { sink = x; return x * factor + 1; }
                __attribute__((noinline)) static int field(struct big *p) { sink = p->b; return p->b * 2 + 1; }
                int use1(int x) { struct big b = {0}; b.b = x; return scale(x, 3) + field(&b); }
                int use2(int x) { struct big b = {0}; b.b = x + 1; return scale(x + 1, 3) + field(&b); }
                int main(int argc, char **argv) { return use1(argc) + use2(argc); }
                """;
        var b = new TwoBuilds(dir).file("clone.c", src, "x * factor + 1", "x * factor + 2", "p->b * 2 + 1",
                "p->b * 2 + 3");
        PatchFile p = b.diff();
        assertEquals(List.of("field.isra.0", "scale.constprop.0"), replacedNames(p));
    }

    @Test
    void noChangedFunctionIsRefused() throws Exception {
        var b = new TwoBuilds(dir).file("same.c", GREET);
        var e = assertThrows(DiffRefusedException.class, b::diff);
        assertTrue(e.getMessage().contains("no function changed"), e.getMessage());
    }

    @Test
    void objectsWithoutFunctionSectionsAreRefused() throws Exception {
        var b = new TwoBuilds(dir).file("greet.c", GREET, "hello", "bye").build();
        Gcc.run(dir.resolve("patched"), "gcc", "-c", "-O2", "-o", "greet.o", "greet.c");
        var e = assertThrows(DiffRefusedException.class, b::diff);
        assertTrue(e.getMessage().contains("-ffunction-sections"), e.getMessage());
    }

    @Test
    void ltoObjectsAreRefused() throws Exception {
        var b = new TwoBuilds(dir).file("greet.c", GREET, "hello", "bye").build();
        Gcc.run(dir.resolve("patched"), "gcc", "-c", "-O2", "-flto", "-ffunction-sections", "-fdata-sections",
                "-o", "greet.o", "greet.c");
        var e = assertThrows(DiffRefusedException.class, b::diff);
        assertTrue(e.getMessage().contains("LTO"), e.getMessage());
    }

    @Test
    void originalBuildThatIsNotTheDeployedBinaryIsRefusedUnlessForced() throws Exception {
        var b = new TwoBuilds(dir).file("greet.c", GREET, "hello %s", "goodbye %s").build();
        // The "original" objects now come from a different source than the deployed binary.
        var other = GREET.replace("printf(\"hello %s\\n\", who);", "printf(\"hello %s\\n\", who); counter++;");
        java.nio.file.Files.writeString(dir.resolve("orig/greet.c"), other);
        Gcc.run(dir.resolve("orig"), "gcc", "-c", "-O2", "-g", "-ffunction-sections", "-fdata-sections",
                "-o", "greet.o", "greet.c");
        var e = assertThrows(DiffRefusedException.class, b::diff);
        assertTrue(e.getMessage().contains("greet"), e.getMessage());
        assertTrue(e.getMessage().contains("--force"), e.getMessage());
        PatchFile forced = b.diff(true);
        assertEquals(List.of("greet"), replacedNames(forced));
        assertFalse(b.result.warnings().isEmpty());
    }

    @Test
    void readelfAndObjdumpAcceptThePatch() throws Exception {
        String src = """
                #include <stdio.h>
                #include <string.h>
                __thread int tv;
                static const char *names[] = {"a", "b"};
                volatile int sink;
                __attribute__((noinline)) static int helper(int x) { sink = x; return x * 2; }
                __attribute__((noinline)) int run(int x) { tv++; printf("%s %d\\n", names[x & 1], helper(x)); return 0; }
                int main(int argc, char **argv) { return run(argc); }
                """;
        var b = new TwoBuilds(dir).file("ok.c", src, "tv++;", "tv += 2; helper(x + (int) strlen(names[0]));",
                "return x * 2;", "return x * 4;");
        b.diff();
        String patch = b.result.patchFile().toString();
        var outputs = new java.util.HashMap<String, String>();
        for (var cmd : List.of(List.of("readelf", "-a", "-W", patch), List.of("objdump", "-dr", patch),
                List.of("readelf", "--debug-dump=frames", patch))) {
            var pb = new ProcessBuilder(cmd).redirectErrorStream(false);
            var proc = pb.start();
            String out = new String(proc.getInputStream().readAllBytes());
            String err = new String(proc.getErrorStream().readAllBytes());
            assertTrue(proc.waitFor(30, java.util.concurrent.TimeUnit.SECONDS));
            assertEquals(0, proc.exitValue(), cmd + ": " + err);
            assertEquals("", err, cmd + " complained");
            assertFalse(out.toLowerCase().contains("warning"), cmd + ": " + out);
            outputs.put(cmd.get(1), out);
        }
        // One FDE per included function, no more: the unwind entries of everything else are dropped.
        var p = PatchFile.read(b.result.patchFile());
        long functions = p.sections().stream().filter(x -> x.isExecutable()).count();
        long fdes = outputs.get("--debug-dump=frames").lines().filter(l -> l.contains(" FDE ")).count();
        assertEquals(functions, fdes, outputs.get("--debug-dump=frames"));
        assertEquals(List.of("helper", "run"), replacedNames(p));
        assertNotNull(PatchFile.read(b.result.patchFile()));
    }
}
