package dev.suture.agent;

import dev.suture.SutureException;
import dev.suture.sys.Ptrace;
import dev.suture.sys.WaitStatus;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * What the two holds ({@link ExecHold}, {@link LibraryHold}) share: each runs on a thread of its own (ptrace ties a
 * tracee to the thread that seized it), stops and lets go of one thread with raw ptrace, and leaves a record in the
 * run directory that a restarted agent reads back.
 */
final class Holding {
    private Holding() {}

    /**
     * Runs {@code body} on a new thread and returns once it has said (through the future it is given) that the
     * thread it holds is seized, or could not be: the caller then answers the permission event.
     */
    static void start(String name, Consumer<CompletableFuture<Boolean>> body) {
        var seized = new CompletableFuture<Boolean>();
        Thread.ofPlatform().daemon().name(name).start(() -> body.accept(seized));
        try {
            seized.get(500, TimeUnit.MILLISECONDS);
        } catch (Exception e) {
            // the event is answered either way
        }
    }

    /** Seizes {@code tid} and waits until it is stopped; false when it is gone. Signals meanwhile are delivered. */
    static boolean seizeStopped(int tid) {
        Ptrace.ptrace(Ptrace.PTRACE_SEIZE, tid, 0, 0);
        Ptrace.ptrace(Ptrace.PTRACE_INTERRUPT, tid, 0, 0);
        while (true) {
            WaitStatus ws = Ptrace.waitpid(tid, Ptrace.__WALL);
            if (ws.gone()) {
                return false;
            }
            if (ws.event() == Ptrace.PTRACE_EVENT_STOP) {
                return true;
            }
            Ptrace.ptrace(Ptrace.PTRACE_CONT, tid, 0, ws.stopSignal());
        }
    }

    /** Stops {@code tid} (seized by this thread) and detaches; nothing when it is gone meanwhile. */
    static void stopAndDetach(int tid) {
        try {
            Ptrace.ptrace(Ptrace.PTRACE_INTERRUPT, tid, 0, 0);
            var ws = Ptrace.waitpid(tid, Ptrace.__WALL);
            if (!ws.gone()) {
                Ptrace.ptrace(Ptrace.PTRACE_DETACH, tid, 0, 0);
            }
        } catch (SutureException e) {
            // gone meanwhile
        }
    }

    /** A record a killed agent left: the thread or process it names, and its lines. */
    interface Leftover {
        /** Gives back what the record says was held; false when there was nothing (any more) to give back. */
        boolean release(int id, List<String> lines);
    }

    /** Reads and removes every record named {@code prefix<id>}; returns the ids whose hold was given back. */
    static List<Integer> releaseLeftovers(String prefix, Leftover leftover) {
        var out = new java.util.ArrayList<Integer>();
        for (String name : AgentFiles.named(prefix)) {
            try {
                int id = Integer.parseInt(name.substring(prefix.length()));
                if (leftover.release(id, AgentFiles.read(name))) {
                    out.add(id);
                }
            } catch (SutureException | NumberFormatException e) {
                // gone meanwhile, or a damaged record: nothing of ours to give back
            }
            AgentFiles.remove(name);
        }
        return out;
    }
}
