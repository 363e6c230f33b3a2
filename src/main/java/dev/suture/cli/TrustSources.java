package dev.suture.cli;

import dev.suture.SutureException;
import dev.suture.patch.TrustedKeys;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/**
 * Where the keys that apply and inspect trust come from: {@code --trust} when given, else the configured trust
 * directory ({@code $SUTURE_TRUST_DIR}, else {@value #SYSTEM_TRUST_DIR}) when there is one. Either is checked by
 * {@link TrustedKeys#load} before a key in it is believed.
 */
final class TrustSources {
    /** The trust directory of the machine's configuration, when $SUTURE_TRUST_DIR does not name another. */
    static final String SYSTEM_TRUST_DIR = "/etc/suture/trusted-keys";

    private TrustSources() {}

    /**
     * The trusted keys of {@code given} (--trust), else of the configured trust directory; empty when neither is
     * there. $SUTURE_TRUST_DIR naming nothing is an error: a configuration that points nowhere should show.
     */
    static Optional<TrustedKeys> load(List<Path> given) {
        if (given != null && !given.isEmpty()) {
            return Optional.of(TrustedKeys.load(given));
        }
        return configured().map(dir -> TrustedKeys.load(List.of(dir)));
    }

    /** The configured trust directory, if something is there (a symlink too: load refuses it, and says so). */
    static Optional<Path> configured() {
        String configured = System.getenv("SUTURE_TRUST_DIR");
        boolean set = configured != null && !configured.isEmpty();
        Path dir = Path.of(set ? configured : SYSTEM_TRUST_DIR);
        if (Files.isDirectory(dir, LinkOption.NOFOLLOW_LINKS) || Files.isSymbolicLink(dir)) {
            return Optional.of(dir);
        }
        if (set) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, "SUTURE_TRUST_DIR names " + dir
                    + ", which is not a directory; point it at a directory of trusted *.pub keys or unset it");
        }
        return Optional.empty();
    }
}
