package dev.suture.build;

import java.nio.file.Path;
import java.util.List;

/**
 * What to diff: the deployed binary the patch is for (its symbols come from it or from its separate debug file),
 * the objects of the build that produced it and of the patched build. The keys pair an original object with its
 * patched counterpart (null: each object's path relative to the directory all objects of its build are in).
 * {@code name} is the patch id (null: derived from the target's name and the patch content); {@code force} turns
 * an original-build/deployed-binary mismatch into a warning.
 */
public record DiffRequest(Path target, List<Path> originalObjects, List<Path> patchedObjects,
                          List<String> originalKeys, List<String> patchedKeys, String name, boolean force) {
    public DiffRequest {
        originalObjects = List.copyOf(originalObjects);
        patchedObjects = List.copyOf(patchedObjects);
        originalKeys = originalKeys == null ? null : List.copyOf(originalKeys);
        patchedKeys = patchedKeys == null ? null : List.copyOf(patchedKeys);
        if (originalKeys != null && originalKeys.size() != originalObjects.size()
                || patchedKeys != null && patchedKeys.size() != patchedObjects.size()) {
            throw new IllegalArgumentException("one key per object");
        }
    }

    /** Objects paired by their paths relative to each build's directory. */
    public DiffRequest(Path target, List<Path> originalObjects, List<Path> patchedObjects, String name,
                       boolean force) {
        this(target, originalObjects, patchedObjects, null, null, name, force);
    }
}
