package dev.suture.unwind;

import static dev.suture.unwind.Dwarf.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.elf.SymbolsByAddress;
import java.lang.management.ManagementFactory;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The unwinder on hand-built CFI and stacks: CFI frames, signal frames, PLT expressions, frame pointers, ends. */
class UnwinderTest {
    static final long EH = 0x2000;
    static final long BIAS = 0x7f0000000000L;
    static final long STACK = 0x7ffd0000L;

    // link-time code layout
    static final long LEAF = 0x1000;      // CFA rsp+16 at +4 (after push rbp), rbp at c-16
    static final long CALLER = 0x1100;    // CFA rsp+32, rbx at c-24
    static final long START = 0x1200;     // outermost: RA undefined
    static final long PLT = 0x1300;       // CFA by the PLT expression
    static final long TRAMPOLINE = 0x1400; // signal frame 'S': CFA and registers from a ucontext at rsp
    static final long INTERRUPTED = 0x1500; // FDE starts exactly at the interrupted pc
    static final long BEFORE = 0x14f0;     // FDE that ends where INTERRUPTED begins
    static final long LOOPING = 0x1600;   // CFA = rsp+0, RA at c+0: the same frame forever
    static final long WILD = 0x1700;      // CFA expression dereferences a wild address
    static final long SPIN = 0x1800;      // CFA expression that branches back to itself

    static final int UC_RSP = 160, UC_RIP = 168, UC_RBP = 120; // offsets in the fake ucontext (as glibc's)

    private final CodeMap code = codeMap();

    private static CodeMap codeMap() {
        var b = new CfiBytes(EH);
        int cie = b.standardCie(false);
        int sig = b.standardCie(true);
        b.fde(cie, LEAF, 0x20, CfiBytes.ops().u8(DW_CFA_advance_loc | 4).u8(DW_CFA_def_cfa_offset).uleb(16)
                .u8(DW_CFA_offset | RBP).uleb(2).toBytes());
        b.fde(cie, CALLER, 0x40, CfiBytes.ops().u8(DW_CFA_def_cfa_offset).uleb(32).u8(DW_CFA_offset | 3).uleb(3)
                .toBytes());
        b.fde(cie, START, 0x20, CfiBytes.ops().u8(DW_CFA_undefined).uleb(RA).toBytes());
        byte[] plt = CfiBytes.ops().u8(DW_OP_breg0 + RSP).sleb(8).u8(DW_OP_breg0 + RA).sleb(0).u8(DW_OP_lit0 + 15)
                .u8(DW_OP_and).u8(DW_OP_lit0 + 11).u8(DW_OP_ge).u8(DW_OP_lit0 + 3).u8(DW_OP_shl).u8(DW_OP_plus)
                .toBytes();
        b.fde(cie, PLT, 0x20, CfiBytes.ops().u8(DW_CFA_def_cfa_expression).uleb(plt.length).bytes(plt).toBytes());
        byte[] cfa = CfiBytes.ops().u8(DW_OP_breg0 + RSP).sleb(UC_RSP).u8(DW_OP_deref).toBytes();
        byte[] ra = CfiBytes.ops().u8(DW_OP_breg0 + RSP).sleb(UC_RIP).toBytes();
        byte[] rbp = CfiBytes.ops().u8(DW_OP_breg0 + RSP).sleb(UC_RBP).toBytes();
        // like glibc's __restore_rt: the FDE starts one byte early, at a nop, so pc-1 of the handler's RA hits it
        b.fde(sig, TRAMPOLINE - 1, 0x10, CfiBytes.ops()
                .u8(DW_CFA_def_cfa_expression).uleb(cfa.length).bytes(cfa)
                .u8(DW_CFA_expression).uleb(RA).uleb(ra.length).bytes(ra)
                .u8(DW_CFA_expression).uleb(RBP).uleb(rbp.length).bytes(rbp).toBytes());
        b.fde(cie, BEFORE, 0x10, CfiBytes.ops().u8(DW_CFA_undefined).uleb(RA).toBytes());
        b.fde(cie, INTERRUPTED, 0x10, new byte[0]);
        b.fde(cie, LOOPING, 0x10, CfiBytes.ops().u8(DW_CFA_def_cfa_offset).uleb(0).u8(DW_CFA_offset | RA).uleb(0)
                .toBytes());
        byte[] wild = CfiBytes.ops().u8(DW_OP_const8u).u64(0xdead0000beefL).u8(DW_OP_deref).toBytes();
        b.fde(cie, WILD, 0x10, CfiBytes.ops().u8(DW_CFA_def_cfa_expression).uleb(wild.length).bytes(wild).toBytes());
        byte[] spin = CfiBytes.ops().u8(DW_OP_lit0).u8(DW_OP_skip).u16(-3 & 0xffff).toBytes();
        b.fde(cie, SPIN, 0x10, CfiBytes.ops().u8(DW_CFA_def_cfa_expression).uleb(spin.length).bytes(spin).toBytes());
        var section = CallFrameSection.ehFrame("fake.so", b.build(), EH, b.header(0x1f00), 0x1f00, 0, 0);
        var module = new CodeModule("/lib/fake.so", BIAS, section, null, new SymbolsByAddress(List.of(
                new SymbolsByAddress.Entry("leaf", LEAF, 0x20), new SymbolsByAddress.Entry("caller", CALLER, 0x40))));
        return new CodeMap(List.of(new CodeMap.Range(BIAS + 0x1000, BIAS + 0x2000, module)));
    }

