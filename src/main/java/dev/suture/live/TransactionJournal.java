package dev.suture.live;

import dev.suture.SutureException;
import dev.suture.proc.Tracer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.function.Supplier;

/**
 * The journal's life within one transaction: none until the first write into the target is near, then every
 * step recorded; deleted when the transaction ends done or fully undone, or when the process is gone; otherwise
 * left for {@code suture recover}, and the failure says so.
 */
final class TransactionJournal implements AutoCloseable {
    private final int pid;
    private Journal journal;
    private Tracer tracer;
    private boolean committed;

    TransactionJournal(int pid) {
        this.pid = pid;
    }

    /** Starts the journal; from here on every thread the tracer borrows is recorded before it is. */
    Journal begin(Tracer tracer, Journal.Operation op, String what) {
        this.journal = Journal.begin(pid, op, what);
        this.tracer = tracer;
        tracer.injectionLog(journal);
        return journal;
    }

    Journal journal() {
        return journal;
    }

    /** The window's writes are all in; nothing may be undone after this. */
    void commit() {
        committed = true;
        journal.committed();
    }

    boolean committed() {
        return committed;
    }

    /** The transaction ended (done, or undone); the journal goes when closed. */
    void end() {
        if (journal != null) {
            journal.end();
        }
    }

    /** Ends the journal if every write holds its original bytes again (a failed transaction undid itself). */
    void endIfUntouched(List<ApplyTransaction.Write> writes) {
        if (journal == null || journal.borrowed() > 0) {
            return; // a thread may still be parked in a stub
        }
        for (var w : writes) {
            if (!Arrays.equals(tracer.read(w.address(), w.undo().length), w.undo())) {
                return;
            }
        }
        end();
    }

    /**
     * Runs the transaction. A failure that leaves the journal behind says so and what to run; a process that
     * vanished needs no recovery, so its journal goes.
     */
    <T> T settle(Supplier<T> work) {
        try {
            return work.get();
        } catch (RuntimeException e) {
            var kind = e instanceof SutureException s ? s.kind() : SutureException.Kind.INTERNAL;
            if (kind == SutureException.Kind.VANISHED || !Files.isDirectory(Path.of("/proc/" + pid))) {
                end();
                throw e;
            }
            if (journal != null && !journal.isEnded()) {
                throw new SutureException(kind, e.getMessage() + "; the transaction was left unfinished and is"
                        + " journaled in " + RunDirectory.journal(pid) + ": run 'suture recover -p " + pid + "'", e);
            }
            throw e;
        }
    }

    @Override
    public void close() {
        if (journal != null) {
            tracer.injectionLog(null);
            journal.close();
        }
    }
}
