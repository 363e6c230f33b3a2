package dev.suture.patch;

import dev.suture.elf.ElfConstants;

/**
 * The identity of a patch and of the module it is bound to (the header records of {@code .suture.info}).
 * {@code targetType} is the target's e_type: ET_EXEC (loaded at its link-time addresses) or ET_DYN (PIE
 * executable or shared library: add the load bias).
 */
public record PatchInfo(int formatVersion, String id, String targetBuildId, String targetName, int targetType) {

    /** Whether the binder must add the module's load bias to target-relative addresses. */
    public boolean hasLoadBias() {
        return targetType == ElfConstants.ET_DYN;
    }

    /** "ET_EXEC" or "ET_DYN", as written in the file. */
    public String targetTypeName() {
        return targetType == ElfConstants.ET_EXEC ? "ET_EXEC" : "ET_DYN";
    }
}
