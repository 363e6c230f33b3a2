package dev.suture.elf;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import org.junit.jupiter.api.Test;

/** What the GNU property note says, as inspect shows it. */
class NoteTest {
    @Test
    void gnuPropertiesDescribeThemselves() {
        var desc = ByteBuffer.allocate(5 * 16).order(ByteOrder.LITTLE_ENDIAN);
        property(desc, ElfConstants.GNU_PROPERTY_X86_FEATURE_1_AND, 3);
        property(desc, ElfConstants.GNU_PROPERTY_X86_FEATURE_1_AND, 0);
        property(desc, ElfConstants.GNU_PROPERTY_X86_ISA_1_NEEDED, 0x12);
        property(desc, ElfConstants.GNU_PROPERTY_STACK_SIZE, 4096);
        property(desc, 0x7777, 1);
        var note = new Note("GNU", ElfConstants.NT_GNU_PROPERTY_TYPE_0, desc.array());
        assertEquals(List.of("x86 feature: IBT, SHSTK", "x86 feature: none", "x86 ISA needed: x86-64-v2, 0x10",
                "stack size: 4096", "property 0x7777"),
                note.gnuProperties().stream().map(Note.GnuProperty::describe).toList());
    }

    /** One 8-byte-aligned property: pr_type, pr_datasz 4, a 32-bit value, padding. */
    private static void property(ByteBuffer b, int type, int value) {
        b.putInt(type).putInt(4).putInt(value).putInt(0);
    }
}
