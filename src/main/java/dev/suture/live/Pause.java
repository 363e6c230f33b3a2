package dev.suture.live;

import dev.suture.proc.Hold;
import java.util.List;

/**
 * What a transaction's holds cost the target (principle 10): every span one of its threads was held, over every
 * hold of the transaction (the injected system calls, each window, the release), and how long the window that
 * wrote held every thread at once, and how long the program ran on while suture waited for busy threads to return
 * from the code being replaced (their holds at the return are among the holds, named "return"). The tracer records the holds ({@link dev.suture.proc.Tracer#holds()}); the
 * transaction collects them once the tracer has closed.
 */
public record Pause(List<Hold> holds, long allStoppedNanos, long waitedNanos) {
    /** Nothing held (a dry run, nothing to do). */
    public static final Pause NONE = new Pause(List.of(), 0, 0);

    public Pause {
        holds = List.copyOf(holds);
    }

    /** The longest hold of a thread that was running when held (0 when none was): what the program feels. */
    public long longestRunningNanos() {
        return holds.stream().filter(Hold::running).mapToLong(Hold::nanos).max().orElse(0);
    }

    /** The longest hold of any thread, running or blocked in a system call. */
    public long longestNanos() {
        return holds.stream().mapToLong(Hold::nanos).max().orElse(0);
    }

    /** This pause with {@code holds} as its holds. */
    Pause withHolds(List<Hold> holds) {
        return new Pause(holds, allStoppedNanos, waitedNanos);
    }
}
