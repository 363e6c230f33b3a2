package dev.suture.x86;

import static dev.suture.x86.Relocations.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.junit.jupiter.api.Test;

class RelocationsTest {

    private static int int32(byte[] b, int at) {
        return ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).getInt(at);
    }

    private static long int64(byte[] b, int at) {
        return ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).getLong(at);
    }

    @Test
    void pc32CallToTheSeedsJumpTable() {
        // 0xa0b4d9: callq 0xa0c890 -> rel32 field at 0xa0b4da, addend -4
        byte[] code = {(byte) 0xe8, 0, 0, 0, 0};
        Relocations.apply(R_X86_64_PLT32, code, 1, Values.of(0xa0c890, -4, 0xa0b4da), "call printf");
        assertEquals(0xa0c890 - (0xa0b4d9 + 5), int32(code, 1));
    }

    @Test
    void absoluteTypes() {
        byte[] b = new byte[16];
        Relocations.apply(R_X86_64_64, b, 0, Values.of(0x7fff_1234_5678L, 8, 0), "x");
        assertEquals(0x7fff_1234_5680L, int64(b, 0));
        Relocations.apply(R_X86_64_32, b, 8, Values.of(0x404050, 0, 0), "counter");
        assertEquals(0x404050, int32(b, 8));
        Relocations.apply(R_X86_64_32S, b, 12, Values.of(-16, 0, 0), "neg");
        assertEquals(-16, int32(b, 12));
    }

    @Test
    void unsigned32RefusesNegativeAndHighAddresses() {
        byte[] b = new byte[4];
        var e = assertThrows(DoesNotFitException.class,
                () -> Relocations.apply(R_X86_64_32, b, 0, Values.of(0x5555_5555_4000L, 0, 0), "mov $counter"));
        assertTrue(e.getMessage().contains("mov $counter") && e.getMessage().contains("R_X86_64_32"), e.getMessage());
        assertThrows(DoesNotFitException.class, () -> Relocations.apply(R_X86_64_32, b, 0, Values.of(-1, 0, 0), "x"));
        assertArrayEquals(new byte[4], b, "nothing written on overflow");
        Relocations.apply(R_X86_64_32, b, 0, Values.of(0xffff_ffffL, 0, 0), "x");
    }

    @Test
    void signed32RefusesFarTargets() {
        byte[] b = new byte[4];
        long place = 0x7f00_0000_0000L;
        Relocations.apply(R_X86_64_PC32, b, 0, Values.of(place + Integer.MAX_VALUE, 0, place), "edge");
        assertEquals(Integer.MAX_VALUE, int32(b, 0));
        Relocations.apply(R_X86_64_PC32, b, 0, Values.of(place + Integer.MIN_VALUE, 0, place), "edge");
        assertEquals(Integer.MIN_VALUE, int32(b, 0));
        var e = assertThrows(DoesNotFitException.class, () -> Relocations.apply(R_X86_64_PC32, b, 0,
                Values.of(place + Integer.MAX_VALUE + 1L, 0, place), "edge"));
        assertTrue(e.getMessage().contains("±2 GiB"), e.getMessage());
        assertThrows(DoesNotFitException.class,
                () -> Relocations.apply(R_X86_64_32S, b, 0, Values.of(0x8000_0000L, 0, 0), "x"));
    }

    @Test
    void gotRelativeTypesUseTheEntry() {
        for (int type : new int[] {R_X86_64_GOTPCREL, R_X86_64_GOTPCRELX, R_X86_64_REX_GOTPCRELX,
                R_X86_64_GOTTPOFF, R_X86_64_TLSGD, R_X86_64_TLSLD}) {
            byte[] b = new byte[8];
            var v = new Values(0xdead, -4, 0x1000_0004L, 0x1000_2000L, 0);
            Relocations.apply(type, b, 2, v, "got");
            assertEquals(0x2000 - 4 - 4, int32(b, 2), Relocations.rule(type).name());
            assertTrue(Relocations.rule(type).got() != GotEntry.NONE);
        }
        assertEquals(GotEntry.TP_OFFSET, Relocations.rule(R_X86_64_GOTTPOFF).got());
        assertEquals(GotEntry.TLS_INDEX, Relocations.rule(R_X86_64_TLSGD).got());
        assertEquals(GotEntry.TLS_MODULE, Relocations.rule(R_X86_64_TLSLD).got());
    }

    @Test
    void tlsOffsets() {
        // the seed: movl $0xa2c2a,%fs:0xfffffffffffffffc -> TPOFF32 of a variable at tp-4
        byte[] b = new byte[4];
        Relocations.apply(R_X86_64_TPOFF32, b, 0, Values.of(-4, 0, 0), "tls_value");
        assertEquals(-4, int32(b, 0));
        assertEquals(Operand.TP_OFFSET, Relocations.rule(R_X86_64_TPOFF32).operand());
        Relocations.apply(R_X86_64_DTPOFF32, b, 0, Values.of(0x10, 4, 0), "lib_tls");
        assertEquals(0x14, int32(b, 0));
        assertEquals(Operand.DTP_OFFSET, Relocations.rule(R_X86_64_DTPOFF64).operand());
    }

    @Test
    void pc64AndSizes() {
        byte[] b = new byte[8];
        Relocations.apply(R_X86_64_PC64, b, 0, Values.of(0x10, 0, 0x7f00_0000_0000L), "far");
        assertEquals(0x10 - 0x7f00_0000_0000L, int64(b, 0));
        Relocations.apply(R_X86_64_SIZE32, b, 0, Values.of(24, 0, 0), "size");
        assertEquals(24, int32(b, 0));
        assertEquals(Operand.SIZE, Relocations.rule(R_X86_64_SIZE64).operand());
    }

    @Test
    void placeOutsideSectionIsAnError() {
        byte[] b = new byte[6];
        assertThrows(DoesNotFitException.class, () -> Relocations.apply(R_X86_64_PC32, b, 3, Values.of(0, 0, 0), "x"));
        assertThrows(DoesNotFitException.class, () -> Relocations.apply(R_X86_64_64, b, -1, Values.of(0, 0, 0), "x"));
    }

    @Test
    void unsupportedTypesAreRefusedWithAMessage() {
        assertFalse(Relocations.supported(36)); // R_X86_64_TLSDESC
        assertFalse(Relocations.supported(999));
        assertTrue(Relocations.supported(R_X86_64_NONE));
        var e = assertThrows(DoesNotFitException.class, () -> Relocations.rule(37));
        assertTrue(e.getMessage().contains("not supported"), e.getMessage());
    }
}
