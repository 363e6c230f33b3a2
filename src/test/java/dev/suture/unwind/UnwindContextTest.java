package dev.suture.unwind;

import static dev.suture.unwind.Dwarf.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class UnwindContextTest {
    static final long EH = 0x2000;
    static final long TEXT = 0x1000;

    private static CallFrameSection section(CfiBytes b, boolean withHeader) {
        long hdrAddress = 0x1f00;
        return CallFrameSection.ehFrame("test", b.build(), b.address(), withHeader ? b.header(hdrAddress) : null,
                hdrAddress, 0, 0);
    }

    private static UnwindContext rowAt(CallFrameSection s, long pc) {
        var fde = s.find(pc);
        assertNotNull(fde, "FDE for 0x" + Long.toHexString(pc));
        var c = new UnwindContext();
        c.evaluate(s, fde, pc);
        return c;
    }

    @Test
    void nestedRememberStateIsAStack() {
        var b = new CfiBytes(EH);
        int cie = b.standardCie(false);
        b.fde(cie, TEXT, 0x10, CfiBytes.ops()
                .u8(DW_CFA_advance_loc | 1).u8(DW_CFA_def_cfa_offset).uleb(16).u8(DW_CFA_offset | RBP).uleb(2)
                .u8(DW_CFA_advance_loc | 1).u8(DW_CFA_remember_state)
                .u8(DW_CFA_def_cfa_offset).uleb(24).u8(DW_CFA_offset | 3).uleb(3)
                .u8(DW_CFA_advance_loc | 1).u8(DW_CFA_remember_state)
                .u8(DW_CFA_def_cfa).uleb(RBP).uleb(32).u8(DW_CFA_offset | 12).uleb(4)
                .u8(DW_CFA_advance_loc | 1).u8(DW_CFA_restore_state)
                .u8(DW_CFA_advance_loc | 1).u8(DW_CFA_restore_state)
                .u8(DW_CFA_advance_loc | 1).u8(DW_CFA_restore | RBP)
                .toBytes());
        var s = section(b, true);
        assertEquals(new CfaRule.RegisterAndOffset(RSP, 8), rowAt(s, TEXT).cfa());
        assertEquals(new RegisterRule.Offset(-8), rowAt(s, TEXT).rule(RA));
        var at1 = rowAt(s, TEXT + 1);
        assertEquals(new CfaRule.RegisterAndOffset(RSP, 16), at1.cfa());
        assertEquals(new RegisterRule.Offset(-16), at1.rule(RBP));
        var at3 = rowAt(s, TEXT + 3);
        assertEquals(new CfaRule.RegisterAndOffset(RBP, 32), at3.cfa());
        assertEquals(new RegisterRule.Offset(-24), at3.rule(3));
        assertEquals(new RegisterRule.Offset(-32), at3.rule(12));
        var at4 = rowAt(s, TEXT + 4); // inner restore: back to the second remembered state
        assertEquals(new CfaRule.RegisterAndOffset(RSP, 24), at4.cfa());
        assertEquals(new RegisterRule.Offset(-24), at4.rule(3));
        assertEquals(new RegisterRule.SameValue(), at4.rule(12));
        var at5 = rowAt(s, TEXT + 5); // outer restore: the first remembered state
        assertEquals(new CfaRule.RegisterAndOffset(RSP, 16), at5.cfa());
        assertEquals(new RegisterRule.SameValue(), at5.rule(3));
        assertEquals(new RegisterRule.Offset(-16), at5.rule(RBP));
        var at6 = rowAt(s, TEXT + 6); // DW_CFA_restore: the CIE's rule (none for rbp)
        assertEquals(new RegisterRule.SameValue(), at6.rule(RBP));
        assertEquals(new RegisterRule.Offset(-8), at6.rule(RA));
    }

    @Test
    void everyRuleKindAndExtendedOp() {
        var b = new CfiBytes(EH);
        int cie = b.standardCie(false);
        byte[] expr = CfiBytes.ops().u8(DW_OP_breg0 + RSP).sleb(8).toBytes();
        b.fde(cie, TEXT, 0x100, CfiBytes.ops()
                .u8(DW_CFA_advance_loc1).u8(0x10)
                .u8(DW_CFA_undefined).uleb(0)
                .u8(DW_CFA_same_value).uleb(3)
                .u8(DW_CFA_register).uleb(12).uleb(13)
                .u8(DW_CFA_val_offset).uleb(14).uleb(2)
                .u8(DW_CFA_val_offset_sf).uleb(15).sleb(-1)
                .u8(DW_CFA_offset_extended).uleb(1).uleb(3)
                .u8(DW_CFA_offset_extended_sf).uleb(2).sleb(-4)
                .u8(DW_CFA_GNU_negative_offset_extended).uleb(4).uleb(5)
                .u8(DW_CFA_expression).uleb(5).uleb(expr.length).bytes(expr)
                .u8(DW_CFA_val_expression).uleb(8).uleb(expr.length).bytes(expr)
                .u8(DW_CFA_def_cfa_sf).uleb(RBP).sleb(-2)
                .u8(DW_CFA_GNU_args_size).uleb(32)
                .u8(DW_CFA_offset_extended).uleb(40).uleb(1) // xmm register: parsed, dropped
                .u8(DW_CFA_advance_loc2).u16(0x10)
                .u8(DW_CFA_def_cfa_offset_sf).sleb(-3)
                .u8(DW_CFA_restore_extended).uleb(1)
                .u8(DW_CFA_advance_loc4).u32(0x10)
                .u8(DW_CFA_def_cfa_expression).uleb(expr.length).bytes(expr)
                .u8(DW_CFA_nop)
                .toBytes());
        var s = section(b, false);
        var r = rowAt(s, TEXT + 0x10);
        assertEquals(new RegisterRule.Undefined(), r.rule(0));
        assertEquals(new RegisterRule.SameValue(), r.rule(3));
        assertEquals(new RegisterRule.Register(13), r.rule(12));
        assertEquals(new RegisterRule.ValOffset(-16), r.rule(14));
        assertEquals(new RegisterRule.ValOffset(8), r.rule(15));
        assertEquals(new RegisterRule.Offset(-24), r.rule(1));
        assertEquals(new RegisterRule.Offset(32), r.rule(2));
        assertEquals(new RegisterRule.Offset(40), r.rule(4));
        assertTrue(r.rule(5) instanceof RegisterRule.Expression e && e.end() - e.start() == expr.length);
        assertTrue(r.rule(8) instanceof RegisterRule.ValExpression e && e.end() - e.start() == expr.length);
        assertEquals(new CfaRule.RegisterAndOffset(RBP, 16), r.cfa());
        assertEquals(32, r.argsSize());
        var r2 = rowAt(s, TEXT + 0x20);
        assertEquals(new CfaRule.RegisterAndOffset(RBP, 24), r2.cfa());
        assertEquals(new RegisterRule.SameValue(), r2.rule(1), "restore_extended to the CIE's (no) rule");
        assertTrue(rowAt(s, TEXT + 0x30).cfa() instanceof CfaRule.Expression);
        assertEquals(new CfaRule.RegisterAndOffset(RSP, 8), rowAt(s, TEXT + 0xf).cfa());
    }

    @Test
    void oneContextForFdesOfTwoCies() {
        var b = new CfiBytes(EH);
        int cie = b.standardCie(false);
        int other = b.cie("zR", new byte[] {0x1b}, 1, -8, 16, CfiBytes.ops().u8(DW_CFA_def_cfa).uleb(RBP).uleb(16)
                .u8(DW_CFA_offset | RA).uleb(1).u8(DW_CFA_offset | RBP).uleb(2).toBytes());
        b.fde(cie, TEXT, 0x10, CfiBytes.ops().u8(DW_CFA_def_cfa_offset).uleb(16).u8(DW_CFA_offset | RBP).uleb(2)
                .toBytes());
        b.fde(cie, TEXT + 0x10, 0x10, new byte[0]);
        b.fde(other, TEXT + 0x20, 0x10, CfiBytes.ops().u8(DW_CFA_offset | RBP).uleb(3)
                .u8(DW_CFA_advance_loc | 1).u8(DW_CFA_restore | RBP).toBytes());
        var s = section(b, true);
        var c = new UnwindContext();
        for (int round = 0; round < 2; round++) {
            c.evaluate(s, s.find(TEXT), TEXT);
            assertEquals(new RegisterRule.Offset(-16), c.rule(RBP));
            c.evaluate(s, s.find(TEXT + 0x10), TEXT + 0x10);
            assertEquals(new CfaRule.RegisterAndOffset(RSP, 8), c.cfa(), "the CIE's row, not the last FDE's");
            assertEquals(new RegisterRule.SameValue(), c.rule(RBP));
            assertEquals(new RegisterRule.Offset(-8), c.rule(RA));
            c.evaluate(s, s.find(TEXT + 0x20), TEXT + 0x20);
            assertEquals(new CfaRule.RegisterAndOffset(RBP, 16), c.cfa(), "the other CIE's row");
            assertEquals(new RegisterRule.Offset(-24), c.rule(RBP));
            c.evaluate(s, s.find(TEXT + 0x20), TEXT + 0x21);
            assertEquals(new RegisterRule.Offset(-16), c.rule(RBP), "DW_CFA_restore: the other CIE's rule");
        }
    }

    @Test
    void aCieThatMovesTheLocationIsRunForEachFde() {
        var b = new CfiBytes(EH);
        // the CIE is the first entry: its DW_CFA_set_loc operand (pcrel sdata4) sits 4 + 14 bytes into the section
        long setLocField = EH + 4 + 14;
        int cie = b.cie("zR", new byte[] {0x1b}, 1, -8, 16, CfiBytes.ops().u8(DW_CFA_set_loc)
                .u32((TEXT + 0x10 - setLocField) & 0xffffffffL).u8(DW_CFA_def_cfa).uleb(RSP).uleb(8)
                .u8(DW_CFA_offset | RA).uleb(1).toBytes());
        b.fde(cie, TEXT, 0x10, new byte[0]);
        b.fde(cie, TEXT + 0x20, 0x10, new byte[0]);
        var s = section(b, true);
        var c = new UnwindContext();
        c.evaluate(s, s.find(TEXT), TEXT);
        assertEquals(new RegisterRule.Offset(-8), c.rule(RA));
        var e = assertThrows(UnwindException.class, () -> c.evaluate(s, s.find(TEXT + 0x20), TEXT + 0x20));
        assertTrue(e.getMessage().contains("moves backwards"), e.getMessage());
    }

    @Test
    void headerAndScannedIndexAgree() {
        var b = new CfiBytes(EH);
        int cie = b.standardCie(false);
        int signal = b.standardCie(true);
        for (int i = 9; i >= 0; i--) { // out of address order on purpose
            b.fde(i % 2 == 0 ? cie : signal, TEXT + i * 0x40L, 0x30, new byte[0]);
        }
        var withHdr = section(b, true);
        var scanned = section(b, false);
        assertTrue(withHdr.indexedByHeader());
        assertTrue(!scanned.indexedByHeader());
        assertEquals(10, withHdr.size());
        assertEquals(10, scanned.size());
        for (long pc = TEXT - 8; pc < TEXT + 0x300; pc += 4) {
            var a = withHdr.find(pc);
            var c = scanned.find(pc);
            assertEquals(a == null ? null : a.pcBegin(), c == null ? null : c.pcBegin(), "pc 0x" + Long.toHexString(pc));
            if (a != null) {
                assertEquals((pc - TEXT) / 0x40 % 2 == 1, a.cie().signalFrame());
            }
        }
        assertNull(withHdr.find(TEXT + 0x35), "gap between FDEs");
    }

    @Test
    void pointerEncodingsAndAugmentations() {
        var b = new CfiBytes(EH);
        // zPLR: personality indirect|pcrel|sdata4, LSDA pcrel|sdata4, FDE pointers udata8 (absolute)
        byte[] aug = CfiBytes.ops().u8(0x9b).u32(0x1234).u8(0x1b).u8(0x04).toBytes();
        int cie = b.cie("zPLR", aug, 1, -8, 16, new byte[0]);
        var fdeBody = new CfiBytes.Out();
        int fdeOffset = b.build().length - 4;
        fdeBody.u32(fdeOffset + 4 - cie).u64(0x5000).u64(0x20).uleb(4).u32(0x100);
        b.entry(fdeBody);
        // z with uleb128 and udata2 encodings
        int cie2 = b.cie("zR", new byte[] {0x01}, 4, -8, 16, new byte[0]);
        var f2 = new CfiBytes.Out();
        int f2Offset = b.build().length - 4;
        f2.u32(f2Offset + 4 - cie2).uleb(0x6000).uleb(0x10).uleb(0);
        b.entry(f2);
        int cie3 = b.cie("zR", new byte[] {0x0a}, 1, -8, 16, new byte[0]); // sdata2
        var f3 = new CfiBytes.Out();
        int f3Offset = b.build().length - 4;
        f3.u32(f3Offset + 4 - cie3).u16(0x7000).u16(0x10).uleb(0);
        b.entry(f3);
        var s = section(b, false);
        var fde = s.find(0x5010);
        assertNotNull(fde);
        assertEquals(0x5000, fde.pcBegin());
        assertEquals("zPLR", fde.cie().augmentation());
        assertEquals(EH + cie + 4 + 4 + 1 + 5 + 3 + 1 + 1 + 0x1234, fde.cie().personality(),
                "pcrel personality resolved from its field's address");
        assertTrue(fde.lsda() != 0);
        assertEquals(0x6000, s.find(0x6004).pcBegin());
        assertEquals(4, s.find(0x6004).cie().codeAlignmentFactor());
        assertEquals(0x7000, s.find(0x700f).pcBegin());
        assertNull(s.find(0x7010));
    }

    @Test
    void debugFrameUsesSectionOffsets() {
        var o = new CfiBytes.Out();
        // CIE: length, id 0xffffffff, version 4, "", address size 8, seg 0, caf 1, daf -8, RA 16, def_cfa rsp+8
        var cie = new CfiBytes.Out().u32(0xffffffffL).u8(4).u8(0).u8(8).u8(0).uleb(1).sleb(-8).uleb(16)
                .u8(DW_CFA_def_cfa).uleb(7).uleb(8).u8(DW_CFA_offset | 16).uleb(1);
        o.u32(cie.size()).bytes(cie.toBytes());
        var fde = new CfiBytes.Out().u32(0).u64(0x4000).u64(0x40)
                .u8(DW_CFA_advance_loc | 4).u8(DW_CFA_def_cfa_offset).uleb(16);
        o.u32(fde.size()).bytes(fde.toBytes());
        var s = CallFrameSection.debugFrame("test", o.toBytes());
        assertEquals(1, s.size());
        var c = new UnwindContext();
        c.evaluate(s, s.find(0x4008), 0x4008);
        assertEquals(new CfaRule.RegisterAndOffset(RSP, 16), c.cfa());
    }

    @Test
    void runawayProgramsAreErrors() {
        var b = new CfiBytes(EH);
        int cie = b.standardCie(false);
        var unbalanced = CfiBytes.ops().u8(DW_CFA_restore_state).toBytes();
        b.fde(cie, TEXT, 0x10, unbalanced);
        var deep = CfiBytes.ops();
        for (int i = 0; i < UnwindContext.MAX_STATES + 1; i++) {
            deep.u8(DW_CFA_remember_state);
        }
        b.fde(cie, TEXT + 0x10, 0x10, deep.toBytes());
        var longProgram = CfiBytes.ops();
        for (int i = 0; i < UnwindContext.MAX_OPS + 10; i++) {
            longProgram.u8(DW_CFA_same_value).u8(3);
        }
        b.fde(cie, TEXT + 0x20, 0x10, longProgram.toBytes());
        b.fde(cie, TEXT + 0x30, 0x10, CfiBytes.ops().u8(0x3f).toBytes()); // unknown opcode
        b.fde(cie, TEXT + 0x40, 0x10, CfiBytes.ops().u8(DW_CFA_expression).uleb(3).uleb(1000).toBytes());
        var s = section(b, true);
        for (long pc = TEXT; pc < TEXT + 0x50; pc += 0x10) {
            long at = pc;
            var e = assertThrows(UnwindException.class, () -> rowAt(s, at));
            assertTrue(e.getMessage().contains("test .eh_frame"), e.getMessage());
        }
    }
}
