package dev.suture.cli;

import java.math.BigDecimal;
import java.time.Duration;
import java.util.regex.Pattern;
import picocli.CommandLine;

/**
 * Times on the command line: a number with a unit ({@code 500ms}, {@code 5s}, {@code 2m}, {@code 1h}, decimals
 * allowed), or a plain number in the unit the option has always had (milliseconds for {@code --timeout} and
 * {@code --max-pause} of apply, revert and recover; seconds for {@code build --timeout}), kept so scripts that
 * pass plain numbers mean what they meant.
 */
final class Durations {
    private static final Pattern TIME = Pattern.compile("(\\d+(?:\\.\\d+)?)\\s*(ms|s|m|min|h)?");

    private Durations() {}

    static Duration parse(String text, String plainUnit) {
        var m = TIME.matcher(text.trim());
        if (!m.matches()) {
            throw new CommandLine.TypeConversionException("'" + text + "' is not a time: give a number with a unit"
                    + " (500ms, 5s, 2m, 1h), or a plain number of " + plainUnit);
        }
        String unit = m.group(2) == null ? plainUnit : m.group(2);
        long nanosPerUnit = switch (unit) {
            case "ms", "milliseconds" -> 1_000_000L;
            case "s", "seconds" -> 1_000_000_000L;
            case "m", "min" -> 60_000_000_000L;
            case "h" -> 3_600_000_000_000L;
            default -> throw new IllegalStateException(unit);
        };
        try {
            return Duration.ofNanos(new BigDecimal(m.group(1)).multiply(BigDecimal.valueOf(nanosPerUnit))
                    .longValueExact());
        } catch (ArithmeticException e) {
            throw new CommandLine.TypeConversionException("'" + text + "' is too long a time");
        }
    }

    /** A plain number is milliseconds. */
    static final class Millis implements CommandLine.ITypeConverter<Duration> {
        @Override
        public Duration convert(String value) {
            return parse(value, "milliseconds");
        }
    }

    /** A plain number is seconds. */
    static final class Seconds implements CommandLine.ITypeConverter<Duration> {
        @Override
        public Duration convert(String value) {
            return parse(value, "seconds");
        }
    }

    /** How a duration is written back: the largest unit that keeps it whole. */
    static String format(Duration d) {
        long ms = d.toMillis();
        if (ms % 3_600_000 == 0 && ms > 0) {
            return ms / 3_600_000 + "h";
        }
        if (ms % 60_000 == 0 && ms > 0) {
            return ms / 60_000 + "m";
        }
        if (ms % 1000 == 0 && ms > 0) {
            return ms / 1000 + "s";
        }
        return ms + "ms";
    }
}
