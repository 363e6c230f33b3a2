package dev.suture.live;

import dev.suture.x86.Jumps;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * What the regions already in a process say about a function entry: whether its current bytes are one of our
 * jumps, which region installed it, and what the entry held before any patch — so a new patch can verify the
 * original function's hash and chain onto (or, with --replace, take the place of) the earlier ones.
 */
final class PatchedEntries {
    private final List<Regions.Found> regions;

    PatchedEntries(List<Regions.Found> regions, List<Regions.Found> replacing) {
        this.regions = List.copyOf(regions);
    }

    /** The region and function entry whose installed jump is {@code current} at {@code address}, if any. */
    private Hit installer(long address, byte[] current) {
        for (var r : regions) {
            for (var f : r.header().functions()) {
                if (f.oldAddress() == address && Arrays.equals(f.installedBytes(), current)) {
                    return new Hit(r, f);
                }
            }
        }
        return null;
    }

    private record Hit(Regions.Found region, RegionHeader.Function function) {}

    /** The bytes the entry held before the first patch (follows saved bytes down the chain). */
    byte[] original(long address, byte[] current) {
        byte[] bytes = current;
        for (int depth = 0; depth <= regions.size(); depth++) {
            Hit h = installer(address, bytes);
            if (h == null) {
                return bytes;
            }
            bytes = h.function().savedBytes();
        }
        return bytes;
    }

    /** Start of the region whose jump sits at {@code address} now, or 0. */
    long regionOfJump(long address, byte[] current) {
        Hit h = installer(address, current);
        return h == null ? 0 : h.region().address();
    }

    /** The code of earlier patches that currently implements the functions the new image replaces. */
    List<Image.Range> currentReplacements(Image image) {
        var out = new ArrayList<Image.Range>();
        for (var r : regions) {
            for (var f : r.header().functions()) {
                boolean replacedAgain = image.entries().stream().anyMatch(e -> e.oldAddress() == f.oldAddress());
                if (replacedAgain) {
                    out.add(new Image.Range(f.name() + " (patch " + r.header().patchId() + ")", f.newAddress(),
                            f.newAddress() + Math.max(1, f.newSize())));
                }
            }
        }
        return out;
    }

    /** True if {@code bytes} at {@code address} are a jump into one of the known regions. */
    boolean isOurJump(long address, byte[] bytes) {
        long target = Jumps.jmpRel32Target(bytes, address);
        return target != -1 && regions.stream().anyMatch(r -> target >= r.address() && target < r.end());
    }
}
