package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.SutureException;
import dev.suture.proc.Maps;
import dev.suture.testing.SutureProcess;
import dev.suture.testing.Target;
import dev.suture.x86.Jumps;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Recovery believes nothing it can check: suture is killed at points spread over an apply and a revert, and each
 * field of each record of the journal it left is changed in turn (addresses moved, bytes replaced by {@code ret}s,
 * another thread, another pid, another start time, registers that lead nowhere). After recovering from each forged
 * journal, every byte of the target's code must be what it was before, the file's, or one of suture's own jumps
 * into one of its regions; and the target must be alive. The true journal then recovers it as usual.
 */
class ForgedJournalTest {
    static final String PROGRAM = FaultInjectionTest.PROGRAM.replace("alarm(600)", "alarm(120)");
    static final String PATCHED = FaultInjectionTest.PATCHED.replace("alarm(600)", "alarm(120)");
    /** Kill points per transaction, spread evenly over its steps. */
    static final int POINTS = 8;

    @TempDir
    static Path dir;
    static Path runDir;
    static Path exe;
    static Path patchFile;

    @BeforeAll
    static void build() throws IOException {
        var built = Fixture.program(dir, "prog", PROGRAM, PATCHED, "abc", false);
        exe = built.exe();
        patchFile = built.patchFile();
        runDir = Files.createDirectories(dir.resolve("run"));
        System.setProperty("suture.runDir", runDir.toString());
    }

    @AfterAll
    static void restore() {
        System.clearProperty("suture.runDir");
    }

    @Test
    void everyFieldOfAnInterruptedJournalChangedWritesNoByteThatIsNotSuturesOwn() throws Exception {
        int applySteps = steps(false);
        int revertSteps = steps(true);
        int forged = 0;
        int refused = 0;
        var log = new ArrayList<String>();
        for (boolean revert : new boolean[] {false, true}) {
            int steps = revert ? revertSteps : applySteps;
            for (int i = 0; i < POINTS; i++) {
                int k = 1 + i * (steps - 1) / (POINTS - 1);
                var counts = forgeAt(k, revert, log);
                forged += counts[0];
                refused += counts[1];
            }
        }
        System.out.printf("forged journals: apply %d steps, revert %d steps; %d forged journals recovered from, %d"
                + " refused with nothing written%n", applySteps, revertSteps, forged, refused);
        log.forEach(System.out::println);
        assertTrue(forged > 50, "a walk of " + forged + " forged journals");
    }

    /** An apply (or revert) killed before step {@code k}: its target, the text before, and the journal left. */
    private record Interrupted(Target target, byte[] original, long textStart, String journal) implements AutoCloseable {
        @Override
        public void close() {
            target.close();
        }
    }

    /** Kills the transaction before step {@code k} on a fresh target; null (target closed) if it left no journal. */
    private static Interrupted interrupt(int k, boolean revert) throws IOException {
        var t = Target.start(exe);
        try {
            int pid = t.pidInt();
            Fixture.await(t, 0, FaultInjectionTest.ORIGINAL_LINE, 2);
            long start = textStart(pid);
            byte[] original = Fixture.text(pid, exe);
            if (revert) {
                Patcher.apply(pid, dev.suture.patch.PatchFile.read(patchFile), Patcher.ApplyOptions.defaults());
            }
            String[] args = revert ? new String[] {"revert", "-p", Integer.toString(pid), "--all"}
                    : new String[] {"apply", "-p", Integer.toString(pid), patchFile.toString()};
            SutureProcess.run(dir, Duration.ofSeconds(60), Map.of("SUTURE_RUN_DIR", runDir.toString(),
                    "SUTURE_FAULT_KILL_AT", Integer.toString(k)), args);
            Path file = runDir.resolve(pid + ".journal");
            if (!Files.exists(file)) {
                t.close();
                return null;
            }
            return new Interrupted(t, original, start, Files.readString(file));
        } catch (IOException | RuntimeException | Error e) {
            t.close();
            throw e;
        }
    }

    /** Forges every field of the journal left at step {@code k}; returns {forged, refused}. */
    private static int[] forgeAt(int k, boolean revert, List<String> log) throws IOException {
        Interrupted state = interrupt(k, revert);
        if (state == null) {
            return new int[2];
        }
        int total = forgeries(state.journal()).size();
        int walked = 0;
        int refused = 0;
        try {
            for (int n = 0; n < total; n++) {
                if (state == null) {
                    state = interrupt(k, revert);
                    if (state == null || forgeries(state.journal()).size() != total) {
                        break; // the kill point left another kind of journal this time (timing)
                    }
                }
                // the n-th forgery of this target's own journal (pids, times and addresses differ per target)
                String forged = forgeries(state.journal()).get(n);
                int pid = state.target().pidInt();
                Path file = runDir.resolve(pid + ".journal");
                JournalTest.writePrivate(file, forged);
                byte[] before = Fixture.text(pid, exe);
                boolean ok;
                String outcome;
                try {
                    outcome = Patcher.recover(pid, Duration.ofSeconds(2)).outcome().name();
                    ok = true;
                } catch (SutureException e) {
                    outcome = e.kind().name();
                    ok = false;
                    refused++;
                }
                walked++;
                byte[] after = Fixture.text(pid, exe);
                String what = (revert ? "revert" : "apply") + " killed at " + k + ", forged '" + changed(
                        state.journal(), forged) + "': " + outcome;
                assertTrue(state.target().alive(), what + ": the target died");
                if (!ok) {
                    assertTrue(Arrays.equals(before, after), what + ": refused, but the code changed");
                }
                assertEquals(null, notSuturesOwn(pid, state, before, after), what);
                log.add(what);
                String now = Files.exists(file) ? Files.readString(file) : null;
                if (ok || !forged.equals(now)) {
                    state.close(); // recovery went ahead (or appended): start afresh for the next forgery
                    state = null;
                } else {
                    JournalTest.writePrivate(file, state.journal());
                }
            }
            if (state != null) {
                int pid = state.target().pidInt();
                var r = Patcher.recover(pid, Duration.ofSeconds(5));
                assertTrue(r.outcome() != Patcher.RecoverOutcome.FAILED, r.message());
            }
        } finally {
            if (state != null) {
                state.close();
            }
        }
        return new int[] {walked, refused};
    }

