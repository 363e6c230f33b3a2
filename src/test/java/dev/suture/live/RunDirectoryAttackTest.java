package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.cli.Cli;
import dev.suture.proc.RemoteMemory;
import dev.suture.testing.Stranger;
import dev.suture.testing.SutureProcess;
import dev.suture.testing.Target;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 14's attacks on the run directory, journals and locks, each performed for real: a stranger (uid 65534)
 * plants what a hostile local user could, root's suture is run against a root-owned target, and the test asserts
 * that the command refuses with a clear message and that the target's code and the victim files are unchanged.
 */
class RunDirectoryAttackTest {
    static final String PROGRAM = """
            #include <stdio.h>
            #include <time.h>
            #include <unistd.h>

            int alpha(int x) {
                return x + 1;
            }

            int main(void) {
                alarm(120);
                setvbuf(stdout, 0, _IOLBF, 0);
                for (;;) {
                    printf("tick %d\\n", alpha(10));
                    struct timespec t = {0, 5000000};
                    nanosleep(&t, 0);
                }
            }
            """;
    static final String ORIGINAL_LINE = "tick 11";
    static final String PATCHED_LINE = "tick 110";

    @TempDir
    static Path dir;
    static Path runDir;
    static Path exe;
    static Path patchFile;

    @BeforeAll
    static void build() throws IOException {
        var built = Fixture.program(dir, "prog", PROGRAM, PROGRAM.replace("x + 1;", "x + 100;"), "alpha", false);
        exe = built.exe();
        patchFile = built.patchFile();
        runDir = Files.createDirectories(dir.resolve("run"));
        System.setProperty("suture.runDir", runDir.toString());
        Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx--x--x")); // the stranger runs exe
    }

    @AfterAll
    static void restore() {
        System.clearProperty("suture.runDir");
    }

    /** A journal that, believed, would write {@code ret} over alpha's first bytes. */
    private static String forgedJournal(int pid, long alpha) throws IOException {
        String start = ProcessHandle.of(pid).orElseThrow().info().startInstant().orElseThrow().toString();
        return "suture-journal 1\nbegin revert pid=" + pid + " start=" + start + " tool=1 at=x what=evil\n"
                + "write 0x" + Long.toHexString(alpha) + " c3c3c3c3c3 " + hexAt(pid, alpha) + "\n";
    }

    private static String hexAt(int pid, long address) {
        try (var mem = RemoteMemory.open(pid)) {
            byte[] b = new byte[5];
            mem.read(address, b, 0, 5);
            return java.util.HexFormat.of().formatHex(b);
        }
    }

    /** Where alpha is in the (non-PIE) program. */
    private static long alpha(int pid) {
        try (var elf = dev.suture.elf.ElfFile.open(exe)) {
            return elf.symbols().stream().filter(s -> s.name().equals("alpha")).findFirst().orElseThrow().st_value();
        }
    }

    /** Runs suture in its own JVM with SUTURE_RUN_DIR set, as an operator's shell would. */
    private static SutureProcess.Result suture(Path run, String... args) throws IOException {
        return SutureProcess.run(dir, Duration.ofSeconds(60), Map.of("SUTURE_RUN_DIR", run.toString()), args);
    }

