package dev.suture.elf;

/**
 * A symbol version this file needs from another ({@code .gnu.version_r}): the library, the version name, the index
 * {@code .gnu.version} entries use for it, and its flags (VER_FLG_WEAK).
 */
public record VersionRequirement(String file, String name, int index, int flags) {}
