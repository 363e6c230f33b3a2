package dev.suture.elf;

import java.util.List;

/**
 * A symbol version this file defines ({@code .gnu.version_d}): the index {@code .gnu.version} entries use for it,
 * its flags (VER_FLG_BASE marks the file's own name), its name and the versions it inherits from.
 */
public record VersionDefinition(int index, int flags, String name, List<String> parents) {
    public VersionDefinition {
        parents = List.copyOf(parents);
    }

    public boolean isBase() {
        return (flags & ElfConstants.VER_FLG_BASE) != 0;
    }
}
