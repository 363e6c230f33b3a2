package dev.suture.unwind;

import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.elf.ElfFile;
import dev.suture.elf.SymbolsByAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Fuzzed .eh_frame and .eh_frame_hdr bytes and random stacks: building the index and unwinding must end in a
 * result or an unwinding error for a frame, never another exception or a hang.
 */
class HostileCfiTest {
    private static final long BIAS = 0x7f1200000000L;
    private static final long STACK = 0x7ffe00000000L;

    @Test
    void fuzzedGlibcCfi() {
        ElfFile libc = ElfFile.open(Path.of("/lib/x86_64-linux-gnu/libc.so.6"));
        var eh = libc.ehFrame().orElseThrow();
        var hdr = libc.ehFrameHdr().orElseThrow();
        byte[] ehBytes = libc.bytes(eh);
        byte[] hdrBytes = libc.bytes(hdr);
        var clean = CallFrameSection.ehFrame("libc", ehBytes, eh.sh_addr(), hdrBytes, hdr.sh_addr(), 0, 0);
        List<FrameDescriptionEntry> fdes = clean.entries();
        assertTrue(fdes.size() > 1000);
        var random = new Random(20261125);
        int[] outcomes = new int[StackEnd.values().length];
        assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
            for (int round = 0; round < 40; round++) {
                byte[] e = ehBytes.clone();
                byte[] h = hdrBytes.clone();
                int flips = 1 + random.nextInt(2000);
                for (int i = 0; i < flips; i++) {
                    e[random.nextInt(e.length)] = (byte) random.nextInt(256);
                }
                if (round % 4 == 0) {
                    for (int i = 0; i < 50; i++) {
                        h[random.nextInt(h.length)] = (byte) random.nextInt(256);
                    }
                }
                boolean useHeader = round % 3 != 2;
                var section = CallFrameSection.ehFrame("fuzzed libc", e, eh.sh_addr(), useHeader ? h : null,
                        hdr.sh_addr(), 0, 0);
                assertNotNull(section.toString());
                var module = new CodeModule("fuzzed", BIAS, section, null, SymbolsByAddress.EMPTY);
                var code = new CodeMap(List.of(new CodeMap.Range(BIAS, BIAS + 0x200000, module)));
                var unwinder = new Unwinder(code);
                var out = new FrameBuffer(128);
                byte[] stack = new byte[4096];
                var copy = new StackCopy(null);
                long[] regs = new long[Dwarf.REGISTER_COUNT];
                for (int t = 0; t < 400; t++) {
                    random.nextBytes(stack);
                    // plant plausible return addresses so unwinding goes deeper than one frame
                    for (int k = 0; k < 64; k++) {
                        long ra = BIAS + fdes.get(random.nextInt(fdes.size())).pcBegin() + 1 + random.nextInt(16);
                        int at = random.nextInt(stack.length / 8) * 8;
                        for (int b = 0; b < 8; b++) {
                            stack[at + b] = (byte) (ra >>> (8 * b));
                        }
                    }
                    copy.reset(STACK, stack, stack.length);
                    for (int r = 0; r < regs.length; r++) {
                        regs[r] = random.nextBoolean() ? STACK + random.nextInt(stack.length) : random.nextLong();
                    }
                    var f = fdes.get(random.nextInt(fdes.size()));
                    regs[Dwarf.RA] = BIAS + f.pcBegin() + (f.pcRange() > 0 ? random.nextLong(f.pcRange()) : 0);
                    regs[Dwarf.RSP] = STACK + random.nextInt(256) * 8;
                    unwinder.unwind(regs, copy, out);
                    assertTrue(out.count() >= 1 && out.end() != null);
                    assertTrue(out.end() != StackEnd.ERROR || out.error() != null);
                    outcomes[out.end().ordinal()]++;
                }
            }
        });
        // the fuzzing must exercise both clean ends and errors
        assertTrue(outcomes[StackEnd.ERROR.ordinal()] > 0, java.util.Arrays.toString(outcomes));
        assertTrue(outcomes[StackEnd.STACK_NOT_INCREASING.ordinal()] + outcomes[StackEnd.OUTERMOST.ordinal()]
                + outcomes[StackEnd.ZERO_PC.ordinal()] > 0, java.util.Arrays.toString(outcomes));
    }

    @Test
    void randomBytesAsCfi() {
        var random = new Random(7);
        assertTimeoutPreemptively(Duration.ofSeconds(30), () -> {
            for (int round = 0; round < 1000; round++) {
                byte[] e = new byte[1 + random.nextInt(512)];
                random.nextBytes(e);
                if (round % 2 == 0 && e.length > 16) { // a plausible CIE/FDE header, garbage after
                    e[0] = (byte) Math.min(e.length - 4, 120);
                    e[1] = e[2] = e[3] = 0;
                    e[4] = e[5] = e[6] = e[7] = 0;
                    e[8] = 1;
                }
                byte[] h = new byte[random.nextInt(64)];
                random.nextBytes(h);
                if (h.length > 4) {
                    h[0] = 1;
                }
                var section = CallFrameSection.ehFrame("random", e, 0x3000, h, 0x2f00, 0, 0);
                section.entries();
                var module = new CodeModule("random", 0, section, null, SymbolsByAddress.EMPTY);
                var unwinder = new Unwinder(new CodeMap(List.of(new CodeMap.Range(0, 0x100000, module))));
                var out = new FrameBuffer(16);
                long[] regs = new long[Dwarf.REGISTER_COUNT];
                for (int t = 0; t < 20; t++) {
                    for (int r = 0; r < regs.length; r++) {
                        regs[r] = random.nextLong(0x10000);
                    }
                    unwinder.unwind(regs, new StackCopy(null).reset(0, e, e.length), out);
                    assertTrue(out.count() >= 1);
                }
            }
        });
    }
}
