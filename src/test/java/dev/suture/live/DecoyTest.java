package dev.suture.live;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.proc.Auxv;
import dev.suture.proc.Registers;
import dev.suture.proc.ThreadState;
import dev.suture.proc.Tracer;
import dev.suture.sys.Syscalls;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/**
 * The rehearsal's decoy ({@link Preparation}) cannot outlive a killed suture as a spinning process: suture killed
 * while a rehearsed system call runs leaves the decoy's thread in the stub's self-loop, and no recovery reads the
 * rehearsal's journal. (Found as a {@code sleep 30} of a CI run's kill walk still spinning at 100% CPU 50 minutes
 * later, halving the machine for every test after it.) This puts a decoy in that state and waits for it to end.
 */
class DecoyTest {
    @Test
    void aDecoyLeftSpinningInAStubEndsByItself() throws Exception {
        int pid = Preparation.startDecoy();
        try {
            long entry = Auxv.read(pid).entry().orElseThrow(); // run once, long ago: a place for the self-loop
            try (var tracer = Tracer.attach(pid)) {
                tracer.stopAll("test");
                tracer.write(entry, new byte[] {(byte) 0xeb, (byte) 0xfe}); // jmp .
                long[] w = tracer.registers(pid).words().clone();
                w[16] = entry; // rip
                w[15] = -1; // orig_rax: its nanosleep is not restarted
                tracer.setRegisters(pid, Registers.of(w));
                tracer.resumeAll();
            }
            assertTrue(spinning(pid), "the decoy does not spin: the test put it nowhere");
            long deadline = System.nanoTime() + Duration.ofSeconds(15).toNanos();
            while (ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false)
                    && System.nanoTime() < deadline) {
                Thread.sleep(50);
            }
            assertFalse(ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false),
                    "the decoy still spins 15 s later");
        } finally {
            try {
                Syscalls.kill(pid, 9);
            } catch (RuntimeException gone) {
                // ended by itself, as it should
            }
        }
    }

    /** Whether the process is running (state R) within half a second. */
    private static boolean spinning(int pid) throws Exception {
        for (int i = 0; i < 50; i++) {
            if (ThreadState.of(pid, pid) == 'R') {
                return true;
            }
            Thread.sleep(10);
        }
        return false;
    }
}
