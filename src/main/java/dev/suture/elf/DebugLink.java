package dev.suture.elf;

/** The contents of {@code .gnu_debuglink}: the debug file's name and the CRC-32 of its contents. */
public record DebugLink(String file, int crc) {}
