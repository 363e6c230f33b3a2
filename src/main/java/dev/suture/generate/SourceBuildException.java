package dev.suture.generate;

import dev.suture.SutureException;

/**
 * A failure of {@code suture build} before the diff engine runs: a bad source tree or diff, a diff that does not
 * apply, a build that fails, a target the build did not produce, or a diff that changed nothing.
 */
public final class SourceBuildException extends SutureException {
    public SourceBuildException(Kind kind, String message) {
        super(kind, message);
    }

    public SourceBuildException(Kind kind, String message, Throwable cause) {
        super(kind, message, cause);
    }
}
