package dev.suture.live;

import dev.suture.proc.Mapping;
import dev.suture.proc.RemoteMemory;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * Finds suture's regions in a process from its memory alone (principle 8): every anonymous readable mapping that
 * starts with the region magic, with its decoded header, ordered by sequence (the order the patches were applied).
 */
final class Regions {
    /** A region found in a process: where it is and what its header says. */
    record Found(long address, RegionHeader header) {
        long end() {
            return address + header.regionSize();
        }

        boolean containsText(long pc) {
            var l = header.layout();
            long start = address + l.textOffset();
            long stop = address + l.jumpTableOffset() + (long) l.jumpTableCount() * RegionHeader.JUMP_ENTRY_SIZE;
            return Long.compareUnsigned(pc, start) >= 0 && Long.compareUnsigned(pc, stop) < 0;
        }
    }

    private Regions() {}

    static List<Found> scan(int pid, List<Mapping> maps, RemoteMemory memory) {
        return scan(pid, maps, memory, false);
    }

    /**
     * The regions whose headers decode, passing over a corrupt one rather than failing: for the unwinder, to which a
     * region it cannot read is code without CFI, never a reason to stop.
     */
    static List<Found> scanDecodable(int pid, List<Mapping> maps, RemoteMemory memory) {
        return scan(pid, maps, memory, true);
    }

    private static List<Found> scan(int pid, List<Mapping> maps, RemoteMemory memory, boolean passCorrupt) {
        var found = new ArrayList<Found>();
        byte[] head = new byte[RegionHeader.FIXED_SIZE];
        for (var m : maps) {
            if (!m.path().isEmpty() || !m.perms().startsWith("r") || m.end() - m.start() < RegionHeader.FIXED_SIZE) {
                continue;
            }
            int n = memory.read(m.start(), head, 0, head.length);
            if (n < head.length || !RegionHeader.hasMagic(head)) {
                continue;
            }
            try {
                found.add(new Found(m.start(), read(pid, m.start(), head, memory)));
            } catch (RegionFormatException e) {
                if (!passCorrupt) {
                    throw e;
                }
            }
        }
        found.sort(Comparator.comparingInt((Found f) -> f.header().sequence()).thenComparingLong(Found::address));
        return found;
    }

    /** The header of the region at {@code address}, whose fixed part {@code head} holds. */
    private static RegionHeader read(int pid, long address, byte[] head, RemoteMemory memory) {
        int size = RegionHeader.claimedSize(head);
        String where = "pid " + pid + " region at 0x" + Long.toHexString(address);
        if (size < RegionHeader.FIXED_SIZE || size > RegionHeader.MAX_HEADER_SIZE) {
            throw new RegionFormatException(where + ": region header size " + size + " is invalid");
        }
        byte[] all = new byte[size];
        if (memory.read(address, all, 0, size) != size) {
            throw new RegionFormatException(where + ": region header of " + size + " bytes is not readable");
        }
        return RegionHeader.decode(all, where);
    }
}
