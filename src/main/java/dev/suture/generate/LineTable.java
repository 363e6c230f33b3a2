package dev.suture.generate;

import dev.suture.SutureException;
import dev.suture.elf.Relocation;
import dev.suture.elf.Section;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The DWARF line table of one relocatable object (its {@code .debug_line}, versions 2 to 5): for each code section,
 * the rows of its sequence, an offset in the section and the source line there. In an object the address of each
 * sequence is a relocation (against the section, or a symbol in it), so rows are kept per section. Only what the
 * diff needs is decoded: addresses and lines; the header's file and directory tables are skipped.
 */
final class LineTable {
    /** One row: from {@code offset} in its section on, the code is of source line {@code line}. */
    record Row(long offset, long line) {}

    private static final int DW_LNS_copy = 1, DW_LNS_advance_pc = 2, DW_LNS_advance_line = 3,
            DW_LNS_const_add_pc = 8, DW_LNS_fixed_advance_pc = 9;
    private static final int DW_LNE_end_sequence = 1, DW_LNE_set_address = 2;

    private final Map<Integer, List<Row>> rows;

    private LineTable(Map<Integer, List<Row>> rows) {
        this.rows = rows;
    }

    static final LineTable EMPTY = new LineTable(Map.of());

    /** The rows of the sequence of section {@code section} (empty: the object has no line table for it). */
    List<Row> rows(int section) {
        return rows.getOrDefault(section, List.of());
    }

    /** Decodes {@code .debug_line} of {@code o}; an object without one has an empty table. */
    static LineTable of(ObjectFile o) {
        Section debugLine = o.sections().stream().filter(s -> s.name().equals(".debug_line")).findFirst()
                .orElse(null);
        if (debugLine == null || debugLine.isNobits()) {
            return EMPTY;
        }
        var relocations = new HashMap<Long, Relocation>();
        for (Relocation r : o.relocations(debugLine.index())) {
            relocations.put(r.r_offset(), r);
        }
        var out = new HashMap<Integer, List<Row>>();
        ByteBuffer b = ByteBuffer.wrap(o.bytes(debugLine.index())).order(ByteOrder.LITTLE_ENDIAN);
        try {
            while (b.remaining() >= 4) {
                unit(b, relocations, o, out);
            }
        } catch (RuntimeException e) {
            // A line table this reader does not follow is no table: the diff then keeps every changed function.
            if (e instanceof SutureException) {
                throw e;
            }
            return EMPTY;
        }
        return new LineTable(out);
    }

    /** One line-number program unit, from its header to its end; rows go to {@code out} by section. */
    private static void unit(ByteBuffer b, Map<Long, Relocation> relocations, ObjectFile o,
                             Map<Integer, List<Row>> out) {
        long length = Integer.toUnsignedLong(b.getInt());
        boolean dwarf64 = length == 0xffffffffL;
        if (dwarf64) {
            length = b.getLong();
        }
        int end = Math.toIntExact(b.position() + length);
        if (end > b.limit() || end < b.position()) {
            throw new IllegalArgumentException("line table unit past the end of .debug_line");
        }
        int version = Short.toUnsignedInt(b.getShort());
        if (version < 2 || version > 5) {
            b.position(end);
            return;
        }
        if (version >= 5) {
            b.get();                          // address_size
            b.get();                          // segment_selector_size
        }
        long headerLength = dwarf64 ? b.getLong() : Integer.toUnsignedLong(b.getInt());
        int program = Math.toIntExact(b.position() + headerLength);
        int minimumInstructionLength = Byte.toUnsignedInt(b.get());
        if (version >= 4) {
            b.get();                          // maximum_operations_per_instruction (VLIW only)
        }
        b.get();                              // default_is_stmt
        int lineBase = b.get();
        int lineRange = Byte.toUnsignedInt(b.get());
        int opcodeBase = Byte.toUnsignedInt(b.get());
        int[] standardOpcodeLengths = new int[Math.max(0, opcodeBase - 1)];
        for (int i = 0; i < standardOpcodeLengths.length; i++) {
            standardOpcodeLengths[i] = Byte.toUnsignedInt(b.get());
        }
        if (lineRange == 0 || program > end) {
            throw new IllegalArgumentException("malformed line table header");
        }
        b.position(program);

        int section = -1;
        long address = 0, line = 1;
        while (b.position() < end) {
            int op = Byte.toUnsignedInt(b.get());
            if (op >= opcodeBase) {
                int adjusted = op - opcodeBase;
                address += (long) (adjusted / lineRange) * minimumInstructionLength;
                line += lineBase + adjusted % lineRange;
                emit(out, section, address, line);
                continue;
            }
            switch (op) {
                case 0 -> {
                    long len = uleb(b);
                    int next = Math.toIntExact(b.position() + len);
                    int sub = len == 0 ? -1 : Byte.toUnsignedInt(b.get());
                    if (sub == DW_LNE_end_sequence) {
                        section = -1;
                        address = 0;
                        line = 1;
                    } else if (sub == DW_LNE_set_address) {
                        Relocation r = relocations.get((long) b.position());
                        if (r != null && r.symbol() != null && r.symbol().inSection()) {
                            section = r.symbol().st_shndx();
                            address = r.symbol().st_value() + r.r_addend();
                        } else {
                            section = -1;     // not a place in a section of this object: not a row we can use
                        }
                    }
                    b.position(next);
                }
                case DW_LNS_copy -> emit(out, section, address, line);
                case DW_LNS_advance_pc -> address += uleb(b) * minimumInstructionLength;
                case DW_LNS_advance_line -> line += sleb(b);
                case DW_LNS_const_add_pc -> address += (long) ((255 - opcodeBase) / lineRange) * minimumInstructionLength;
                case DW_LNS_fixed_advance_pc -> address += Short.toUnsignedInt(b.getShort());
                default -> {
                    for (int i = 0; i < standardOpcodeLengths[op - 1]; i++) {
                        uleb(b);
                    }
                }
            }
        }
        b.position(end);
    }

    private static void emit(Map<Integer, List<Row>> out, int section, long address, long line) {
        if (section >= 0) {
            out.computeIfAbsent(section, _ -> new ArrayList<>()).add(new Row(address, line));
        }
    }

    private static long uleb(ByteBuffer b) {
        long result = 0;
        int shift = 0;
        while (true) {
            int x = Byte.toUnsignedInt(b.get());
            if (shift < 64) {
                result |= (long) (x & 0x7f) << shift;
            }
            shift += 7;
            if ((x & 0x80) == 0) {
                return result;
            }
        }
    }

    private static long sleb(ByteBuffer b) {
        long result = 0;
        int shift = 0;
        int x;
        do {
            x = Byte.toUnsignedInt(b.get());
            if (shift < 64) {
                result |= (long) (x & 0x7f) << shift;
            }
            shift += 7;
        } while ((x & 0x80) != 0);
        if (shift < 64 && (x & 0x40) != 0) {
            result |= -1L << shift;
        }
        return result;
    }
}
