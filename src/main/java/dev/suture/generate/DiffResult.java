package dev.suture.generate;

import dev.suture.patch.PatchSignature;

import java.nio.file.Path;
import java.util.List;

/**
 * The patch a diff wrote, and what it does: replaced and added functions (by name), any warnings, and the
 * signature it was written with (null: unsigned), and where the target's symbols came from.
 */
public record DiffResult(Path patchFile, String patchId, String targetBuildId, List<String> replaced,
                         List<String> added, List<String> warnings, PatchSignature signature, SymbolSource symbols) {
    public DiffResult {
        replaced = List.copyOf(replaced);
        added = List.copyOf(added);
        warnings = List.copyOf(warnings);
    }
}