    /**
     * Attack 1: the stranger makes the run directory root would use (mode 0777, or any directory of theirs) and
     * plants a journal there that writes their bytes into the target; also a symlink to a root directory, and a
     * root-owned directory that is world-writable or sits in a directory of the stranger's.
     */
    @Test
    void aRunDirectoryThatIsNotRootsIsRefused() throws Exception {
        String base = "/tmp/suture-attack-" + ProcessHandle.current().pid();
        try (var t = Target.start(exe)) {
            Fixture.await(t, 0, ORIGINAL_LINE, 2);
            int pid = t.pidInt();
            byte[] before = Fixture.text(pid, exe);
            String journal = forgedJournal(pid, alpha(pid));
            Stranger.must("mkdir -m 777 " + base + "-own && printf '%s' '" + journal + "' > " + base + "-own/" + pid
                    + ".journal && chmod 600 " + base + "-own/" + pid + ".journal");
            Stranger.must("mkdir -m 755 " + base + "-parent && ln -s " + runDir + " " + base + "-link");
            Files.createDirectory(Path.of(base + "-parent/run")); // root's, 0755, but the stranger may rename it
            Files.createDirectory(Path.of(base + "-open"));
            Files.setPosixFilePermissions(Path.of(base + "-open"), PosixFilePermissions.fromString("rwxrwxrwx"));
            var cases = Map.of(base + "-own", "belongs to uid " + Stranger.UID,
                    base + "-link", "symbolic link",
                    base + "-parent/run", base + "-parent on its path belongs to uid " + Stranger.UID,
                    base + "-open", "group or others may write it");
            for (var c : cases.entrySet()) {
                for (String[] args : List.of(new String[] {"recover", "--all"},
                        new String[] {"recover", "-p", Integer.toString(pid)},
                        new String[] {"apply", "-p", Integer.toString(pid), patchFile.toString()})) {
                    var r = suture(Path.of(c.getKey()), args);
                    assertEquals(5, r.status(), c.getKey() + " " + String.join(" ", args) + ": " + r);
                    assertTrue(r.err().contains("refuses suture's run directory") && r.err().contains(c.getValue()),
                            r.err());
                    assertArrayEquals(before, Fixture.text(pid, exe), "nothing written into the target");
                }
            }
            assertEquals(journal, Files.readString(Path.of(base + "-own/" + pid + ".journal")));
            assertFalse(Files.exists(Path.of(base + "-parent/run/" + pid + ".lock")), "no lock made there");
            Fixture.await(t, t.lines().size(), ORIGINAL_LINE, 2);
        } finally {
            new ProcessBuilder("rm", "-rf", base + "-own", base + "-parent", base + "-link", base + "-open")
                    .start().waitFor();
        }
    }

    /** Attack 2: a journal whose begin record names another pid (pid 1, with pid 1's start time). */
    @Test
    void aJournalIsBoundToThePidOfItsFileName() throws Exception {
        try (var t = Target.start(exe)) {
            Fixture.await(t, 0, ORIGINAL_LINE, 2);
            int pid = t.pidInt();
            byte[] before = Fixture.text(pid, exe);
            String start1 = ProcessHandle.of(1).orElseThrow().info().startInstant().orElseThrow().toString();
            Path file = runDir.resolve(pid + ".journal");
            JournalTest.writePrivate(file, forgedJournal(pid, alpha(pid)).replace("pid=" + pid + " start=",
                    "pid=1 start=").replaceFirst("start=[^ ]+", "start=" + start1));
            var r = Cli.run("recover", "-p", Integer.toString(pid));
            assertEquals(2, r.code(), r.out() + r.err());
            assertTrue(r.err().contains("names pid 1, not " + pid), r.err());
            assertArrayEquals(before, Fixture.text(pid, exe));
            Files.delete(file);
        }
    }

    /** Attack 3 at its simplest: a journal of the right pid and start whose write's bytes are the stranger's. */
    @Test
    void aWriteRecordIsCheckedAgainstTheProcess() throws Exception {
        try (var t = Target.start(exe)) {
            Fixture.await(t, 0, ORIGINAL_LINE, 2);
            int pid = t.pidInt();
            byte[] before = Fixture.text(pid, exe);
            Path file = runDir.resolve(pid + ".journal");
            JournalTest.writePrivate(file, forgedJournal(pid, alpha(pid)));
            var r = Cli.run("recover", "-p", Integer.toString(pid));
            assertEquals(2, r.code(), r.out() + r.err());
            assertTrue(r.err().contains("does not match the process") && r.err().contains("wrote nothing"), r.err());
            assertArrayEquals(before, Fixture.text(pid, exe));
            assertTrue(Files.exists(file), "the journal is kept for a person to look at");
            Files.delete(file);
            Fixture.await(t, t.lines().size(), ORIGINAL_LINE, 2);
        }
    }

