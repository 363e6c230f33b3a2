package dev.suture.x86;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.SutureException;
import dev.suture.testing.Gcc;
import java.io.ByteArrayOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class JumpsTest {
    @TempDir
    Path dir;

    @Test
    void jmpRel32MatchesTheSeedsJump() {
        // the seed: 0x401269 <thread3_say>: jmpq 0xa0b4b5
        byte[] jmp = Jumps.jmpRel32(0x401269, 0xa0b4b5);
        assertArrayEquals(new byte[] {(byte) 0xe9, 0x47, (byte) 0xa2, 0x60, 0x00}, jmp);
        assertEquals(0xa0b4b5, Jumps.jmpRel32Target(jmp, 0x401269));
    }

    @Test
    void backwardJumpHasNegativeDisplacement() {
        byte[] jmp = Jumps.jmpRel32(0x1000, 0x1000);
        assertArrayEquals(new byte[] {(byte) 0xe9, (byte) 0xfb, (byte) 0xff, (byte) 0xff, (byte) 0xff}, jmp);
    }

    @Test
    void reachabilityIsExactAtTheEdges() {
        long from = 0x7f00_0000_0000L;
        long farthestForward = from + 5 + Integer.MAX_VALUE;
        long farthestBackward = from + 5 + Integer.MIN_VALUE;
        assertTrue(Jumps.reachable(from, 5, farthestForward));
        assertTrue(Jumps.reachable(from, 5, farthestBackward));
        assertFalse(Jumps.reachable(from, 5, farthestForward + 1));
        assertFalse(Jumps.reachable(from, 5, farthestBackward - 1));
        Jumps.jmpRel32(from, farthestBackward);
        var e = assertThrows(DoesNotFitException.class, () -> Jumps.jmpRel32(from, farthestForward + 1));
        assertEquals(SutureException.Kind.DOES_NOT_FIT, e.kind());
        assertTrue(e.getMessage().contains("±2 GiB"), e.getMessage());
    }

    @Test
    void thunkRoundTrips() {
        byte[] t = Jumps.absoluteThunk(0x7f12_3456_789aL);
        assertEquals(14, t.length);
        assertEquals(0x7f12_3456_789aL, Jumps.absoluteThunkTarget(t));
        assertEquals(-1, Jumps.absoluteThunkTarget(Jumps.jmpRel32(0, 100)));
        assertEquals(-1, Jumps.jmpRel32Target(t, 0));
    }

    @Test
    void objdumpDecodesWhatWeEncode() throws Exception {
        var out = new ByteArrayOutputStream();
        long base = 0x401269;
        out.write(Jumps.jmpRel32(base, 0xa0b4b5));
        out.write(Jumps.callRel32(base + 5, 0xa0c890));
        out.write(Jumps.absoluteThunk(0x7fd6498fa185L));
        Path raw = dir.resolve("code.bin");
        Files.write(raw, out.toByteArray());
        String text = Gcc.run(dir, "objdump", "-D", "-b", "binary", "-mi386:x86-64",
                "--adjust-vma=0x" + Long.toHexString(base), raw.toString());
        assertTrue(text.matches("(?s).*401269:\\s+e9 47 a2 60 00\\s+jmp\\s+0xa0b4b5.*"), text);
        assertTrue(text.matches("(?s).*40126e:.*call\\s+0xa0c890.*"), text);
        assertTrue(text.matches("(?s).*401273:\\s+ff 25 00 00 00 00\\s+jmp\\s+\\*0x0\\(%rip\\).*"), text);
    }
}
