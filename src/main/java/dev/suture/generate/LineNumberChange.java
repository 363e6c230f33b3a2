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
 * and new values are the old and new line of the same instruction in the objects' DWARF line tables. Anything
 * else (no line table, a different layout, a value no row explains) is a change.
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
        Set<Long> lines = linePairs(o.lines().rows(origSection), p.lines().rows(patchedSection));
        if (lines.isEmpty()) {
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
            if (!lineImmediate(before, after, i, end, lines)) {
                return false;
            }
            differs = true;
            i = end;
        }
        return differs;
    }

    /**
     * The (old line, new line) pairs of the same instructions, each as {@code old << 32 | new}: row by row when both
     * tables have the same rows at the same offsets (the code is laid out alike), else the line each table gives
     * at every offset either has a row for. Pairs of equal lines are left out: they explain no difference.
     */
    static Set<Long> linePairs(List<LineTable.Row> before, List<LineTable.Row> after) {
        var pairs = new HashSet<Long>();
        if (before.isEmpty() || after.isEmpty()) {
            return pairs;
        }
        boolean alike = before.size() == after.size();
        for (int i = 0; alike && i < before.size(); i++) {
            alike = before.get(i).offset() == after.get(i).offset();
        }
        if (alike) {
            for (int i = 0; i < before.size(); i++) {
                add(pairs, before.get(i).line(), after.get(i).line());
            }
            return pairs;
        }
        for (var r : before) {
            add(pairs, r.line(), lineAt(after, r.offset()));
        }
        for (var r : after) {
            add(pairs, lineAt(before, r.offset()), r.line());
        }
        return pairs;
    }

    private static void add(Set<Long> pairs, long before, long after) {
        if (before != after && before > 0 && after > 0 && before <= 0xffffffffL && after <= 0xffffffffL) {
            pairs.add(before << 32 | after);
        }
    }

    /** The line of the last row at or before {@code offset} (0: none). */
    private static long lineAt(List<LineTable.Row> rows, long offset) {
        long line = 0;
        for (var r : rows) {
            if (r.offset() > offset) {
                break;
            }
            line = r.line();
        }
        return line;
    }

    /**
     * Whether the differing bytes {@code [from, to)} lie in one little-endian immediate of 1, 2 or 4 bytes whose
     * old and new values are a line pair.
     */
    private static boolean lineImmediate(byte[] before, byte[] after, int from, int to, Set<Long> lines) {
        for (int width : new int[] {1, 2, 4}) {
            for (int start = Math.max(0, to - width); start <= from && start + width <= before.length; start++) {
                if (start + width < to) {
                    continue;
                }
                long old = value(before, start, width), now = value(after, start, width);
                if (lines.contains(old << 32 | now)) {
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