    /** Attack 4: a journal of an apply whose write records were removed; the jumps into its region are live. */
    @Test
    void aRegionIsNotUnmappedWhileAJumpLeadsIntoIt() throws Exception {
        try (var t = Target.start(exe)) {
            Fixture.await(t, 0, ORIGINAL_LINE, 2);
            int pid = t.pidInt();
            var applied = Cli.run("apply", "-p", Integer.toString(pid), patchFile.toString());
            assertEquals(0, applied.code(), applied.out() + applied.err());
            Fixture.await(t, t.lines().size(), PATCHED_LINE, 2);
            var region = Patcher.applied(pid).getFirst();
            byte[] before = Fixture.text(pid, exe);
            String start = ProcessHandle.of(pid).orElseThrow().info().startInstant().orElseThrow().toString();
            Path file = runDir.resolve(pid + ".journal");
            JournalTest.writePrivate(file, "suture-journal 1\nbegin apply pid=" + pid + " start=" + start
                    + " tool=1 at=x what=gutted\nregion 0x" + Long.toHexString(region.regionAddress()) + " 0x"
                    + Long.toHexString(region.regionSize()) + " 0x" + Long.toHexString(region.regionAddress())
                    + " 0x" + Long.toHexString(region.regionAddress() + region.regionSize()) + "\n");
            var r = Cli.run("recover", "-p", Integer.toString(pid));
            assertEquals(4, r.code(), r.out() + r.err());
            assertTrue(r.err().contains("a jump into the region") && r.err().contains("will not unmap"), r.err());
            assertArrayEquals(before, Fixture.text(pid, exe));
            assertEquals(1, Patcher.applied(pid).size(), "the region is still mapped");
            Fixture.await(t, t.lines().size(), PATCHED_LINE, 3);
            Files.delete(file);
            assertEquals(0, Cli.run("revert", "-p", Integer.toString(pid), "--all").code());
        }
    }

    /** Attack 5: the lock and the rehearsal's scratch journal, planted as symlinks to a victim file. */
    @Test
    void symlinksInTheRunDirectoryAreNeverFollowed() throws Exception {
        Path victim = dir.resolve("victim.txt");
        Files.writeString(victim, "precious\n");
        try (var t = Target.start(exe)) {
            Fixture.await(t, 0, ORIGINAL_LINE, 2);
            int pid = t.pidInt();
            byte[] before = Fixture.text(pid, exe);
            Path lock = runDir.resolve(pid + ".lock");
            Files.createSymbolicLink(lock, victim);
            var r = Cli.run("apply", "-p", Integer.toString(pid), patchFile.toString());
            assertEquals(5, r.code(), r.out() + r.err());
            assertTrue(r.err().contains("refuses the lock") && r.err().contains("symbolic link"), r.err());
            assertEquals("precious\n", Files.readString(victim));
            assertArrayEquals(before, Fixture.text(pid, exe));
            Files.delete(lock);
        }
        Path scratch = runDir.resolve("rehearsal-" + ProcessHandle.current().pid() + ".journal");
        Files.createSymbolicLink(scratch, victim);
        try (var journal = Journal.scratch()) {
            assertFalse(Files.isSymbolicLink(scratch), "the planted link was replaced, not followed");
        }
        assertEquals("precious\n", Files.readString(victim));
        assertFalse(Files.exists(scratch, java.nio.file.LinkOption.NOFOLLOW_LINKS), "the scratch journal goes");
    }

