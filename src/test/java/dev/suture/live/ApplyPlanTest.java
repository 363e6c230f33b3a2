package dev.suture.live;

import static dev.suture.elf.ElfConstants.ET_DYN;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.suture.SutureException;
import dev.suture.patch.PatchBuilder;
import dev.suture.patch.PatchFile;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Which patch goes to which process, on this JVM's own process and the modules it maps. */
class ApplyPlanTest {
    private final int self = (int) ProcessHandle.current().pid();
    private final String mapped = new Processes().buildIds(self).iterator().next();
    private final PatchFile forMapped = patch("for-mapped", mapped);
    private final PatchFile forNothing = patch("for-nothing", "00ff00ff");

    @Test
    void filesGoToTheProcessNamedWhatTheyAreFor() {
        var plan = new ApplyPlan(byBuildId(), false, false);
        assertEquals(List.of(self), plan.pids(self));
        // a patch for a module the process does not map is still tried there, and fails there (exit 3)
        assertEquals(List.of(forMapped, forNothing), plan.patchesFor(self));
    }

    @Test
    void aStoreGivesAProcessOnlyWhatItMaps() {
        assertEquals(List.of(forMapped), new ApplyPlan(byBuildId(), false, true).patchesFor(self));
        var nothing = new ApplyPlan(Map.of("00ff00ff", List.of(forNothing)), false, true);
        var e = assertThrows(SutureException.class, () -> nothing.patchesFor(self));
        assertEquals(SutureException.Kind.DOES_NOT_FIT, e.kind());
    }

    @Test
    void everyProcessIsSkippedWhenItMapsNothingPatched() {
        var plan = new ApplyPlan(byBuildId(), true, false);
        assertEquals(List.of(forMapped), plan.patchesFor(self));
        assertEquals(List.of(), new ApplyPlan(Map.of("00ff00ff", List.of(forNothing)), true, true).patchesFor(self));
    }

    private Map<String, List<PatchFile>> byBuildId() {
        var out = new LinkedHashMap<String, List<PatchFile>>();
        out.put(mapped, List.of(forMapped));
        out.put("00ff00ff", List.of(forNothing));
        return out;
    }

    private static PatchFile patch(String id, String buildId) {
        return new PatchBuilder(id, buildId, "module", ET_DYN).build();
    }
}
