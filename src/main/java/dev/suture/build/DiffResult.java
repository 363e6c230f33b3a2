package dev.suture.build;

import java.nio.file.Path;
import java.util.List;

/** The patch a diff wrote, and what it does: replaced and added functions (by name), and any warnings. */
public record DiffResult(Path patchFile, String patchId, String targetBuildId, List<String> replaced,
                         List<String> added, List<String> warnings) {
    public DiffResult {
        replaced = List.copyOf(replaced);
        added = List.copyOf(added);
        warnings = List.copyOf(warnings);
    }
}