    /**
     * Earlier sutures made their locks 0644: such a file of ours is closed to 0600 and used; one that others may
     * write is refused (a stranger could have written it).
     */
    @Test
    void aLockOthersMayReadIsClosedOneOthersMayWriteIsRefused() throws Exception {
        try (var t = Target.start(exe)) {
            Fixture.await(t, 0, ORIGINAL_LINE, 2);
            int pid = t.pidInt();
            Path lock = runDir.resolve(pid + ".lock");
            Files.createFile(lock, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-rw-rw-")));
            Files.setPosixFilePermissions(lock, PosixFilePermissions.fromString("rw-rw-rw-"));
            var refused = Cli.run("apply", "-p", Integer.toString(pid), patchFile.toString());
            assertEquals(5, refused.code(), refused.out() + refused.err());
            assertTrue(refused.err().contains("group or others may write it"), refused.err());
            Files.setPosixFilePermissions(lock, PosixFilePermissions.fromString("rw-r--r--"));
            var applied = Cli.run("apply", "-p", Integer.toString(pid), patchFile.toString());
            assertEquals(0, applied.code(), applied.out() + applied.err());
            assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(lock)));
            assertEquals(0, Cli.run("revert", "-p", Integer.toString(pid), "--all").code());
        }
    }

    /**
     * Attack 8: a 3 GiB sparse journal and a damaged one beside a real interrupted apply; recover --all handles
     * each on its own: the real one is recovered, the others reported, and no heap is spent on the huge one.
     */
    @Test
    void badJournalsDoNotKeepOthersFromRecovery() throws Exception {
        try (var a = Target.start(exe); var b = Target.start(exe); var c = Target.start(exe)) {
            for (var t : List.of(a, b, c)) {
                Fixture.await(t, 0, ORIGINAL_LINE, 2);
            }
            Path huge = runDir.resolve(a.pid() + ".journal");
            JournalTest.writePrivate(huge, "suture-journal 1\n");
            try (var f = new RandomAccessFile(huge.toFile(), "rw")) {
                f.setLength(3L << 30);
            }
            JournalTest.writePrivate(runDir.resolve(b.pid() + ".journal"), "suture-journal 1\nbegin apply pid="
                    + b.pid() + " start=" + ProcessHandle.of(b.pid()).orElseThrow().info().startInstant()
                    .orElseThrow() + " tool=1 at=x what=y\nwrite zz\n");
            // an apply on c interrupted after its window: the jump is in, the journal not yet gone
            String start = ProcessHandle.of(c.pid()).orElseThrow().info().startInstant().orElseThrow().toString();
            var applied = Cli.run("apply", "-p", Long.toString(c.pid()), patchFile.toString());
            assertEquals(0, applied.code(), applied.err());
            var region = Patcher.applied(c.pidInt()).getFirst();
            var fn = region.functions().getFirst();
            byte[] jump = dev.suture.x86.Jumps.jmpRel32(fn.oldAddress(), fn.newAddress());
            JournalTest.writePrivate(runDir.resolve(c.pid() + ".journal"), "suture-journal 1\nbegin apply pid="
                    + c.pid() + " start=" + start + " tool=1 at=x what=real\nregion 0x"
                    + Long.toHexString(region.regionAddress()) + " 0x" + Long.toHexString(region.regionSize())
                    + " 0x" + Long.toHexString(region.regionAddress()) + " 0x"
                    + Long.toHexString(region.regionAddress() + region.regionSize()) + "\nwrite 0x"
                    + Long.toHexString(fn.oldAddress()) + " " + java.util.HexFormat.of().formatHex(jump) + " "
                    + hexOfFile(fn.oldAddress()) + "\n");
            var r = Cli.run("recover", "--all");
            assertNotEquals(0, r.code(), r.out() + r.err());
            assertTrue(r.err().contains(a.pid() + ".journal is 3221225472 bytes"), r.err());
            assertTrue(r.err().contains(b.pid() + ".journal is damaged"), r.err());
            assertTrue(r.out().contains("pid " + c.pid() + ": an interrupted apply (real") && r.out().contains(
                    "was finished"), r.out());
            assertFalse(Files.exists(runDir.resolve(c.pid() + ".journal")), "c was recovered");
            Fixture.await(c, c.lines().size(), PATCHED_LINE, 2);
            Files.delete(huge);
            Files.delete(runDir.resolve(b.pid() + ".journal"));
        }
    }

    /** The bytes of {@code exe}'s file at the run-time {@code address} of a non-PIE program (hex). */
    private static String hexOfFile(long address) {
        try (var elf = dev.suture.elf.ElfFile.open(exe)) {
            return java.util.HexFormat.of().formatHex(elf.readAt(address, 5).orElseThrow());
        }
    }

    /** Attack 10 and the messages: pids are checked before any file is made; dead sutures' litter goes. */
    @Test
    void pidsAreCheckedBeforeAnyFileIsMadeAndLitterIsRemoved() throws Exception {
        var before = Files.list(runDir).map(p -> p.getFileName().toString()).sorted().toList();
        record Case(String pid, int code, String says) {}
        int gone = deadPid();
        for (var c : List.of(new Case("-5", 2, "not a process id"), new Case("0", 2, "not a process id"),
                new Case("2147483647", 2, "no process 2147483647"), new Case(Integer.toString(gone), 2,
                        "no process " + gone), new Case("2", 2, "is a kernel thread"))) {
            for (String cmd : List.of("apply", "revert", "stacks", "info")) {
                var args = switch (cmd) {
                    case "apply" -> new String[] {"apply", "-p", c.pid(), patchFile.toString()};
                    case "revert" -> new String[] {"revert", "-p", c.pid(), "--all"};
                    default -> new String[] {cmd, "-p", c.pid()};
                };
                var r = Cli.run(args);
                assertEquals(c.code(), r.code(), String.join(" ", args) + ": " + r.out() + r.err());
                assertTrue(r.err().contains(c.says()), r.err());
            }
        }
        assertEquals(before, Files.list(runDir).map(p -> p.getFileName().toString()).sorted().toList(),
                "no lock was made for a pid that names no user process");
        // what dead sutures and gone processes leave: removed by recover --all; a live suture's is kept
        long self = ProcessHandle.current().pid();
        var litter = List.of("rehearsal-" + gone + ".journal", gone + ".lock", "77.journal." + gone + ".new");
        var kept = List.of("rehearsal-" + self + ".journal", "1.lock");
        for (String name : concat(litter, kept)) {
            JournalTest.writePrivate(runDir.resolve(name), "");
        }
        var r = Cli.run("recover", "--all");
        assertEquals(0, r.code(), r.out() + r.err());
        for (String name : litter) {
            assertFalse(Files.exists(runDir.resolve(name)), name + " is litter");
        }
        for (String name : kept) {
            assertTrue(Files.exists(runDir.resolve(name)), name + " belongs to a live process");
            Files.delete(runDir.resolve(name));
        }
    }

    private static List<String> concat(List<String> a, List<String> b) {
        var out = new ArrayList<>(a);
        out.addAll(b);
        return out;
    }

    /** A pid no process has now (that of a process that has just exited). */
    private static int deadPid() throws Exception {
        var p = new ProcessBuilder("true").start();
        p.waitFor();
        int pid = (int) p.pid();
        assertFalse(Files.exists(Path.of("/proc/" + pid)));
        return pid;
    }

    /**
     * Attack 8's full disk: the run directory on a file system with no room. The command says so and leaves no
     * journal (empty or not) that would block the next one; once there is room, apply works.
     */
    @Test
    void aFullDiskLeavesNoJournalBehind() throws Exception {
        Path small = dir.resolve("small");
        Files.createDirectory(small);
        var mount = new ProcessBuilder("mount", "-t", "tmpfs", "-o", "size=16k,mode=0700", "tmpfs", small.toString())
                .redirectErrorStream(true).start();
        org.junit.jupiter.api.Assumptions.assumeTrue(mount.waitFor() == 0, "cannot mount a tmpfs here");
        try (var t = Target.start(exe)) {
            Fixture.await(t, 0, ORIGINAL_LINE, 2);
            int pid = t.pidInt();
            byte[] before = Fixture.text(pid, exe);
            Path filler = small.resolve("filler");
            try (var out = Files.newOutputStream(filler)) {
                out.write(new byte[64 * 1024]);
            } catch (IOException full) {
                // filled
            }
            var r = suture(small, "apply", "-p", Integer.toString(pid), patchFile.toString());
            assertEquals(5, r.status(), r.toString());
            assertTrue(r.err().contains("no space left in " + small), r.err());
            assertArrayEquals(before, Fixture.text(pid, exe));
            assertFalse(Files.exists(small.resolve(pid + ".journal")), "no journal is left to block the next one");
            Files.delete(filler);
            var again = suture(small, "apply", "-p", Integer.toString(pid), patchFile.toString());
            assertEquals(0, again.status(), again.toString());
            Fixture.await(t, t.lines().size(), PATCHED_LINE, 2);
        } finally {
            new ProcessBuilder("umount", small.toString()).start().waitFor();
        }
    }
}
