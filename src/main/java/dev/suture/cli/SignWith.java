package dev.suture.cli;

import dev.suture.patch.Keys;
import java.io.PrintWriter;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** {@code --sign KEY}, for the commands that write patches ({@code build}, {@code diff}). */
final class SignWith {
    @Option(names = "--sign", paramLabel = "KEY",
            description = "Sign what is written with this Ed25519 private key (PKCS#8 PEM, e.g. from suture keygen).")
    Path key;

    /** The key, read before any work so that a wrong path fails first; null when none was given. */
    Keys.SigningKey read(PrintWriter err) {
        return key == null ? null : SignCommand.readKey(key, err);
    }
}
