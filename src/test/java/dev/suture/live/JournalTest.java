package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.SutureException;
import dev.suture.cli.Cli;
import dev.suture.testing.Target;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The journal's file format and the rules around it: records read back as written, a record cut short by a
 * death is ignored, a damaged journal is reported; apply refuses a process with a pending journal and names
 * recover; a journal of a process that is gone is removed; recover with no journal is a no-op.
 */
class JournalTest {
    @TempDir
    static Path dir;
    static Path exe;
    static Path valuePatch;
    Path runDir;

    @BeforeAll
    static void build() throws IOException {
        String program = TransactionSafetyTest.PROGRAM;
        Path orig = Fixture.object(dir, "orig", "prog", program, "-fno-pie");
        exe = Fixture.link(dir, "prog", List.of(orig), "-no-pie");
        Path obj = Fixture.object(dir, "value2", "prog", program.replace("int value(void) {\n    return 1;",
                "int value(void) {\n    return 2;"), "-fno-pie");
        valuePatch = dir.resolve("value2.suture");
        Fixture.diff(exe, List.of(orig), List.of(obj), "value2", valuePatch);
    }

    @BeforeEach
    void runDirectory() throws IOException {
        runDir = Files.createTempDirectory(dir, "run");
        System.setProperty("suture.runDir", runDir.toString());
    }

    @AfterEach
    void clear() {
        System.clearProperty("suture.runDir");
    }

    @Test
    void recordsReadBackAsWritten() {
        int pid = (int) ProcessHandle.current().pid();
        var write = new ApplyTransaction.Write(0x401000, new byte[] {(byte) 0xe9, 1, 2, 3, 4}, new byte[] {0x55, 0x48,
            (byte) 0x89, (byte) 0xe5, 0x48});
        long[] regs = new long[27]; // the record's hex is hand-made: every digit count, the sign bit, zero
        for (int i = 0; i < regs.length; i++) {
            regs[i] = 0x0123456789abcdefL >>> (4 * (i % 16)) ^ (i >= 16 ? Long.MIN_VALUE : 0);
        }
        regs[16] = 0x401234;
        regs[10] = -512;
        regs[3] = 0;
        regs[4] = -1;
        try (var j = Journal.begin(pid, Journal.Operation.APPLY, "apply my patch 100%")) {
            j.region(0x7f0000, 0x2000, 0x7f0100, 0x7f0200);
            // stored into the room the stub record leaves (a mapped blank line), not appended
            j.stub(0x4010b2, new byte[] {0x66, 0x2e, 0x0f, 0x1f}, new byte[] {0x0f, 0x05, (byte) 0xeb, (byte) 0xfe});
            j.borrowing(pid + 1, 0x4010b2, new byte[] {0x66, 0x2e, 0x0f, 0x1f}, new byte[] {0x0f, 0x05,
                (byte) 0xeb, (byte) 0xfe}, regs);
            j.writes(List.of(write));
            j.committed();
            j.unmap(0x6f0000, 0x1000, "older");
        }
        var text = readJournal(pid);
        int stub = text.indexOf("\nstub ");
        assertTrue(stub > 0 && text.startsWith("inject " + (pid + 1) + " 0x4010b2 ", text.indexOf('\n', stub + 1) + 1),
                "the inject record fills the room right after its stub record:\n" + text);
        assertFalse(text.contains("\n#"), text);
        var p = JournalReader.read(pid).orElseThrow();
        assertEquals(Journal.Operation.APPLY, p.operation());
        assertEquals("apply my patch 100%", p.what());
        assertTrue(p.sameProcess());
        assertEquals(new JournalReader.Region(0x7f0000, 0x2000, 0x7f0100, 0x7f0200), p.region());
        assertEquals(1, p.writes().size());
        assertArrayEquals(write.bytes(), p.writes().getFirst().bytes());
        assertArrayEquals(write.undo(), p.writes().getFirst().undo());
        assertTrue(p.committed());
        assertEquals(List.of(new JournalReader.Unmap(0x6f0000, 0x1000, "older")), p.unmaps());
        assertEquals(1, p.injections().size());
        assertArrayEquals(regs, p.injections().getFirst().registers());
        assertEquals(pid + 1, p.injections().getFirst().tid());
        assertEquals(0x4010b2, p.injections().getFirst().stub());
        assertArrayEquals(new byte[] {0x66, 0x2e, 0x0f, 0x1f}, p.injections().getFirst().stubOriginal());
        assertArrayEquals(new byte[] {0x0f, 0x05, (byte) 0xeb, (byte) 0xfe}, p.injections().getFirst().stubCode());
    }

    @Test
    void aRecordCutShortIsIgnoredAndAReturnedThreadIsNotPending() throws IOException {
        int pid = (int) ProcessHandle.current().pid();
        try (var j = Journal.begin(pid, Journal.Operation.REVERT, "revert x")) {
            j.borrowing(7, 0x1000, new byte[4], new byte[4], new long[27]);
            j.returned(7);
        }
        Path file = runDir.resolve(pid + ".journal");
        Files.writeString(file, "write 0x401000 e9000000", java.nio.file.StandardOpenOption.APPEND);
        var p = JournalReader.read(pid).orElseThrow();
        assertTrue(p.writes().isEmpty(), "the half-written record announced a write that never happened");
        assertTrue(p.injections().isEmpty());
        assertFalse(p.committed());
    }