    private static long[] regs(long pc, long sp, long rbp) {
        long[] r = new long[REGISTER_COUNT];
        r[RA] = pc;
        r[RSP] = sp;
        r[RBP] = rbp;
        r[3] = 0x3333;
        return r;
    }

    private FrameBuffer unwind(long[] regs, FakeMemory memory) {
        return unwind(regs, memory.live());
    }

    private FrameBuffer unwind(long[] regs, StackCopy memory) {
        var out = new FrameBuffer(64);
        new Unwinder(code).unwind(regs, memory, out);
        return out;
    }

    @Test
    void cfiFramesToTheOutermost() {
        long sp = STACK;
        var mem = new FakeMemory()
                .put(sp, 0x5555).put(sp + 8, BIAS + CALLER + 0x10)  // leaf: saved rbp, RA
                .put(sp + 16 + 8, 0x4444)                            // caller: saved rbx at c-24 (cfa = sp+16+32)
                .put(sp + 16 + 24, BIAS + START + 5);                // caller's RA
        var out = unwind(regs(BIAS + LEAF + 8, sp, 0x9999), mem.copy(STACK, 256));
        assertEquals(3, out.count());
        assertEquals(BIAS + LEAF + 8, out.pc(0));
        assertEquals(FrameMethod.REGISTERS, out.method(0));
        assertEquals(sp + 16, out.cfa(0));
        assertEquals(BIAS + CALLER + 0x10, out.pc(1));
        assertEquals(sp + 16, out.sp(1));
        assertEquals(FrameMethod.CFI, out.method(1));
        assertEquals(BIAS + START + 5, out.pc(2));
        assertEquals(sp + 48, out.sp(2));
        assertEquals(StackEnd.OUTERMOST, out.end());
        assertEquals(null, out.error());
        assertEquals(0, out.firstFrameIn(BIAS + LEAF, BIAS + LEAF + 0x20));
        assertEquals(1, out.firstFrameIn(BIAS + CALLER, BIAS + CALLER + 0x40));
        assertEquals(2, out.firstFrameIn(BIAS + START, BIAS + START + 0x20));
        assertEquals(-1, out.firstFrameIn(BIAS + CALLER + 0x10, BIAS + CALLER + 0x40),
                "a return address is inside the function its call instruction (pc-1) is in");
    }

    @Test
    void signalFrameAndExactPcAfterIt() {
        long handlerSp = STACK;
        long interruptedSp = STACK + 0x400;
        var mem = new FakeMemory()
                .put(handlerSp, 0x5555).put(handlerSp + 8, BIAS + TRAMPOLINE)  // handler (leaf) returns into __restore_rt
                .put(handlerSp + 16 + UC_RSP, interruptedSp)
                .put(handlerSp + 16 + UC_RIP, BIAS + INTERRUPTED)
                .put(handlerSp + 16 + UC_RBP, 0x7777)
                .put(interruptedSp, BIAS + START + 1);
        var out = unwind(regs(BIAS + LEAF + 8, handlerSp, 0), mem);
        assertEquals(List.of(BIAS + LEAF + 8, BIAS + TRAMPOLINE, BIAS + INTERRUPTED, BIAS + START + 1),
                pcs(out), out.error());
        assertEquals(interruptedSp, out.sp(2));
        // the interrupted frame was looked up at its own pc (INTERRUPTED's FDE), not pc-1 (BEFORE, which would end it)
        assertEquals(StackEnd.OUTERMOST, out.end());
        assertEquals(interruptedSp + 8, out.cfa(2));
    }

