package dev.suture.unwind;

import dev.suture.elf.SymbolsByAddress;
import java.util.ArrayList;
import java.util.List;

/** The symbolized frames of one thread, why they end there, and the error that ended them (or null). */
public record Backtrace(int tid, List<Frame> frames, StackEnd end, String error) {

    /**
     * Symbolizes raw frames against {@code code}. The function of a return address is looked up at pc-1 (the call
     * instruction), as debuggers do, except for frame #0 and frames interrupted by a signal.
     */
    public static Backtrace of(int tid, FrameBuffer raw, CodeMap code) {
        var frames = new ArrayList<Frame>(raw.count());
        for (int i = 0; i < raw.count(); i++) {
            long pc = raw.pc(i);
            long lookup = raw.exactPc(i) ? pc : pc - 1;
            CodeModule m = code.moduleAt(lookup);
            String module = null;
            String symbol = null;
            long offset = 0;
            if (m != null) {
                module = m.name();
                SymbolsByAddress.Hit hit = m.symbols().lookup(lookup - m.loadBias());
                if (hit != null) {
                    symbol = hit.name();
                    offset = pc - (lookup - hit.offset());
                }
            }
            // the frame after a signal trampoline is the interrupted one, whose pc is exact
            boolean trampoline = i + 1 < raw.count() && raw.exactPc(i + 1);
            frames.add(new Frame(i, pc, raw.sp(i), raw.cfa(i), module, symbol, offset, raw.method(i), trampoline));
        }
        return new Backtrace(tid, List.copyOf(frames), raw.end(), raw.error());
    }
}
