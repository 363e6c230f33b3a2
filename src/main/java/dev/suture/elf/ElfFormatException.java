package dev.suture.elf;

import dev.suture.SutureException;

/** A file that is not a well-formed ELF64 little-endian object: says which file and what is wrong with it. */
public final class ElfFormatException extends SutureException {
    private final String file;

    public ElfFormatException(String file, String problem) {
        this(file, problem, true);
    }

    private ElfFormatException(String file, String message, boolean malformed) {
        super(Kind.BAD_INPUT, malformed ? file + ": not a valid ELF file: " + message : message);
        this.file = file;
    }

    /** The file could not be read at all (missing, unreadable, a directory). */
    public static ElfFormatException unreadable(String file, String reason) {
        return new ElfFormatException(file, file + ": cannot read it: " + reason, false);
    }

    /** The file (or in-memory image name) the problem was found in. */
    public String file() {
        return file;
    }
}
