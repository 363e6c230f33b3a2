package dev.suture.patch;

import dev.suture.SutureException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * The public keys whose patches may be applied: the {@code *.pub} files (X.509 PEM) of trust directories, by key
 * id. {@link #check} is the whole policy for a patch; {@link #requireIntact} is the part that holds even when no
 * signature is required.
 */
public final class TrustedKeys {
    private final List<Path> sources;
    /** Key id to the name of the file that holds it (without .pub). */
    private final Map<String, String> names;

    private TrustedKeys(List<Path> sources, Map<String, String> names) {
        this.sources = List.copyOf(sources);
        this.names = Map.copyOf(names);
    }

    /**
     * Loads every {@code *.pub} of each directory (a path may also name one {@code .pub} file). A key file that
     * does not read is an error, not skipped: a trust directory is configuration, and a broken one should show.
     */
    public static TrustedKeys load(List<Path> paths) {
        var names = new LinkedHashMap<String, String>();
        for (Path path : paths) {
            List<Path> files;
            if (Files.isDirectory(path)) {
                try (Stream<Path> entries = Files.list(path)) {
                    files = entries.filter(p -> p.getFileName().toString().endsWith(Keys.PUBLIC_SUFFIX))
                            .filter(Files::isRegularFile).sorted().toList();
                } catch (IOException e) {
                    throw new SutureException(SutureException.Kind.BAD_INPUT, "cannot read the trust directory "
                            + path + ": " + e.getMessage());
                }
            } else if (Files.isRegularFile(path)) {
                files = List.of(path);
            } else {
                throw new SutureException(SutureException.Kind.BAD_INPUT, "trust directory " + path
                        + " does not exist; give a directory of *.pub public keys (suture keygen makes them)");
            }
            for (Path f : files) {
                String base = f.getFileName().toString();
                if (base.endsWith(Keys.PUBLIC_SUFFIX) && base.length() > Keys.PUBLIC_SUFFIX.length()) {
                    base = base.substring(0, base.length() - Keys.PUBLIC_SUFFIX.length());
                }
                names.putIfAbsent(Keys.keyId(Keys.readPublicKey(f)), base);
            }
        }
        if (names.isEmpty()) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, "no public keys (*.pub) in " + describe(paths)
                    + ": no signed patch could be accepted; copy the signers' .pub files there");
        }
        return new TrustedKeys(paths, names);
    }

    /** Refuses a patch whose signature does not verify: a byte changed after signing. Unsigned patches pass. */
    public static void requireIntact(PatchFile patch) {
        var sig = patch.signature();
        if (sig.isPresent() && !sig.get().valid()) {
            throw new PatchTrustException(patch.file() + ": patch " + patch.id() + " carries a signature by "
                    + sig.get() + " that does not verify: the file was changed after it was signed. Do not use this"
                    + " copy; get the original file, or rebuild and sign the patch again.");
        }
    }

    /** Accepts only an intact patch signed by a trusted key; returns the trusted name of that key. */
    public String check(PatchFile patch) {
        requireIntact(patch);
        var sig = patch.signature().orElseThrow(() -> new PatchTrustException(patch.file() + ": patch "
                + patch.id() + " is not signed, and only patches signed by a key in " + describe(sources)
                + " are accepted. Sign it (suture sign " + patch.file() + " --key KEY, or build it with --sign KEY)."));
        String name = names.get(sig.keyId());
        if (name == null) {
            throw new PatchTrustException(patch.file() + ": patch " + patch.id() + " is signed by " + sig
                    + ", which is not one of the " + names.size() + " trusted keys in " + describe(sources)
                    + ". If you trust that signer, add their public key (key id " + sig.keyId() + ") there as a"
                    + " .pub file.");
        }
        return name;
    }

    /** Trusted key ids and the names of their files. */
    public Map<String, String> names() {
        return names;
    }

    private static String describe(List<Path> paths) {
        var shown = new ArrayList<String>();
        paths.forEach(p -> shown.add(p.toString()));
        return String.join(", ", shown);
    }
}
