package dev.suture.unwind;

/**
 * An FDE: the code range {@code [pcBegin, pcBegin + pcRange)} at link-time addresses that its CFA program
 * (a byte range of the section, after its CIE's initial instructions) describes.
 */
public record FrameDescriptionEntry(
        int offset,
        CommonInformationEntry cie,
        long pcBegin,
        long pcRange,
        long lsda,
        int instructionsStart,
        int instructionsEnd) {

    public boolean contains(long pc) {
        return Long.compareUnsigned(pc - pcBegin, pcRange) < 0;
    }

    public long pcEnd() {
        return pcBegin + pcRange;
    }
}
