package dev.suture.generate;

import dev.suture.elf.Relocation;
import dev.suture.elf.Section;
import dev.suture.generate.Differ.Pair;

import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * Part of phase 3 of the diff: whether a function changed only in line numbers. A fix that adds lines shifts
 * {@code __LINE__} in every later function that uses it (assert, logging macros); such a function means what it
 * meant, and replacing it would only add code to the patch and places a thread may be busy in. The proof: the two
 * sections are the same size with the same relocations, and every byte that differs lies in an immediate whose old
 * and new values are the old and new line of the very instruction that holds it, in the objects' DWARF line
 * tables. Anything else (no line table, a different layout, a value that is not its instruction's line) is a
 * change.
 */
final class LineNumberChange {
    private LineNumberChange() {}

    /** Whether the original and patched sections differ only in immediates that are line numbers. */
    static boolean only(Pair pair, int origSection, int patchedSection) {
        ObjectFile o = pair.original(), p = pair.patched();
        Section os = o.section(origSection), ps = p.section(patchedSection);
        if (os.sh_type() != ps.sh_type() || os.sh_size() != ps.sh_size() || os.isNobits()) {
            return false;
        }
        var orel = o.relocations(origSection);
        var prel = p.relocations(patchedSection);
        if (orel.size() != prel.size()) {
            return false;
        }
        for (int i = 0; i < orel.size(); i++) {
            Relocation a = orel.get(i), b = prel.get(i);
            if (a.r_offset() != b.r_offset() || a.type() != b.type()
                    || !Differ.sameReference(pair, Reference.of(o, a), Reference.of(p, b), 0)) {
                return false;
            }
        }
        var oldRows = o.lines().rows(origSection);
        var newRows = p.lines().rows(patchedSection);
        if (oldRows.isEmpty() || newRows.isEmpty()) {
            return false;
        }
        byte[] before = Differ.masked(o, origSection), after = Differ.masked(p, patchedSection);
        boolean differs = false;
        for (int i = 0; i < before.length; ) {
            if (before[i] == after[i]) {
                i++;
                continue;
            }
            int end = i;
            while (end < before.length && before[end] != after[end]) {
                end++;
            }
            if (!lineImmediate(before, after, i, end, oldRows, newRows)) {
                return false;
            }
            differs = true;
            i = end;
        }
        return differs;
    }

    /** The lines of the rows at the last row offset at or before {@code offset}: the instruction there. */
    private static Set<Long> linesAt(List<LineTable.Row> rows, long offset) {
        long at = -1;
        for (var r : rows) {
            if (r.offset() <= offset) {
                at = Math.max(at, r.offset());
            }
        }
        var lines = new HashSet<Long>();
        for (var r : rows) {
            if (r.offset() == at) {
                lines.add(r.line());
            }
        }
        return lines;
    }

    /**
     * Whether the differing bytes {@code [from, to)} lie in one little-endian immediate of 1, 2 or 4 bytes whose old
     * and new values are the line the old and the new line table give for the instruction that holds it.
     */
    private static boolean lineImmediate(byte[] before, byte[] after, int from, int to,
                                         List<LineTable.Row> oldRows, List<LineTable.Row> newRows) {
        for (int width : new int[] {1, 2, 4}) {
            for (int start = Math.max(0, to - width); start <= from && start + width <= before.length; start++) {
                long old = value(before, start, width), now = value(after, start, width);
                if (old != now && linesAt(oldRows, start).contains(old) && linesAt(newRows, start).contains(now)) {
                    return true;
                }
            }
        }
        return false;
    }

    private static long value(byte[] b, int at, int width) {
        long v = 0;
        for (int i = width - 1; i >= 0; i--) {
            v = v << 8 | (b[at + i] & 0xff);
        }
        return v;
    }
}
