package dev.suture.unwind;

/**
 * A CIE: what the FDEs that point at it share — alignment factors, the return address column, pointer encodings
 * from the augmentation ('z', 'R', 'P', 'L', 'S') and the initial instructions, kept as a byte range of the section.
 */
public record CommonInformationEntry(
        int offset,
        int version,
        String augmentation,
        int addressSize,
        long codeAlignmentFactor,
        long dataAlignmentFactor,
        int returnAddressRegister,
        int fdeEncoding,
        int lsdaEncoding,
        long personality,
        boolean signalFrame,
        int instructionsStart,
        int instructionsEnd) {

    boolean hasAugmentationData() {
        return augmentation.startsWith("z");
    }
}
