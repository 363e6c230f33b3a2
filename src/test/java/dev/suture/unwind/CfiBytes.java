package dev.suture.unwind;

import java.io.ByteArrayOutputStream;
import java.util.ArrayList;
import java.util.List;

/** Builds .eh_frame and .eh_frame_hdr bytes by hand for tests: CIEs, FDEs and their CFA programs. */
final class CfiBytes {
    /** Little-endian byte writer with LEB128. */
    static final class Out {
        final ByteArrayOutputStream b = new ByteArrayOutputStream();

        Out u8(int v) {
            b.write(v);
            return this;
        }

        Out u16(int v) {
            return u8(v & 0xff).u8(v >>> 8 & 0xff);
        }

        Out u32(long v) {
            return u16((int) (v & 0xffff)).u16((int) (v >>> 16 & 0xffff));
        }

        Out u64(long v) {
            return u32(v & 0xffffffffL).u32(v >>> 32);
        }

        Out uleb(long v) {
            do {
                int x = (int) (v & 0x7f);
                v >>>= 7;
                b.write(v != 0 ? x | 0x80 : x);
            } while (v != 0);
            return this;
        }

        Out sleb(long v) {
            while (true) {
                int x = (int) (v & 0x7f);
                v >>= 7;
                boolean done = (v == 0 && (x & 0x40) == 0) || (v == -1 && (x & 0x40) != 0);
                b.write(done ? x : x | 0x80);
                if (done) {
                    return this;
                }
            }
        }

        Out bytes(byte[] x) {
            b.writeBytes(x);
            return this;
        }

        int size() {
            return b.size();
        }

        byte[] toBytes() {
            return b.toByteArray();
        }
    }

    /** A CFA program or expression. */
    static Out ops() {
        return new Out();
    }

    private final long address;
    private final Out section = new Out();
    private final List<long[]> table = new ArrayList<>(); // {pcBegin, fdeOffset}

    CfiBytes(long address) {
        this.address = address;
    }

    /** Appends a CIE; {@code augData} follows the 'z' length. Returns its offset. */
    int cie(String augmentation, byte[] augData, long codeAlign, long dataAlign, int ra, byte[] instructions) {
        var body = new Out().u32(0).u8(1);
        for (char c : augmentation.toCharArray()) {
            body.u8(c);
        }
        body.u8(0).uleb(codeAlign).sleb(dataAlign).u8(ra);
        if (augmentation.startsWith("z")) {
            body.uleb(augData.length).bytes(augData);
        }
        body.bytes(instructions);
        return entry(body);
    }

    /** The usual gcc CIE: "zR", pcrel|sdata4, caf 1, daf -8, RA 16, CFA = rsp+8, RA at cfa-8. */
    int standardCie(boolean signal) {
        return cie(signal ? "zRS" : "zR", new byte[] {0x1b}, 1, -8, 16,
                ops().u8(Dwarf.DW_CFA_def_cfa).uleb(7).uleb(8).u8(Dwarf.DW_CFA_offset | 16).uleb(1).toBytes());
    }

    /** Appends an FDE with pcrel|sdata4 pointers (for a 'zR' 0x1b CIE). */
    int fde(int cie, long pcBegin, long pcRange, byte[] instructions) {
        int offset = section.size();
        var body = new Out();
        body.u32(offset + 4 - cie);
        long fieldAddress = address + offset + 8;
        body.u32(pcBegin - fieldAddress).u32(pcRange).uleb(0).bytes(instructions);
        table.add(new long[] {pcBegin, offset});
        return entry(body);
    }

    /** Appends a raw entry body (after the length). */
    int entry(Out body) {
        int offset = section.size();
        int pad = (8 - (body.size() + 4) % 8) % 8;
        for (int i = 0; i < pad; i++) {
            body.u8(Dwarf.DW_CFA_nop);
        }
        section.u32(body.size()).bytes(body.toBytes());
        return offset;
    }

    byte[] build() {
        return new Out().bytes(section.toBytes()).u32(0).toBytes();
    }

    /** An .eh_frame_hdr at {@code hdrAddress} with a datarel|sdata4 table. */
    byte[] header(long hdrAddress) {
        var sorted = new ArrayList<>(table);
        sorted.sort((a, b) -> Long.compare(a[0], b[0]));
        var h = new Out().u8(1).u8(0x1b).u8(0x03).u8(0x3b);
        h.u32(address - (hdrAddress + 4));
        h.u32(sorted.size());
        for (long[] e : sorted) {
            h.u32(e[0] - hdrAddress).u32(address + e[1] - hdrAddress);
        }
        return h.toBytes();
    }

    long address() {
        return address;
    }
}
