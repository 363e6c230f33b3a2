package dev.suture.patch;

import static dev.suture.elf.ElfConstants.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.SutureException;
import dev.suture.testing.Gcc;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Writing, reading and validating patch files (docs/patch-format.md). */
class PatchFileTest {
    @TempDir
    Path dir;

    private static final String HASH = "ab".repeat(32);

    /** A small patch: one replaced function calling printf, reading a target global, with a new variable. */
    static PatchFile sample() {
        var b = new PatchBuilder("fix-1", "0123abcd", "server", ET_EXEC);
        // push %rbp; mov counter(%rip),%eax; call printf; pop %rbp; ret
        byte[] code = {0x55, (byte) 0x8b, 0x05, 0, 0, 0, 0, (byte) 0xe8, 0, 0, 0, 0, 0x5d, (byte) 0xc3};
        int text = b.addSection(".text.say", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, 16, 0, code, code.length);
        int bss = b.addSection(".bss.seen", SHT_NOBITS, SHF_ALLOC | SHF_WRITE, 4, 0, new byte[0], 4);
        var say = b.defined("say", STT_FUNC, text, 0, code.length);
        var seen = b.defined("seen", STT_OBJECT, bss, 0, 4);
        b.relocate(text, 3, R_X86_64_PC32, b.targetRelative("counter", STT_OBJECT, 0x404028, 4), -4);
        b.relocate(text, 8, R_X86_64_PLT32, b.external("printf", "GLIBC_2.2.5", STT_FUNC, false), -4);
        b.replaced("say", 0x401136, 40, HASH, say, false);
        b.added(NewSymbol.Kind.DATA, seen);
        return b.build();
    }

    @Test
    void roundTripKeepsEverything() throws Exception {
        var p = sample();
        Path file = dir.resolve("p.suture");
        p.write(file);
        var r = PatchFile.read(file);
        assertEquals("fix-1", r.id());
        assertEquals("0123abcd", r.targetBuildId());
        assertEquals("server", r.targetName());
        assertEquals(1, r.formatVersion());
        assertEquals(1, r.replaced().size());
        var rep = r.replaced().getFirst();
        assertEquals("say", rep.symbol());
        assertEquals(0x401136, rep.targetAddress());
        assertEquals(40, rep.size());
        assertEquals(HASH, rep.sha256());
        assertEquals("say", rep.patchSymbol().name());
        assertEquals(List.of("seen"), r.added().stream().map(a -> a.symbol().name()).toList());
        assertEquals(List.of("printf@GLIBC_2.2.5"), r.externals().stream().map(PatchSymbol.External::fileName).toList());
        var counter = r.targetRelative().getFirst();
        assertEquals(0x404028, counter.value());
        var text = r.sections().stream().filter(s -> s.name().equals(".text.say")).findFirst().orElseThrow();
        assertArrayEquals(p.sections().getFirst().bytes(), text.bytes());
        assertEquals(2, text.relocations().size());
        assertEquals(counter, text.relocations().getFirst().symbol());
        var bss = r.sections().stream().filter(s -> s.name().equals(".bss.seen")).findFirst().orElseThrow();
        assertTrue(bss.isNobits());
        assertEquals(4, bss.size());
        assertEquals(p.symbols(), r.symbols());
        assertEquals(java.util.Map.of("R_X86_64_PC32", 1, "R_X86_64_PLT32", 1), r.relocationCounts());
    }

    @Test
    void readelfAndObjdumpReadItWithoutComplaint() throws Exception {
        Path file = dir.resolve("p.suture");
        sample().write(file);
        String all = Gcc.run(dir, "readelf", "-a", "-W", file.toString())
                + Gcc.run(dir, "objdump", "-dr", file.toString());
        assertTrue(all.contains("R_X86_64_PLT32") && all.contains("printf@GLIBC_2.2.5"), all);
        assertTrue(!all.toLowerCase().contains("warning"), all);
    }

    @Test
    void tooShortReplacedFunctionIsInvalid() {
        var b = new PatchBuilder("x", "00ff", "t", ET_EXEC);
        int text = b.addSection(".text.f", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, 1, 0, new byte[] {(byte) 0xc3}, 1);
        b.replaced("f", 0x1000, 3, HASH, b.defined("f", STT_FUNC, text, 0, 1), false);
        var e = assertThrows(PatchFormatException.class, b::build);
        assertTrue(e.getMessage().contains("shorter than a jmp"), e.getMessage());
    }

