package dev.suture.sys;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.stream.Stream;

/** Scratch directories suture makes and removes. */
public final class Directories {
    private Directories() {}

    /** Removes {@code dir} and everything in it, as far as it can: a scratch directory left behind is no failure. */
    public static void deleteTree(Path dir) {
        if (dir == null) {
            return;
        }
        try (Stream<Path> all = Files.walk(dir)) {
            all.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
            // gone already, or unreadable: nothing more to do
        }
    }
}
