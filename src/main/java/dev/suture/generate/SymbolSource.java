package dev.suture.generate;

/**
 * Where the diff found the deployed binary's symbols (docs/debian.md, "Symbols for stripped binaries").
 */
public enum SymbolSource {
    /** The file's own .symtab. */
    OWN,
    /** Its separate debug file (by build-id or .gnu_debuglink). */
    DEBUG_FILE,
    /** The rebuild's unstripped output, whose loaded sections are the deployed file's, byte for byte. */
    REBUILD,
    /**
     * Only .dynsym: the rebuild does not load the same bytes, so statics and hidden functions cannot be
     * located; an exported function is patched only if its bytes are the original build's.
     */
    EXPORTED
}
