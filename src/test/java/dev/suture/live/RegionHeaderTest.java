package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.SutureException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class RegionHeaderTest {

    static RegionHeader sample() {
        var f1 = new RegionHeader.Function("thread3_say", 0x401269, 0x5b, 0xa0b4b5, 0x5e, 0,
                new byte[] {(byte) 0xf3, 0x0f, 0x1e, (byte) 0xfa, 0x55},
                new byte[] {(byte) 0xe9, 0x47, (byte) 0xa2, 0x60, 0x00});
        var f2 = new RegionHeader.Function("helper", 0x401300, 0x20, 0xa0b600, 0x24, 0x7f0000001000L,
                new byte[] {(byte) 0xe9, 1, 2, 3, 4}, new byte[] {(byte) 0xe9, 5, 6, 7, 8});
        int size = RegionHeader.sizeFor("fix-42", "ab".repeat(20), "/usr/bin/demo", "demo",
                List.of("thread3_say", "helper"));
        var layout = new RegionHeader.Layout(size, 0x100, size + 0x100, 2, size + 0x120, 3, 0x1000, 0x40,
                size + 0xc0, 0x38, 0);
        return new RegionHeader(1, RegionHeader.State.APPLIED, size, 0x2000, 1_700_000_000_000_000_000L,
                1_700_000_000_500_000_000L, 0, 2, layout, "fix-42", "ab".repeat(20), "/usr/bin/demo", "demo",
                List.of(f1, f2));
    }

    @Test
    void roundTrips() {
        var h = sample();
        byte[] bytes = h.encode();
        assertEquals(h.headerSize(), bytes.length);
        assertEquals(0, bytes.length % 64);
        assertTrue(RegionHeader.hasMagic(bytes));
        assertEquals(bytes.length, RegionHeader.claimedSize(bytes));
        assertEquals(h, RegionHeader.decode(bytes, "pid 1 region 0xa0b000"));
    }

    @Test
    void fieldsSitWhereTheSpecificationSays() {
        byte[] bytes = sample().encode();
        var b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals("SUTURE", new String(bytes, 0, 6));
        assertEquals(0, bytes[6]);
        assertEquals('R', bytes[7]);
        assertEquals(1, b.getShort(0x08));
        assertEquals(2, b.getShort(RegionHeader.STATE_OFFSET));
        assertEquals(0x2000, b.getLong(0x10));
        assertEquals(1_700_000_000_500_000_000L, b.getLong(RegionHeader.APPLIED_OFFSET));
        assertEquals(2, b.getInt(0x34));
        assertEquals(0x80, b.getInt(0x70));
        assertEquals(0x401269, b.getLong(0x80));
        assertEquals(0xa0b4b5, b.getLong(0x88));
        assertEquals((byte) 0xe9, bytes[0x80 + 0x29]);
        assertEquals(0x5e, b.getInt(0x80 + 0x1c));
        int strings = b.getInt(0x58);
        assertEquals("fix-42", new String(bytes, strings + b.getInt(0x60), 6));
        assertEquals(sample().headerSize() + 0xc0, b.getInt(0x74));
        assertEquals(0x38, b.getInt(0x78));
        assertEquals(0, b.getInt(0x7c));
    }

    @Test
    void aHeaderWithZerosWhereTheEhFrameIsRecordedHasNoCfi() {
        // as suture wrote every region before it recorded the .eh_frame (the bytes were reserved, 0)
        byte[] bytes = sample().encode();
        java.util.Arrays.fill(bytes, 0x74, 0x80, (byte) 0);
        var h = RegionHeader.decode(bytes, "x");
        assertFalse(h.layout().hasEhFrame());
        assertEquals(0, h.layout().ehFrameOffset());
        assertEquals(sample().functions(), h.functions());
        assertEquals(sample().layout().textSize(), h.layout().textSize());
    }

    @Test
    void anEhFrameOutsideTheTextIsACorruptHeader() {
        var s = sample();
        int text = s.layout().textOffset();
        int textSize = s.layout().textSize();
        for (int[] bad : new int[][] {{text - 8, 0x10}, {text + textSize - 8, 0x10}, {text, -1}, {text, 0},
                {0, 0x10}, {text + 0x10, Integer.MAX_VALUE}, {Integer.MAX_VALUE, 0x10}}) {
            byte[] bytes = s.encode();
            var b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
            b.putInt(0x74, bad[0]);
            b.putInt(0x78, bad[1]);
            var e = assertThrows(RegionFormatException.class, () -> RegionHeader.decode(bytes, "pid 7 at 0x1000"),
                    bad[0] + "+" + bad[1]);
            assertTrue(e.getMessage().contains("layout"), e.getMessage());
        }
    }

    /** {@link #sample} with a frames block (FrameRegistration): the .eh_frame early in the text, the block in data. */
    private static RegionHeader withFrames(int ehFrameOffset, int ehFrameSize, int framesOffset) {
        var s = sample();
        var l = s.layout();
        var layout = new RegionHeader.Layout(l.textOffset(), l.textSize(), l.jumpTableOffset(), l.jumpTableCount(),
                l.gotOffset(), l.gotCount(), 0x1000, 0x100, ehFrameOffset, ehFrameSize, framesOffset);
        return new RegionHeader(1, s.state(), s.headerSize(), s.regionSize(), s.createdNanos(), s.appliedNanos(),
                s.moduleBias(), s.sequence(), layout, s.patchId(), s.buildId(), s.modulePath(), s.targetName(),
                s.functions());
    }

    @Test
    void theFramesBlockRoundTripsAndItsHelperEndsTheText() {
        int text = sample().layout().textOffset();
        var h = withFrames(text + 0x40, 0x38, 0x1040);
        byte[] bytes = h.encode();
        assertEquals(0x1040, ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getInt(0x7c));
        var d = RegionHeader.decode(bytes, "x");
        assertEquals(h, d);
        assertTrue(d.layout().hasFrames());
        assertEquals(text + 0x100 - FrameRegistration.HELPER_SPACE, d.layout().framesHelperOffset());
        assertFalse(sample().layout().hasFrames());
    }

    @Test
    void aFramesBlockOutsideTheDataOrWithoutCfiIsACorruptHeader() {
        int text = sample().layout().textOffset();
        // unaligned; before the data; past its end; no .eh_frame; an .eh_frame (and its terminator) over the helper
        for (var bad : List.of(withFrames(text + 0x40, 0x38, 0x1044), withFrames(text + 0x40, 0x38, 0xf00),
                withFrames(text + 0x40, 0x38, 0x1080), withFrames(0, 0, 0x1040),
                withFrames(text + 0xc0, 0x38, 0x1040), withFrames(text + 0x40, 0x9d, 0x1040))) {
            var e = assertThrows(RegionFormatException.class, () -> RegionHeader.decode(bad.encode(), "x"),
                    bad.layout().toString());
            assertTrue(e.getMessage().contains("layout"), e.getMessage());
        }
        assertTrue(RegionHeader.decode(withFrames(text + 0x40, 0x9c, 0x1040).encode(), "x").layout().hasFrames());
    }

    @Test
    void stateFlipsAndTimestampsSurvive() {
        var h = sample().withState(RegionHeader.State.REVERTING, 99);
        var d = RegionHeader.decode(h.encode(), "x");
        assertEquals(RegionHeader.State.REVERTING, d.state());
        assertEquals(99, d.appliedNanos());
    }

    @Test
    void corruptHeadersAreErrorsNeverCrashes() {
        byte[] good = sample().encode();
        assertThrows(RegionFormatException.class, () -> RegionHeader.decode(new byte[16], "x"));
        assertFalse(RegionHeader.hasMagic(new byte[3]));
        byte[] truncated = java.util.Arrays.copyOf(good, 0x40);
        var e = assertThrows(RegionFormatException.class, () -> RegionHeader.decode(truncated, "pid 7 at 0x1000"));
        assertTrue(e.getMessage().startsWith("pid 7 at 0x1000"), e.getMessage());
        assertEquals(SutureException.Kind.BAD_INPUT, e.kind());
        byte[] otherVersion = good.clone();
        otherVersion[8] = 9;
        assertTrue(assertThrows(RegionFormatException.class, () -> RegionHeader.decode(otherVersion, "x"))
                .getMessage().contains("version 9"));
        // flip random bytes after the magic: every outcome is a decoded header or a RegionFormatException
        var random = new Random(5);
        for (int i = 0; i < 5000; i++) {
            byte[] bad = good.clone();
            for (int k = 0; k < 4; k++) {
                bad[8 + random.nextInt(bad.length - 8)] = (byte) random.nextInt();
            }
            try {
                RegionHeader.decode(bad, "fuzz");
            } catch (RegionFormatException expected) {
                // fine
            }
        }
    }
}
