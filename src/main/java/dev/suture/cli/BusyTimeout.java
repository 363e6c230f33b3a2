package dev.suture.cli;

import dev.suture.SutureException;
import java.time.Duration;
import picocli.CommandLine.Option;

/** {@code --timeout MS}, one option for every command that waits for code to leave the threads' stacks. */
final class BusyTimeout {
    @Option(names = "--timeout", paramLabel = "MS", defaultValue = "5000",
            description = "How long to retry while code to be replaced or taken out is on some thread's stack"
                    + " (default: ${DEFAULT-VALUE} ms).")
    long millis;

    Duration duration() {
        if (millis < 0) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, "--timeout must be >= 0, not " + millis);
        }
        return Duration.ofMillis(millis);
    }
}