    /**
     * The room for an inject record, never filled (suture died before the hold) or filled but for its first byte
     * (died inside the store, which puts that byte last): a blank line, and no thread is taken for borrowed.
     */
    @Test
    void roomLeftForAnInjectRecordReadsAsNothing() throws IOException {
        int pid = (int) ProcessHandle.current().pid();
        try (var j = Journal.begin(pid, Journal.Operation.APPLY, "apply x")) {
            j.stub(0x1000, new byte[4], new byte[] {0x0f, 0x05, (byte) 0xeb, (byte) 0xfe});
        }
        Path file = runDir.resolve(pid + ".journal");
        String text = Files.readString(file);
        assertTrue(text.endsWith(" \n") && text.contains("\n#  "), text);
        var p = JournalReader.read(pid).orElseThrow();
        assertTrue(p.injections().isEmpty());
        assertEquals(1, p.stubs().size(), "the stub is still to be removed");
        int blank = text.indexOf("\n#") + 1;
        String cut = "#nject 7 0x1000 00000000 0f05ebfe" + " 0".repeat(27);
        Files.writeString(file, text.substring(0, blank) + cut + text.substring(blank + cut.length()));
        p = JournalReader.read(pid).orElseThrow();
        assertTrue(p.injections().isEmpty(), "a record whose first byte is not stored is not one");
        Files.writeString(file, text.substring(0, blank) + cut.replaceFirst("#", "i") + text.substring(blank
                + cut.length()));
        assertEquals(7, JournalReader.read(pid).orElseThrow().injections().getFirst().tid(),
                "a stored record, spaces after it, reads as the others do");
    }

    private String readJournal(int pid) {
        try {
            return Files.readString(runDir.resolve(pid + ".journal"));
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    @Test
    void aDamagedJournalIsReportedNotGuessed() throws IOException {
        Path file = runDir.resolve("12345.journal");
        writePrivate(file, "suture-journal 1\nbegin apply pid=12345 start=x tool=1 at=y what=z\nwrite 0xzz\n");
        var e = assertThrows(SutureException.class, () -> JournalReader.read(12345));
        assertEquals(SutureException.Kind.BAD_INPUT, e.kind());
        assertTrue(e.getMessage().contains("is damaged") && e.getMessage().contains(file.toString()), e.getMessage());
        Files.writeString(file, "suture-journal 1\nbegin apply pid=1 start=x tool=1 at=y what=z\n");
        e = assertThrows(SutureException.class, () -> JournalReader.read(12345));
        assertTrue(e.getMessage().contains("names pid 1, not 12345"), e.getMessage());
        // a journal appears with its header complete: a file without one is none (a full disk, not suture's)
        for (String notOne : List.of("", "not a journal\n", "suture-journal 1\n", "suture-journal 1\nbegin")) {
            Files.writeString(file, notOne);
            assertTrue(JournalReader.read(12345).isEmpty(), notOne);
        }
    }

    @Test
    void applyRefusesAProcessWithAPendingJournalUntilRecovered() throws Exception {
        try (var t = Target.start(exe)) {
            Fixture.await(t, 0, "value 1", 2);
            try (var j = Journal.begin(t.pidInt(), Journal.Operation.APPLY, "apply something")) {
                j.region(0x10000, 0x1000, 0x10100, 0x10200); // never mapped: recover has nothing to undo
            }
            var r = Cli.run("apply", "-p", Long.toString(t.pid()), valuePatch.toString());
            assertEquals(5, r.code(), r.out() + r.err());
            assertTrue(r.err().contains("interrupted apply") && r.err().contains("suture recover -p " + t.pid()),
                    r.err());
            var info = Cli.run("info", "-p", Long.toString(t.pid()));
            assertTrue(info.out().contains("interrupted apply (apply something") && info.out().contains(
                    "run 'suture recover -p " + t.pid() + "'"), info.out());
            var recovered = Cli.run("recover", "-p", Long.toString(t.pid()));
            assertEquals(0, recovered.code(), recovered.out() + recovered.err());
            assertTrue(recovered.out().contains("rolled back"), recovered.out());
            assertFalse(Files.exists(runDir.resolve(t.pid() + ".journal")));
            var again = Cli.run("apply", "-p", Long.toString(t.pid()), valuePatch.toString());
            assertEquals(0, again.code(), again.out() + again.err());
            Fixture.await(t, t.lines().size(), "value 2", 2);
        }
    }

    @Test
    void aJournalOfAProcessThatIsGoneIsRemoved() throws Exception {
        try (var t = Target.start(exe)) {
            Fixture.await(t, 0, "value 1", 2);
            Path file = runDir.resolve(t.pid() + ".journal");
            writePrivate(file, "suture-journal 1\nbegin apply pid=" + t.pid() + " start=2001-01-01T00:00:00Z"
                    + " tool=1 at=2001-01-01T00:00:01Z what=old\n");
            var r = Cli.run("recover", "--all");
            assertEquals(0, r.code(), r.out() + r.err());
            assertTrue(r.out().contains("is gone") && r.out().contains("removed"), r.out());
            assertFalse(Files.exists(file));
            var none = Cli.run("recover", "-p", Long.toString(t.pid()));
            assertEquals(0, none.code());
            assertTrue(none.out().contains("nothing to recover"), none.out());
        }
    }

    /** A file as suture makes them in its run directory: mode 0600. */
    static void writePrivate(Path file, String text) throws IOException {
        Files.deleteIfExists(file);
        Files.createFile(file, java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
                java.nio.file.attribute.PosixFilePermissions.fromString("rw-------")));
        Files.writeString(file, text);
    }
}
