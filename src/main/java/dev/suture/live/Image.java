package dev.suture.live;

import java.util.List;

/**
 * A patch bound to one process at one address: the region's bytes (the header part left zero for the transaction
 * to fill), where its parts lie, and the jumps to install.
 */
record Image(long base, byte[] bytes, RegionHeader.Layout layout, int headerSize, List<Entry> entries,
             List<Range> replacedCode) {

    /** A function whose entry gets a {@code jmp rel32} to its replacement. */
    record Entry(String name, long oldAddress, int oldSize, long newAddress, int newSize) {}

    /** Code a thread must not be in (or return into) while the jumps are written: replaced functions and parts. */
    record Range(String name, long start, long end) {
        boolean contains(long pc) {
            return Long.compareUnsigned(pc, start) >= 0 && Long.compareUnsigned(pc, end) < 0;
        }
    }

    long size() {
        return bytes.length;
    }

    /** Read-only part: header, text, jump table, GOT. */
    int readOnlySize() {
        return layout.dataOffset();
    }
}