    @Test
    void malformedFilesAreRefusedWithAMessage() throws Exception {
        byte[] good = sample().toBytes();
        // Truncated anywhere: an error naming the file, never an exception trace.
        for (int cut : new int[] {0, 10, 64, good.length / 2, good.length - 1}) {
            Path f = dir.resolve("cut" + cut);
            Files.write(f, Arrays.copyOf(good, cut));
            var e = assertThrows(SutureException.class, () -> PatchFile.read(f));
            assertEquals(SutureException.Kind.BAD_INPUT, e.kind());
        }
        // A different metadata version and an unknown record.
        assertInvalid(replaceInfo(good, "suture-patch 1", "suture-patch 9"), "format version");
        assertInvalid(replaceInfo(good, "target-type ET_EXEC", "target-typo ET_EXEC"), "unknown record");
        assertInvalid(replaceInfo(good, "0x401136", "0x40113z"), "hex");
        // Not a patch at all: an object without .suture.info.
        Path obj = dir.resolve("x.o");
        Files.writeString(dir.resolve("x.c"), "int x(void) { return 1; }\n");
        Gcc.run(dir, "gcc", "-c", "-o", obj.toString(), "x.c");
        var e = assertThrows(PatchFormatException.class, () -> PatchFile.read(obj));
        assertTrue(e.getMessage().contains(".suture.info"), e.getMessage());
    }

    /** A builder with one replaced function {@code f} in {@code .text.f}, for the hostile cases below. */
    private static PatchBuilder oneFunction() {
        var b = new PatchBuilder("x", "00ff", "t", ET_EXEC);
        byte[] code = new byte[16];
        int text = b.addSection(".text.f", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, 16, 0, code, code.length);
        b.replaced("f", 0x401000, 16, HASH, b.defined("f", STT_FUNC, text, 0, 16), false);
        return b;
    }

    private static void assertRefused(PatchBuilder b, String expected) {
        var e = assertThrows(PatchFormatException.class, b::build);
        assertTrue(e.getMessage().contains(expected), e.getMessage());
    }

    @Test
    void valuesThatWouldOverflowOrLieAreRefused() {
        // r_offset + 4 overflows to a negative number: once it passed the bounds check
        var b = oneFunction();
        b.relocate(1, Long.MAX_VALUE - 1, R_X86_64_PC32, b.targetRelative("g", STT_OBJECT, 0x404000, 4), -4);
        assertRefused(b, "outside the section");
        // st_size -1 made value + size small
        b = oneFunction();
        b.defined("neg", STT_OBJECT, 1, 8, -1);
        assertRefused(b, "outside its section");
        // two records for one function, and two overlapping functions: two jumps, two saved copies
        b = oneFunction();
        b.replaced("f", 0x402000, 16, HASH, b.defined("f2", STT_FUNC, 1, 0, 16), false);
        assertRefused(b, "listed twice");
        b = oneFunction();
        b.replaced("g", 0x401008, 16, HASH, b.defined("g", STT_FUNC, 1, 0, 16), false);
        assertRefused(b, "overlap");
        // an address past the user address space, where address + load bias would wrap
        b = oneFunction();
        b.replaced("h", 0xffff_ffff_ffff_fff0L, 8, HASH, b.defined("h", STT_FUNC, 1, 0, 8), false);
        assertRefused(b, "user address space");
        // a replacement that is data, not a function
        b = oneFunction();
        b.replaced("d", 0x403000, 16, HASH, b.defined("d", STT_OBJECT, 1, 0, 16), false);
        assertRefused(b, "not STT_FUNC");
        // a TLS access to something that is not thread-local, and the address of something that is
        b = oneFunction();
        b.relocate(1, 4, R_X86_64_GOTTPOFF, b.targetRelative("g", STT_OBJECT, 0x404000, 4), -4);
        assertRefused(b, "not a thread-local variable");
        b = oneFunction();
        b.relocate(1, 4, R_X86_64_PC32, b.targetRelative("t", STT_TLS, 0x10, 4), -4);
        assertRefused(b, "thread-local");
        // code the binder would map without execute permission, or as zeroes
        b = oneFunction();
        int wax = b.addSection(".text.w", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR | SHF_WRITE, 16, 0, new byte[8], 8);
        b.replaced("w", 0x405000, 8, HASH, b.defined("w", STT_FUNC, wax, 0, 8), false);
        assertRefused(b, "executable and writable");
        b = oneFunction();
        b.addSection(".text.z", SHT_NOBITS, SHF_ALLOC | SHF_EXECINSTR, 16, 0, new byte[0], 64);
        assertRefused(b, "executable and NOBITS");
        // a replacement that starts past its code
        b = oneFunction();
        b.replaced("e", 0x406000, 8, HASH, b.defined("e", STT_FUNC, 1, 16, 0), false);
        assertRefused(b, "past its code");
        // a section that claims 2^40 bytes of zeroes
        b = oneFunction();
        b.addSection(".bss.huge", SHT_NOBITS, SHF_ALLOC | SHF_WRITE, 8, 0, new byte[0], 1L << 40);
        assertRefused(b, "claims 0x10000000000 bytes");
        // a relocation from loaded code into a section that is not loaded
        b = oneFunction();
        int note = b.addSection(".note.x", SHT_PROGBITS, 0, 1, 0, new byte[8], 8);
        b.relocate(1, 4, R_X86_64_PC32, b.sectionSymbol(note), -4);
        assertRefused(b, "not loaded");
    }

