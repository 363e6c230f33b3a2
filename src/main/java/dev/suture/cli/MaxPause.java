package dev.suture.cli;

import dev.suture.SutureException;
import dev.suture.live.Patcher;
import java.time.Duration;
import picocli.CommandLine.Option;

/**
 * {@code --max-pause MS}, the budget of a stop-the-world window's hold of the running threads, for every command that
 * holds a target's threads.
 */
final class MaxPause {
    @Option(names = "--max-pause", paramLabel = "MS", defaultValue = "50",
            description = {"How long one stop of the process may hold its running threads (default:",
                    "${DEFAULT-VALUE} ms; the threads blocked in system calls are held first, the running ones last).",
                    "A stop that runs longer (suture stopped by SIGSTOP, or starved of a CPU) is undone and",
                    "retried within --timeout. Ctrl-Z (SIGTSTP, SIGTTIN, SIGTTOU) is ignored while threads are",
                    "held; a suture stopped by SIGSTOP holds them until it continues or dies (docs/apply.md)."})
    long millis = Patcher.DEFAULT_MAX_PAUSE.toMillis();

    Duration duration() {
        if (millis <= 0) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, "--max-pause must be a positive number of"
                    + " milliseconds, not " + millis);
        }
        return Duration.ofMillis(millis);
    }
}
