package dev.suture.proc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.elf.ElfFile;
import dev.suture.testing.Gcc;
import dev.suture.testing.Target;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Modules of a live process built in the test: an executable and a shared library it links. */
class ModulesTest {
    @TempDir
    Path dir;

    static final String LIB = """
            int shared_name(void) { return 2; }
            int lib_func(int x) { return x + 1; }
            static int lib_static(int x) { return x * 3; }
            int (*lib_static_ptr)(int) = lib_static;
            """;

    static final String APP = """
            #include <stdio.h>
            #include <unistd.h>
            int lib_func(int);
            extern int (*lib_static_ptr)(int);
            int shared_name(void) { return 1; }
            static int __attribute__((noinline)) local_fn(int x) { return x - 1; }
            int main(void) {
                alarm(120); /* ends by itself even if the test dies before killing it */
                printf("ready lib_func=%p shared_name=%p local_fn=%p lib_static=%p\\n", (void *) lib_func,
                       (void *) shared_name, (void *) local_fn, (void *) lib_static_ptr);
                fflush(stdout);
                for (;;) pause();
            }
            """;

    private Path buildApp(Path libDir) throws Exception {
        Files.createDirectories(libDir);
        Gcc.run(dir, "gcc", "-g", "-O1", "-shared", "-fPIC", "-o", libDir.resolve("libdemo.so").toString(),
                Files.writeString(dir.resolve("lib.c"), LIB).toString());
        Path src = Files.writeString(dir.resolve("app.c"), APP);
        Gcc.run(dir, "gcc", "-g", "-O1", "-rdynamic", "-o", dir.resolve("app").toString(), src.toString(),
                "-L" + libDir, "-ldemo", "-Wl,-rpath," + libDir);
        return dir.resolve("app");
    }

    static Map<String, Long> addresses(String readyLine) {
        var out = new HashMap<String, Long>();
        var m = Pattern.compile("(\\w+)=0x([0-9a-f]+)").matcher(readyLine);
        while (m.find()) {
            out.put(m.group(1), Long.parseUnsignedLong(m.group(2), 16));
        }
        return out;
    }

    static String buildId(Path dir, Path file) throws Exception {
        var m = Pattern.compile("Build ID: ([0-9a-f]+)").matcher(Gcc.run(dir, "readelf", "-n", file.toString()));
        assertTrue(m.find(), "no build-id in " + file);
        return m.group(1);
    }

    @Test
    void modulesLookupAndDescribe() throws Exception {
        Path lib = dir.resolve("lib");
        Path exe = buildApp(lib);
        try (var target = Target.start(exe)) {
            var at = addresses(target.awaitLine("ready", Duration.ofSeconds(10)));
            int pid = target.pidInt();
            var modules = Modules.of(pid);

            var app = modules.all().getFirst();
            assertEquals(exe.toString(), app.path(), "the executable comes first: " + modules.all());
            assertEquals(buildId(dir, exe), app.buildId());
            var demo = modules.byName("libdemo.so").orElseThrow();
            assertEquals(buildId(dir, lib.resolve("libdemo.so")), demo.buildId());
            assertEquals(Optional.of(demo), modules.byBuildId(demo.buildId()));
            assertTrue(modules.byName("libc.so.6").isPresent(), modules.all().toString());
            assertTrue(modules.all().indexOf(demo) < modules.all().indexOf(modules.byName("libc.so.6").get()),
                    "load order: " + modules.all());

            assertEquals(Optional.of(at.get("lib_func")), modules.lookup("lib_func"));
            assertEquals(Optional.of(at.get("shared_name")), modules.lookup("shared_name"),
                    "the executable's definition comes first in the search order");
            assertEquals(Optional.empty(), modules.lookup("lib_static"), "static functions are not exported");
            assertEquals(Optional.empty(), modules.lookup("no_such_symbol"));
            long nanosleep = modules.lookup("nanosleep").orElseThrow();
            assertEquals("libc.so.6", modules.containing(nanosleep).orElseThrow().name());

            assertEquals("libdemo.so!lib_func", modules.describe(at.get("lib_func")));
            assertEquals("libdemo.so!lib_func+0x2", modules.describe(at.get("lib_func") + 2));
            assertEquals("libdemo.so!lib_static", modules.describe(at.get("lib_static")));
            assertEquals("app!local_fn", modules.describe(at.get("local_fn")));
            assertEquals(Optional.of(demo), modules.containing(at.get("lib_func")));
            assertTrue(modules.describe(0x10).startsWith("0x"));

            // the vdso is read from memory
            var vdso = modules.byName("[vdso]").orElseThrow();
            var gettime = vdso.elf().dynamicSymbols().stream().filter(s -> s.name().equals("__vdso_clock_gettime"))
                    .findFirst().orElseThrow();
            String where = modules.describe(vdso.runtime(gettime.st_value()) + 1);
            assertTrue(where.startsWith("[vdso]!") && where.endsWith("clock_gettime+0x1"), where);

            // the kernel's entry point is the executable's e_entry plus its load bias
            var auxv = Auxv.read(pid);
            assertEquals(Optional.of(app.runtime(app.elf().header().e_entry())), auxv.entry());
            assertEquals(Optional.of(vdso.start()), auxv.vdso());
        }
    }

    @Test
    void replacedLibraryIsReadFromTheMapping() throws Exception {
        Path lib = dir.resolve("lib");
        Path exe = buildApp(lib);
        Path so = lib.resolve("libdemo.so");
        String original = buildId(dir, so);
        try (var target = Target.start(exe)) {
            var at = addresses(target.awaitLine("ready", Duration.ofSeconds(10)));
            // a package upgrade: the file is replaced (new inode) by a different build
            Files.delete(so);
            Gcc.run(dir, "gcc", "-g", "-O0", "-shared", "-fPIC", "-DUPGRADED", "-o", so.toString(),
                    Files.writeString(dir.resolve("lib2.c"), LIB + "int added_in_upgrade;\n").toString());
            assertNotEquals(original, buildId(dir, so));

            var modules = Modules.of(target.pidInt());
            var demo = modules.byBuildId(original).orElseThrow(() -> new AssertionError(modules.all().toString()));
            assertTrue(demo.path().endsWith("libdemo.so (deleted)"), demo.path());
            assertEquals(Optional.of(at.get("lib_func")), modules.lookup("lib_func"));
            assertEquals(Optional.empty(), modules.lookup("added_in_upgrade"));
            try (var onDisk = ElfFile.open(so)) {
                assertNotEquals(onDisk.buildId(), Optional.of(original));
            }
        }
    }
}