    @Test
    void namesSharingOneLongStringAreRefusedNotCopiedOverAndOver() {
        // 2000 symbols, one 100 KB name stored once: decoding them all would copy 200 MB
        var b = oneFunction();
        String name = "n".repeat(100_000);
        for (int i = 0; i < 2000; i++) {
            b.defined(name, STT_OBJECT, 1, 0, 0);
        }
        byte[] bytes = b.build().toBytes();
        var e = assertThrows(SutureException.class, () -> PatchFile.parse("shared.suture", bytes));
        assertEquals(SutureException.Kind.BAD_INPUT, e.kind());
        assertTrue(e.getMessage().contains("overlap"), e.getMessage());
    }

    @Test
    void infoTextOfMillionsOfLinesOrFieldsEndsAtTheFirstBadOne() throws Exception {
        byte[] good = sample().toBytes();
        String info = new String(good, StandardCharsets.ISO_8859_1);
        int at = info.indexOf("suture-patch 1\n");
        assertTrue(at > 0);
        for (String tail : new String[] {"\n".repeat(4_000_000), "replace" + " x".repeat(4_000_000) + "\n"}) {
            byte[] bytes = withInfo(good, "suture-patch 1\n" + tail);
            var threads = (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
            long before = threads.getCurrentThreadAllocatedBytes();
            var e = assertThrows(PatchFormatException.class, () -> PatchFile.parse("long.suture", bytes));
            long allocated = threads.getCurrentThreadAllocatedBytes() - before;
            // the text is decoded once and copied once; splitting it all into lines or fields cost 200 MB
            assertTrue(allocated < 20 * bytes.length, "reading " + bytes.length + " bytes allocated " + allocated);
            assertTrue(e.getMessage().length() < 400, "the message quotes megabytes: " + e.getMessage().length());
        }
    }

    /** The file with its .suture.info replaced by {@code text}, appended at the end and pointed at. */
    private static byte[] withInfo(byte[] file, String text) {
        var elf = dev.suture.elf.ElfFile.parse("p", file);
        var info = elf.section(PatchFile.INFO_SECTION).orElseThrow();
        int header = (int) elf.header().e_shoff() + info.index() * 64;
        byte[] t = text.getBytes(StandardCharsets.UTF_8);
        byte[] out = Arrays.copyOf(file, file.length + t.length);
        System.arraycopy(t, 0, out, file.length, t.length);
        var buf = java.nio.ByteBuffer.wrap(out).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        buf.putLong(header + 24, file.length);
        buf.putLong(header + 32, t.length);
        return out;
    }

    private void assertInvalid(byte[] bytes, String expected) {
        var e = assertThrows(PatchFormatException.class, () -> PatchFile.parse("bad.suture", bytes));
        assertTrue(e.getMessage().contains(expected), e.getMessage());
    }

    /** The file with one piece of .suture.info replaced by another of the same length. */
    private static byte[] replaceInfo(byte[] file, String from, String to) {
        assertEquals(from.length(), to.length());
        String s = new String(file, StandardCharsets.ISO_8859_1);
        int at = s.indexOf(from);
        assertTrue(at > 0, from);
        byte[] out = file.clone();
        System.arraycopy(to.getBytes(StandardCharsets.ISO_8859_1), 0, out, at, to.length());
        return out;
    }
}
