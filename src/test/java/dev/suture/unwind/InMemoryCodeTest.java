package dev.suture.unwind;

import static dev.suture.unwind.Dwarf.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

import dev.suture.elf.SymbolsByAddress;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Code that lives only in a process's memory (a patch region, {@link CodeModules#inMemory}): its CFI unwinds when
 * it describes only that code, and is dropped, never thrown on, when it is malformed or describes anything else.
 */
class InMemoryCodeTest {
    // run-time addresses: the region's code, its .eh_frame inside it, and a module's function that calls into it
    static final long CODE = 0x7f5500001000L;
    static final long END = CODE + 0x1000;
    static final long NEW = CODE + 0x40;       // CFA rsp+16 after push rbp at +1, RA at cfa-8
    static final long EH = CODE + 0x800;
    static final long START = 0x401000;        // the caller: outermost
    static final long STACK = 0x7ffd0000L;
    static final List<SymbolsByAddress.Entry> NAMES = List.of(new SymbolsByAddress.Entry("slow", NEW, 0x30));

    private static CfiBytes cfi(long pcBegin, long pcRange) {
        var b = new CfiBytes(EH);
        int cie = b.standardCie(false);
        b.fde(cie, pcBegin, pcRange, CfiBytes.ops().u8(DW_CFA_advance_loc | 1).u8(DW_CFA_def_cfa_offset).uleb(16)
                .u8(DW_CFA_offset | RBP).uleb(2).toBytes());
        return b;
    }

    /** The caller's code, with CFI that ends the unwind there. */
    private static CodeMap.Range caller() {
        var b = new CfiBytes(0x402000);
        int cie = b.standardCie(false);
        b.fde(cie, START, 0x20, CfiBytes.ops().u8(DW_CFA_undefined).uleb(RA).toBytes());
        var section = CallFrameSection.ehFrame("prog", b.build(), 0x402000, null, 0, 0, 0);
        return new CodeMap.Range(START, START + 0x1000, new CodeModule("/usr/bin/prog", 0, section, null,
                new SymbolsByAddress(List.of(new SymbolsByAddress.Entry("main", START, 0x20)))));
    }

    @Test
    void framesInTheCodeAreFoundByItsCfi() {
        var region = CodeModules.inMemory("[patch fix]", CODE, END, cfi(NEW, 0x30).build(), EH, NAMES);
        assertNotNull(region.module().ehFrame());
        var code = new CodeMap(List.of(caller(), region));
        var mem = new FakeMemory().put(STACK, 0x5555).put(STACK + 8, START + 5);
        long[] regs = new long[REGISTER_COUNT];
        regs[RA] = NEW + 8;
        regs[RSP] = STACK;
        regs[RBP] = 0x9999;
        var out = new FrameBuffer(16);
        new Unwinder(code).unwind(regs, mem.copy(STACK, 64), out);
        assertEquals(2, out.count(), String.valueOf(out.error()));
        assertEquals(FrameMethod.CFI, out.method(1));
        assertEquals(START + 5, out.pc(1));
        assertEquals(STACK + 16, out.cfa(0));
        assertEquals(StackEnd.OUTERMOST, out.end());
        var trace = Backtrace.of(1, out, code);
        assertEquals("slow+0x8", trace.frames().get(0).function());
        assertEquals("[patch fix]", trace.frames().get(0).module());
        assertEquals("main+0x5", trace.frames().get(1).function());
    }

    @Test
    void cfiThatDescribesCodeOutsideIsDropped() {
        assertNull(CodeModules.inMemory("x", CODE, END, cfi(CODE - 0x10, 0x30).build(), EH, NAMES).module().ehFrame());
        assertNull(CodeModules.inMemory("x", CODE, END, cfi(END - 0x10, 0x30).build(), EH, NAMES).module().ehFrame());
        assertNull(CodeModules.inMemory("x", CODE, END, cfi(START, 0x20).build(), EH, NAMES).module().ehFrame());
        assertNull(CodeModules.inMemory("x", CODE, END, cfi(NEW, -0x10).build(), EH, NAMES).module().ehFrame());
        // the code's last byte is still its own
        assertNotNull(CodeModules.inMemory("x", CODE, END, cfi(END - 0x30, 0x30).build(), EH, NAMES).module()
                .ehFrame());
    }

    @Test
    void malformedCfiIsDropped() {
        // a CFA program with an opcode DWARF does not define: found only when the program runs
        var b = new CfiBytes(EH);
        int cie = b.standardCie(false);
        b.fde(cie, NEW, 0x30, CfiBytes.ops().u8(DW_CFA_advance_loc | 1).u8(0x3f).toBytes());
        assertNull(CodeModules.inMemory("x", CODE, END, b.build(), EH, NAMES).module().ehFrame());
        // an FDE that points at no CIE
        byte[] bytes = cfi(NEW, 0x30).build();
        int fde = 4 + (int) (bytes[0] & 0xff);
        bytes[fde + 4] = 0x7f;
        assertNull(CodeModules.inMemory("x", CODE, END, bytes, EH, NAMES).module().ehFrame());
        // none at all: the code is still known, by name
        var none = CodeModules.inMemory("x", CODE, END, null, 0, NAMES);
        assertNull(none.module().ehFrame());
        assertEquals("slow", none.module().symbols().lookup(NEW + 4).name());
    }

    @Test
    void fuzzedCfiIsKeptOnlyWhenItStaysInsideTheCode() {
        byte[] good = cfi(NEW, 0x30).build();
        var random = new Random(16);
        for (int round = 0; round < 20000; round++) {
            byte[] bad = good.clone();
            for (int k = 0; k < 1 + random.nextInt(4); k++) {
                bad[random.nextInt(bad.length)] = (byte) random.nextInt(256);
            }
            CallFrameSection kept = CodeModules.inMemory("x", CODE, END, bad, EH, NAMES).module().ehFrame();
            if (kept != null) {
                for (FrameDescriptionEntry fde : kept.entries()) {
                    if (Long.compareUnsigned(fde.pcBegin(), CODE) < 0 || Long.compareUnsigned(fde.pcEnd(), END) > 0) {
                        throw new AssertionError("round " + round + ": kept an FDE for " + fde);
                    }
                }
            }
        }
    }
}
