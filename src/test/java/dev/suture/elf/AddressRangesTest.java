package dev.suture.elf;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

class AddressRangesTest {
    @Test
    void findsTheRangeHoldingAnAddressUnsigned() {
        long high = 0xffffffffff600000L; // [vsyscall]: negative as a signed long, last by address
        var r = new AddressRanges(new long[] {0x1000, 0x3000, high}, new long[] {0x2000, 0x3010, high + 0x1000});
        assertEquals(-1, r.indexOf(0xfff));
        assertEquals(0, r.indexOf(0x1000));
        assertEquals(0, r.indexOf(0x1fff));
        assertEquals(-1, r.indexOf(0x2000), "ends are exclusive");
        assertEquals(1, r.indexOf(0x300f));
        assertEquals(-1, r.indexOf(0x7fffffffffffL));
        assertEquals(2, r.indexOf(high + 8));
        assertEquals(0x3010, r.endOf(0x3000));
        assertEquals(0, r.endOf(0x2800));
        assertEquals(-1, AddressRanges.EMPTY.indexOf(0));
    }

    @Test
    void floorIsTheLastStartAtOrBelow() {
        long[] starts = {0x10, 0x10, 0x20, 0x40};
        assertEquals(-1, AddressRanges.floor(starts, 4, 0xf));
        assertEquals(1, AddressRanges.floor(starts, 4, 0x10));
        assertEquals(2, AddressRanges.floor(starts, 4, 0x3f));
        assertEquals(3, AddressRanges.floor(starts, 4, -1L));
        assertEquals(2, AddressRanges.floor(starts, 3, -1L), "only the first count starts");
    }

    @Test
    void unsortedStartsAreRefused() {
        assertThrows(IllegalArgumentException.class,
                () -> new AddressRanges(new long[] {0x20, 0x10}, new long[] {0x30, 0x18}));
    }
}
