package dev.suture.cli;

import java.time.Duration;
import picocli.CommandLine.Option;

/** {@code --timeout TIME}, one option for every command that waits for code to leave the threads' stacks. */
final class BusyTimeout {
    @Option(names = "--timeout", paramLabel = "TIME", defaultValue = "5s", converter = Durations.Millis.class,
            description = {"How long to retry while code to be replaced or taken out is on some thread's stack",
                    "(default: ${DEFAULT-VALUE}); a thread always inside it is waited for at its return (each",
                    "held there at most half of --max-pause while the others come). A time takes a unit",
                    "(500ms, 5s, 2m); a plain number is milliseconds."})
    Duration duration;

    Duration duration() {
        return duration;
    }
}
