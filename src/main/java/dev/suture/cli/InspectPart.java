package dev.suture.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.suture.elf.ElfFile;
import java.io.PrintWriter;

/**
 * An extra part of {@code suture inspect}'s output for files that carry more than plain ELF (e.g. a patch file's
 * {@code .suture.info}). Parts are listed in {@link InspectCommand#parts()}; each renders both text and JSON.
 */
interface InspectPart {
    /** Whether this part has something to show for the file. */
    boolean appliesTo(ElfFile elf);

    /** Prints the part as text, after the general information and before the segment and section tables. */
    void text(ElfFile elf, PrintWriter out);

    /** Adds the part to the JSON document (typically one field named after the part). */
    void json(ElfFile elf, ObjectNode document);
}
