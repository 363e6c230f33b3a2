package dev.suture.x86;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.testing.Gcc;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The thunks {@link FarAccess} makes, read back by objdump. */
class FarAccessTest {
    @TempDir
    Path dir;

    private static byte[] hex(String s) {
        return HexFormat.of().parseHex(s.replace(" ", ""));
    }

    /** The rewrite of the one instruction in {@code code}, its relocated field at {@code field}. */
    private static FarAccess.Rewrite rewrite(String code, int field, long addend, boolean pcRelative) {
        byte[] b = hex(code);
        return FarAccess.rewrite(b, Decoder.decode(b, 0, b.length), field, addend, pcRelative);
    }

    private String objdump(byte[] bytes) throws Exception {
        Path raw = Files.write(dir.resolve("thunk.bin"), bytes);
        return Gcc.run(dir, "objdump", "-D", "-b", "binary", "-mi386:x86-64", "-w", raw.toString());
    }

    /** Asserts the thunk saves the scratch register below the red zone and does {@code expected} with it. */
    private void assertThunk(FarAccess.Rewrite w, String scratch, String expected) throws Exception {
        String text = objdump(w.thunk());
        assertTrue(text.contains("lea    -0x80(%rsp),%rsp"), text);
        assertTrue(text.contains("push   %" + scratch), text);
        assertTrue(text.contains("mov    0x0(%rip),%" + scratch), text);
        assertTrue(text.contains(expected), text);
        assertTrue(text.contains("pop    %" + scratch), text);
        assertTrue(text.contains("lea    0x80(%rsp),%rsp"), text);
        assertEquals((byte) 0xe9, w.thunk()[w.backField() - 1]);
        assertEquals(w.thunk().length, w.backField() + 4);
        assertEquals(0, w.thunk()[w.gotField()]);
    }

    @Test
    void loadsStoresArithmeticAndSseKeepTheirOperands() throws Exception {
        assertThunk(rewrite("8b 05 00000000", 2, -4, true), "rbx", "mov    0x0(%rbx),%eax");
        assertThunk(rewrite("48 8b 3d 00000000", 3, -4, true), "rbx", "mov    0x0(%rbx),%rdi");
        assertThunk(rewrite("48 8b 1d 00000000", 3, -4, true), "rsi", "mov    0x0(%rsi),%rbx");
        assertThunk(rewrite("89 05 00000000", 2, -4, true), "rbx", "mov    %eax,0x0(%rbx)");
        assertThunk(rewrite("83 05 00000000 01", 2, -5, true), "rbx", "addl   $0x1,0x0(%rbx)");
        assertThunk(rewrite("83 3d 00000000 0c", 2, -5, true), "rbx", "cmpl   $0xc,0x0(%rbx)");
        assertThunk(rewrite("48 8d 15 00000000", 3, -4, true), "rbx", "lea    0x0(%rbx),%rdx");
        assertThunk(rewrite("f2 0f 10 05 00000000", 4, -4, true), "rbx", "movsd  0x0(%rbx),%xmm0");
        assertThunk(rewrite("c5 fb 11 0d 00000000", 4, -4, true), "rbx", "vmovsd %xmm1,0x0(%rbx)");
        // REX.B means nothing for a rip-relative operand, and would make the new base r11: cleared, the REX kept
        // (with one, a byte register 4-7 is spl-dil, without it ah-bh)
        assertThunk(rewrite("41 8b 05 00000000", 3, -4, true), "rbx", "rex mov 0x0(%rbx),%eax");
        // r11 (REX.R) is not rbx
        assertThunk(rewrite("4c 8b 1d 00000000", 3, -4, true), "rbx", "mov    0x0(%rbx),%r11");
        // cmpxchg8b uses rbx itself
        assertThunk(rewrite("0f c7 0d 00000000", 3, -4, true), "rsi", "cmpxchg8b 0x0(%rsi)");
        // an offset into the variable (stderr+8) and an immediate after the displacement (movl $7, x+4(%rip))
        assertThunk(rewrite("8b 05 00000000", 2, 4, true), "rbx", "mov    0x8(%rbx),%eax");
        assertThunk(rewrite("c7 05 00000000 07000000", 2, -4, true), "rbx", "movl   $0x7,0x4(%rbx)");
        // a non-PIE indexed access, tbl(,%rax,4) with R_X86_64_32S: the index stays, the scratch is the base
        assertThunk(rewrite("8b 34 85 00000000", 3, 0, false), "rbx", "mov    0x0(%rbx,%rax,4),%esi");
        assertThunk(rewrite("8b 1c 9d 00000000", 3, 0, false), "rsi", "mov    0x0(%rsi,%rbx,4),%ebx");
    }

    @Test
    void theSiteJumpsToTheThunkAndKeepsItsLength() throws Exception {
        var w = rewrite("83 05 00000000 01", 2, -5, true);
        assertEquals(7, w.site().length);
        assertEquals((byte) 0xe9, w.site()[0]);
        assertEquals(1, w.siteField());
        String text = objdump(w.site());
        assertTrue(text.matches("(?s).*0:\\s+e9 00 00 00 00\\s+jmp.*5:\\s+66 90\\s+xchg.*"), text);
    }

    @Test
    void callsThroughAVariableJumpThroughR11() throws Exception {
        var w = rewrite("ff 15 00000000", 2, -4, true);
        assertEquals((byte) 0xe8, w.site()[0]);
        assertEquals(-1, w.backField());
        String text = objdump(w.thunk());
        assertTrue(text.contains("mov    0x0(%rip),%r11"), text);
        assertTrue(text.contains("jmp    *0x0(%r11)"), text);
        var tail = rewrite("ff 25 00000000", 2, -4, true);
        assertEquals((byte) 0xe9, tail.site()[0]);
    }

    @Test
    void theAddressOfAVariableIsLoadedIntoItsRegister() throws Exception {
        var w = rewrite("bf 00000000", 1, 0, false); // mov $environ,%edi
        String text = objdump(w.thunk());
        assertTrue(text.contains("mov    0x0(%rip),%rdi"), text);
        assertEquals(5, w.site().length);
        var r = rewrite("49 c7 c4 00000000", 3, 16, false); // mov $x+16,%r12
        text = objdump(r.thunk());
        assertTrue(text.contains("mov    0x0(%rip),%r12"), text);
        assertTrue(text.contains("lea    0x10(%r12),%r12"), text);
    }

    @Test
    void refusesWhatItCannotRewrite() {
        var push = assertThrows(DoesNotFitException.class, () -> rewrite("ff 35 00000000", 2, -4, true));
        assertTrue(push.getMessage().contains("ff 35 00 00 00 00"), push.getMessage());
        assertThrows(DoesNotFitException.class, () -> rewrite("8b 25 00000000", 2, -4, true)); // into %esp
        assertThrows(DoesNotFitException.class, () -> rewrite("68 00000000", 1, 0, false)); // push $x
        assertThrows(DoesNotFitException.class, () -> rewrite("62 f1 7c 48 10 05 00000000", 6, -4, true)); // EVEX
        assertThrows(DoesNotFitException.class, () -> rewrite("8b 05 00000000", 2, -4, false)); // wrong relocation
    }
}
