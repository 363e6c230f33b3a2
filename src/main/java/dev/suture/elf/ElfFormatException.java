package dev.suture.elf;

import dev.suture.SutureException;

/** A file that is not a well-formed ELF64 little-endian object: says which file and what is wrong with it. */
public final class ElfFormatException extends SutureException {
    private final String file;

    public ElfFormatException(String file, String problem) {
        super(Kind.BAD_INPUT, file + ": not a valid ELF file: " + problem);
        this.file = file;
    }

    /** The file (or in-memory image name) the problem was found in. */
    public String file() {
        return file;
    }
}