    @Test
    void pltExpressionBothHalves() {
        long sp = STACK;
        var mem = new FakeMemory().put(sp, BIAS + START + 1).put(sp + 8, BIAS + START + 2);
        // before the push in the PLT entry (rip & 15 < 11): CFA = rsp + 8
        var early = unwind(regs(BIAS + PLT + 4, sp, 0), mem);
        assertEquals(BIAS + START + 1, early.pc(1));
        assertEquals(sp + 8, early.cfa(0));
        // after it (rip & 15 >= 11): CFA = rsp + 16
        var late = unwind(regs(BIAS + PLT + 12, sp, 0), mem);
        assertEquals(BIAS + START + 2, late.pc(1));
        assertEquals(sp + 16, late.cfa(0));
    }

    @Test
    void framePointerWhereThereIsNoCfi() {
        long sp = STACK;
        long rbp1 = STACK + 0x40;
        long rbp2 = STACK + 0x80;
        var mem = new FakeMemory()
                .put(rbp1, rbp2).put(rbp1 + 8, 0x400100)    // JIT-like code with no module: rbp chain
                .put(rbp2, 0).put(rbp2 + 8, BIAS + START + 3);
        var out = unwind(regs(0x400000, sp, rbp1), mem);
        assertEquals(List.of(0x400000L, 0x400100L, BIAS + START + 3), pcs(out), out.error());
        assertEquals(FrameMethod.FRAME_POINTER, out.method(1));
        assertEquals(FrameMethod.FRAME_POINTER, out.method(2));
        assertEquals(StackEnd.OUTERMOST, out.end());
    }

    @Test
    void hostileFramesEndWithAnErrorOrAStop() {
        var mem = new FakeMemory().put(STACK, BIAS + LOOPING + 2);
        var loop = unwind(regs(BIAS + LOOPING + 2, STACK, 0), mem);
        assertEquals(StackEnd.STACK_NOT_INCREASING, loop.end());
        assertEquals(1, loop.count());

        var wild = unwind(regs(BIAS + WILD + 2, STACK, 0), mem);
        assertEquals(StackEnd.ERROR, wild.end());
        assertTrue(wild.error().contains("#0") && wild.error().contains("dead0000beef"), wild.error());

        var spin = unwind(regs(BIAS + SPIN + 2, STACK, 0), mem);
        assertEquals(StackEnd.ERROR, spin.end());
        assertTrue(spin.error().contains("steps"), spin.error());

        var noFramePointer = unwind(regs(0x400000, STACK, 0), mem);
        assertEquals(StackEnd.ERROR, noFramePointer.end());
        assertTrue(noFramePointer.error().contains("no CFI"), noFramePointer.error());

        var zero = unwind(regs(BIAS + LEAF + 8, STACK, 0), new FakeMemory().put(STACK, 1).put(STACK + 8, 0));
        assertEquals(StackEnd.ZERO_PC, zero.end());
    }

    @Test
    void unwindingAllocatesNothing() {
        long sp = STACK;
        var mem = new FakeMemory()
                .put(sp, 0x5555).put(sp + 8, BIAS + CALLER + 0x10)
                .put(sp + 16 + 8, 0x4444).put(sp + 16 + 24, BIAS + START + 5).copy(STACK, 256);
        var unwinder = new Unwinder(code);
        var out = new FrameBuffer(64);
        long[] regs = regs(BIAS + LEAF + 8, sp, 0x9999);
        var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        for (int i = 0; i < 20_000; i++) {
            unwinder.unwind(regs, mem, out);
        }
        long before = threads.getCurrentThreadAllocatedBytes();
        for (int i = 0; i < 10_000; i++) {
            unwinder.unwind(regs, mem, out);
        }
        long allocated = threads.getCurrentThreadAllocatedBytes() - before;
        assertEquals(3, out.count());
        assertTrue(allocated < 1024, "10,000 unwinds allocated " + allocated + " bytes");
    }

    static List<Long> pcs(FrameBuffer out) {
        var l = new java.util.ArrayList<Long>();
        for (int i = 0; i < out.count(); i++) {
            l.add(out.pc(i));
        }
        return l;
    }
}
