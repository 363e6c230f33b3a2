package dev.suture.generate;

import dev.suture.elf.Relocation;
import dev.suture.elf.Section;
import dev.suture.generate.Differ.SectionKey;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * The records of an object's {@code .eh_frame}: CIEs and FDEs with their byte ranges, so the diff can keep the
 * FDEs of included functions (and the CIEs they use) and drop the rest.
 */
final class EhFrame {
    /** One CIE or FDE: bytes [start, end); for an FDE, {@code cie} is the start of its CIE. */
    record Entry(int start, int end, boolean isCie, int cie) {}

    private EhFrame() {}

    static List<Entry> entries(ObjectFile object, int section, byte[] bytes) {
        var out = new ArrayList<Entry>();
        var b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        int pos = 0;
        while (pos + 4 <= bytes.length) {
            long length = Integer.toUnsignedLong(b.getInt(pos));
            if (length == 0) {
                break;
            }
            if (length == 0xffffffffL || pos + 4 + length > bytes.length || length < 4) {
                throw new DiffRefusedException(object + ": .eh_frame record at 0x" + Integer.toHexString(pos)
                        + " is malformed or uses 64-bit lengths, which suture does not handle");
            }
            int id = b.getInt(pos + 4);
            int end = (int) (pos + 4 + length);
            if (id == 0) {
                out.add(new Entry(pos, end, true, pos));
            } else {
                int cie = pos + 4 - id;
                if (cie < 0 || cie >= pos) {
                    throw new DiffRefusedException(object + ": .eh_frame FDE at 0x" + Integer.toHexString(pos)
                            + " points at no CIE");
                }
                out.add(new Entry(pos, end, false, cie));
            }
            pos = end;
        }
        return out;
    }

    /** The relocation of an FDE's initial location (the function it describes), or null. */
    static Relocation pcBegin(List<Relocation> relocations, Entry fde) {
        for (var r : relocations) {
            if (r.r_offset() == fde.start() + 8) {
                return r;
            }
        }
        return null;
    }

    /** The .eh_frame section of an object, if any. */
    static Section section(ObjectFile o) {
        return o.elf.section(".eh_frame").orElse(null);
    }

    /** The CIEs and FDEs to keep: FDEs of included sections, and their CIEs, in file order. */
    static List<Entry> kept(ObjectFile p, Section eh, List<Relocation> relocs, Set<SectionKey> included) {
        var entries = entries(p, eh.index(), p.bytes(eh.index()));
        var keepCies = new HashSet<Integer>();
        var kept = new ArrayList<Entry>();
        for (var e : entries) {
            if (e.isCie()) {
                continue;
            }
            var pc = pcBegin(relocs, e);
            if (pc != null && pc.symbol() != null && pc.symbol().inSection()
                    && included.contains(new SectionKey(p, pc.symbol().st_shndx()))) {
                kept.add(e);
                keepCies.add(e.cie());
            }
        }
        var out = new ArrayList<Entry>();
        for (var e : entries) {
            if (e.isCie() ? keepCies.contains(e.start()) : kept.contains(e)) {
                out.add(e);
            }
        }
        return out;
    }
}