    /**
     * Null when every byte of {@code after} is what it was {@code before}, the original, or part of a jump that a
     * region of the process lists for that entry; else where the first other byte is.
     */
    private static String notSuturesOwn(int pid, Interrupted state, byte[] before, byte[] after) {
        var applied = Patcher.applied(pid);
        for (int i = 0; i < after.length; i++) {
            if (after[i] == before[i] || after[i] == state.original()[i]) {
                continue;
            }
            long address = state.textStart() + i;
            boolean jump = false;
            for (var p : applied) {
                for (var f : p.functions()) {
                    long offset = address - f.oldAddress();
                    if (offset >= 0 && offset < 5
                            && Jumps.jmpRel32(f.oldAddress(), f.newAddress())[(int) offset] == after[i]) {
                        jump = true;
                    }
                }
            }
            if (!jump) {
                return String.format("the byte at 0x%x is %02x: neither what it was (%02x), the file's (%02x), nor"
                        + " a jump of suture's", address, after[i], before[i], state.original()[i]);
            }
        }
        return null;
    }

    private static long textStart(int pid) throws IOException {
        String path = exe.toRealPath().toString();
        return Maps.read(pid).stream().filter(m -> m.path().equals(path) && m.perms().contains("x")).findFirst()
                .orElseThrow().start();
    }

    /** The journal with one field of one record changed, for every field worth changing. */
    static List<String> forgeries(String journal) {
        var lines = journal.split("\n", -1);
        var out = new ArrayList<String>();
        for (int l = 0; l < lines.length; l++) {
            String[] f = lines[l].stripTrailing().split(" ");
            if (lines[l].startsWith("#") || f.length < 2 || lines[l].startsWith("suture-journal")) {
                continue;
            }
            for (int j = 1; j < f.length; j++) {
                String changed = forge(f[0], j, f[j]);
                if (changed == null) {
                    continue;
                }
                var g = f.clone();
                g[j] = changed;
                var copy = lines.clone();
                copy[l] = String.join(" ", g);
                out.add(String.join("\n", copy));
            }
        }
        return out;
    }

    /** Field {@code j} of a {@code record} changed, or null for one not worth it (free text, a time, most registers). */
    private static String forge(String record, int j, String field) {
        if (record.equals("begin")) {
            if (field.startsWith("pid=")) {
                return "pid=1";
            }
            return field.startsWith("start=") ? "start=2001-01-01T00:00:00Z" : null;
        }
        if (record.equals("inject") && j >= 5) {
            return j == 5 + 16 ? "41414141" : null; // rip: where the thread would be sent
        }
        if (field.startsWith("0x")) {
            return "0x" + Long.toHexString(Long.parseUnsignedLong(field.substring(2), 16) + 0x10);
        }
        if (field.chars().allMatch(Character::isDigit)) {
            return Integer.toString(Integer.parseInt(field) + 1); // another thread
        }
        if (field.matches("[0-9a-f]+") && field.length() % 2 == 0) {
            return "c3".repeat(field.length() / 2);
        }
        return null;
    }

    /** The forged line, for the log. */
    private static String changed(String journal, String forged) {
        var a = journal.split("\n", -1);
        var b = forged.split("\n", -1);
        for (int i = 0; i < Math.min(a.length, b.length); i++) {
            if (!a[i].equals(b[i])) {
                return b[i].length() > 100 ? b[i].substring(0, 100) + "..." : b[i];
            }
        }
        return "?";
    }

    /** The number of steps of an apply (or a revert), from the fault-injection step log. */
    private static int steps(boolean revert) throws IOException {
        try (var t = Target.start(exe)) {
            int pid = t.pidInt();
            Fixture.await(t, 0, FaultInjectionTest.ORIGINAL_LINE, 2);
            if (revert) {
                Patcher.apply(pid, dev.suture.patch.PatchFile.read(patchFile), Patcher.ApplyOptions.defaults());
            }
            Path log = dir.resolve("steps-" + revert + ".log");
            String[] args = revert ? new String[] {"revert", "-p", Integer.toString(pid), "--all"}
                    : new String[] {"apply", "-p", Integer.toString(pid), patchFile.toString()};
            var r = SutureProcess.run(dir, Duration.ofSeconds(60), Map.of("SUTURE_RUN_DIR", runDir.toString(),
                    "SUTURE_FAULT_LOG", log.toString()), args);
            assertEquals(0, r.status(), r.toString());
            return Files.readAllLines(log).size();
        }
    }
}
