package dev.suture.agent;

import dev.suture.SutureException;
import dev.suture.live.PatchStore;
import dev.suture.patch.PatchFile;
import dev.suture.patch.TrustedKeys;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * What the patch store asks for, read once: per build-id the patch to run (the highest level), the ids of its
 * lower levels (an older cumulative patch of the same module), and the files that were refused and why (unreadable,
 * or not signed by a trusted key when a trust directory is configured). Immutable: a change of the store is a new
 * one.
 */
public final class DesiredState {
    /** The patch for one module, and the ids of the lower levels beside it. */
    public record Wanted(String buildId, Path file, int level, PatchFile patch, Set<String> olderIds,
                         String trustedAs) {}

    /** A store file that is not acted on, and why. */
    public record Refused(Path file, String reason) {}

    private final Path store;
    private final Map<String, Wanted> byBuildId;
    private final List<Refused> refused;

    private DesiredState(Path store, Map<String, Wanted> byBuildId, List<Refused> refused) {
        this.store = store;
        this.byBuildId = byBuildId;
        this.refused = refused;
    }

    /**
     * Reads the store (checked: {@link PatchStore#scan}; an untrusted store fails as a whole). {@code keys}: the
     * trusted keys every patch must be signed by, or null when none are configured (a patch whose signature does
     * not verify is refused either way).
     */
    public static DesiredState read(Path store, TrustedKeys keys) {
        var wanted = new LinkedHashMap<String, Wanted>();
        var refused = new ArrayList<Refused>();
        for (var e : PatchStore.scan(store).values()) {
            PatchFile patch;
            String trustedAs = null;
            try {
                patch = PatchFile.read(e.file());
                if (keys != null) {
                    trustedAs = keys.check(patch);
                } else {
                    TrustedKeys.requireIntact(patch);
                }
            } catch (SutureException ex) {
                refused.add(new Refused(e.file(), ex.getMessage()));
                continue;
            }
            if (!patch.targetBuildId().equals(e.buildId())) {
                refused.add(new Refused(e.file(), "it is stored under build-id " + e.buildId() + " but is a patch"
                        + " for build-id " + patch.targetBuildId() + "; store it as " + patch.targetBuildId()
                        + ".suture"));
                continue;
            }
            var older = new LinkedHashSet<String>();
            for (Path lower : e.lowerLevels()) {
                try {
                    older.add(PatchFile.read(lower).id());
                } catch (SutureException ex) {
                    // an unreadable lower level names no patch a process could run
                }
            }
            wanted.put(e.buildId(), new Wanted(e.buildId(), e.file(), e.level(), patch, Set.copyOf(older),
                    trustedAs));
        }
        return new DesiredState(store, Map.copyOf(wanted), List.copyOf(refused));
    }

    public Path store() {
        return store;
    }

    public Map<String, Wanted> byBuildId() {
        return byBuildId;
    }

    public List<Refused> refused() {
        return refused;
    }

    /** The ids of the patches the store asks for. */
    public Set<String> patchIds() {
        var out = new LinkedHashSet<String>();
        byBuildId.values().forEach(w -> out.add(w.patch().id()));
        return out;
    }
}
