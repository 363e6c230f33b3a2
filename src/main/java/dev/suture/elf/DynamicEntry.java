package dev.suture.elf;

/** One entry of the dynamic section. */
public record DynamicEntry(long d_tag, long d_val) {}
