package dev.suture.cli;

import dev.suture.live.Pause;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * How {@code apply}, {@code revert} and {@code recover} report what their holds cost the target (principle 10):
 * in text the longest hold of a thread that was running when held, how long every thread was stopped at once and
 * how long suture waited for busy threads to return from the replaced code; in --json those and every hold (which thread, which step, how long, whether it was running).
 */
final class PauseReport {
    private PauseReport() {}

    /** "pause 0.150 ms (the longest hold of a running thread; all threads stopped 0.120 ms)", or what says none ran. */
    static String text(Pause p) {
        String all = (p.allStoppedNanos() > 0
                ? String.format(Locale.ROOT, "; all threads stopped %.3f ms", p.allStoppedNanos() / 1e6) : "")
                + (p.waitedNanos() > 0 ? String.format(Locale.ROOT, "; after waiting %.1f ms for busy threads to"
                + " return from the replaced code", p.waitedNanos() / 1e6) : "");
        if (p.holds().stream().noneMatch(h -> h.running())) {
            return String.format(Locale.ROOT, "no running thread was held (every held thread was blocked in a"
                    + " system call, the longest held %.3f ms%s)", p.longestNanos() / 1e6, all);
        }
        return String.format(Locale.ROOT, "pause %.3f ms (the longest hold of a running thread%s)",
                p.longestRunningNanos() / 1e6, all);
    }

    /** Puts the pause's fields into a result's --json map. */
    static void json(Pause p, Map<String, Object> m) {
        m.put("longestRunningHoldMicros", p.longestRunningNanos() / 1000.0);
        m.put("allStoppedMicros", p.allStoppedNanos() / 1000.0);
        m.put("waitedAtReturnsMicros", p.waitedNanos() / 1000.0);
        m.put("holds", p.holds().stream().map(h -> {
            var hold = new LinkedHashMap<String, Object>();
            hold.put("thread", h.thread());
            hold.put("step", h.step());
            hold.put("micros", h.nanos() / 1000.0);
            hold.put("running", h.running());
            return hold;
        }).toList());
    }
}
