package dev.suture.generate;

import dev.suture.patch.PatchSignature;

import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/**
/**
 * The patch a diff wrote, and what it does: replaced and added functions (by name), the functions that changed only
 * in line numbers and were left as they are, any warnings, the signature it was written with (null: unsigned), and
 * where the target's symbols came from.
 */
public record DiffResult(Path patchFile, String patchId, String targetBuildId, List<String> replaced,
                         List<String> added, List<String> lineOnly, List<String> warnings, PatchSignature signature,
                         SymbolSource symbols) {
    public DiffResult {
        replaced = List.copyOf(replaced);
        added = List.copyOf(added);
        lineOnly = List.copyOf(lineOnly);
        warnings = List.copyOf(warnings);
    }

    /** "N functions changed only in line numbers: left as they are (f, g)", or empty when there are none. */
    public Optional<String> lineOnlySummary() {
        if (lineOnly.isEmpty()) {
            return Optional.empty();
        }
        return Optional.of(lineOnly.size() + (lineOnly.size() == 1 ? " function" : " functions")
                + " changed only in line numbers: left as they are (" + String.join(", ", lineOnly) + ")");
    }
}
