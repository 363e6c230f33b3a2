package dev.suture.cli;

import dev.suture.SutureException;
import java.time.Duration;
import picocli.CommandLine.Option;

/** {@code --max-pause TIME}, the budget of a stop-the-world window, for every command that holds a target's threads. */
final class MaxPause {
    @Option(names = "--max-pause", paramLabel = "TIME", defaultValue = "50ms", converter = Durations.Millis.class,
            description = {"How long one stop of the process may hold its threads (default: ${DEFAULT-VALUE}; a",
                    "plain number is milliseconds). A stop that runs longer (suture stopped by SIGSTOP, or",
                    "starved of a CPU) is undone and retried within --timeout. Ctrl-Z (SIGTSTP, SIGTTIN, SIGTTOU)",
                    "is ignored while threads are held; a suture stopped by SIGSTOP holds them until it continues",
                    "or dies (docs/apply.md)."})
    Duration duration;

    Duration duration() {
        if (duration.isZero()) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, "--max-pause must be longer than 0, not "
                    + Durations.format(duration));
        }
        return duration;
    }
}
