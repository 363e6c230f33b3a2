package dev.suture.proc;

import dev.suture.SutureException;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.FutureTask;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

/**
 * The one platform thread that makes every ptrace call of a {@link Tracer} (Linux ties a tracee to the thread that
 * attached, DESIGN principle 2); other threads hand it their work and wait, as Delve's {@code execPtraceFunc}.
 * Between tasks it answers what the tracees report.
 */
final class PtraceThread {
    private static final long IDLE_POLL_NANOS = TimeUnit.MILLISECONDS.toNanos(1);
    private static final long MIN_POLL_NANOS = TimeUnit.MICROSECONDS.toNanos(20);

    private final int pid;
    private final Thread thread;
    private final LinkedBlockingQueue<Runnable> tasks = new LinkedBlockingQueue<>();
    private volatile boolean shutdown;

    /**
     * @param listening whether, between tasks, there are tracees to listen to
     * @param answer    answers what they report; true when it had something to answer (polls sooner)
     * @param afterTask run after each task
     * @param atExit    run once the thread is told to stop, before it ends
     */
    PtraceThread(int pid, BooleanSupplier listening, BooleanSupplier answer, Runnable afterTask, Runnable atExit) {
        this.pid = pid;
        this.thread = Thread.ofPlatform().daemon().name("suture-tracer-" + pid)
                .unstarted(() -> loop(listening, answer, afterTask, atExit));
        thread.start();
    }

    private void loop(BooleanSupplier listening, BooleanSupplier answer, Runnable afterTask, Runnable atExit) {
        long idle = MIN_POLL_NANOS;
        while (!shutdown) {
            Runnable task;
            try {
                task = tasks.poll(idle, TimeUnit.NANOSECONDS);
            } catch (InterruptedException e) {
                continue; // shutdown is checked above
            }
            if (task != null) {
                task.run();
                afterTask.run();
            } else if (listening.getAsBoolean()) {
                // tracees wait in their stops until answered: poll often right after an event (they come in
                // bursts), back off when the process is quiet
                idle = answer.getAsBoolean() ? MIN_POLL_NANOS : Math.min(IDLE_POLL_NANOS, idle * 2);
            }
        }
        atExit.run();
    }

    /** Runs {@code work} on this thread (directly when called from it) and returns its result. */
    <T> T execute(Callable<T> work) {
        if (isCurrent()) {
            try {
                return work.call();
            } catch (RuntimeException e) {
                throw e;
            } catch (Exception e) {
                throw new SutureException(SutureException.Kind.INTERNAL, e.toString(), e);
            }
        }
        if (shutdown) {
            throw new SutureException(SutureException.Kind.INTERNAL, "the tracer of process " + pid
                    + " is closed");
        }
        var task = new FutureTask<>(work);
        tasks.add(task);
        try {
            return task.get();
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException r) {
                r.addSuppressed(new Exception("called from here"));
                throw r;
            }
            if (e.getCause() instanceof Error err) {
                throw err;
            }
            throw new SutureException(SutureException.Kind.INTERNAL, String.valueOf(e.getCause()), e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new SutureException(SutureException.Kind.INTERNAL, "interrupted while waiting for the tracer");
        }
    }

    boolean isCurrent() {
        return Thread.currentThread() == thread;
    }

    boolean isShutdown() {
        return shutdown;
    }

    /** Tells the thread to end; it runs {@code atExit} first. */
    void shutdown() {
        shutdown = true;
        thread.interrupt();
    }
}
