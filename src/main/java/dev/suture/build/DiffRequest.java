package dev.suture.build;

import java.nio.file.Path;
import java.util.List;

/**
 * What to diff: the deployed binary the patch is for (its symbols come from it or from its separate debug file),
 * the objects of the build that produced it and of the patched build. {@code name} is the patch id (null: derived
 * from the target's name and the patch content); {@code force} turns an original-build/deployed-binary mismatch
 * into a warning.
 */
public record DiffRequest(Path target, List<Path> originalObjects, List<Path> patchedObjects, String name,
                          boolean force) {
    public DiffRequest {
        originalObjects = List.copyOf(originalObjects);
        patchedObjects = List.copyOf(patchedObjects);
    }
}
