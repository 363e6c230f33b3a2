package dev.suture.generate;

import java.nio.file.Path;
import java.util.List;

/**
 * What to diff: the deployed binary the patch is for (its symbols come from it or from its separate debug file),
 * the objects of the build that produced it and of the patched build. {@code name} is the patch id (null: derived
 * from the target's name and the patch content); {@code force} turns an original-build/deployed-binary mismatch
 * into a warning. {@code rebuilt} is the original build's own linked output (null: none), the symbol source of a
 * stripped target without a debug file when it loads the same bytes. {@code linkOrder}: the original objects are
 * every object of the target's link, in the order the link took them (a build record says so), which tells
 * same-named source files apart; without it only their bytes can.
 */
public record DiffRequest(Path target, List<ObjectInput> originalObjects, List<ObjectInput> patchedObjects,
                          String name, boolean force, Path rebuilt, boolean linkOrder) {
    public DiffRequest {
        originalObjects = List.copyOf(originalObjects);
        patchedObjects = List.copyOf(patchedObjects);
    }

    /** A diff whose target has its own symbols or a debug file, of objects whose link order is not known. */
    public DiffRequest(Path target, List<ObjectInput> originalObjects, List<ObjectInput> patchedObjects,
                       String name, boolean force) {
        this(target, originalObjects, patchedObjects, name, force, null, false);
    }

    /**
     * One object of a build. {@code key} pairs an original object with its patched counterpart (null: its path
     * relative to the directory all objects of its build are in); {@code image} holds its bytes when it exists
     * only in memory (a member of an archive whose object file is gone), and {@code path} then only names it.
     */
    public record ObjectInput(Path path, String key, byte[] image) {
        /** An object file, paired by its path. */
        public static ObjectInput file(Path path) {
            return new ObjectInput(path, null, null);
        }
    }

    /** Object files, paired by their paths relative to each build's directory. */
    public static DiffRequest ofFiles(Path target, List<Path> originalObjects, List<Path> patchedObjects,
                                      String name, boolean force) {
        return new DiffRequest(target, originalObjects.stream().map(ObjectInput::file).toList(),
                patchedObjects.stream().map(ObjectInput::file).toList(), name, force);
    }
}
