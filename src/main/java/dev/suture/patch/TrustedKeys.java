package dev.suture.patch;

import dev.suture.SutureException;
import dev.suture.sys.TrustedFiles;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.security.PublicKey;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.stream.Stream;

/**
 * The public keys whose patches may be applied: the {@code *.pub} files (X.509 PEM) of trust directories, by key
 * id. A trust directory and its keys steer a root suture, so they are believed only when in trusted hands
 * (principle 9, {@link TrustedFiles}): the directory owned by root or the user suture runs as and writable by no one
 * else, each key a regular file with the same owner rule, never a symlink. The name a key is trusted as is its
 * file's name; the signer name a patch carries is only its claim. {@link #check} is the whole policy for a patch;
 * {@link #requireIntact} is the part that holds even when no signature is required.
 */
public final class TrustedKeys {
    static final String DIRECTORY_ROLE = "trust directory";
    static final String KEY_ROLE = "trusted key";
    static final String DIRECTORY_ADVICE = "a trust directory must belong to root (or the user suture runs as) and"
            + " be writable by no one else, like every directory above it: chown root DIR; chmod 755 DIR";
    static final String KEY_ADVICE = "a trusted key must be a regular file (not a symbolic link) that belongs to"
            + " root (or the user suture runs as) and that no one else may write, in a directory that is likewise"
            + " root's: chown root KEY.pub; chmod 644 KEY.pub, or put a copy in its place with"
            + " install -o root -m 644 KEY.pub DIR/";

    private final List<Path> sources;
    /** Key id to the name of the file that holds it (without .pub). */
    private final Map<String, String> names;

    private TrustedKeys(List<Path> sources, Map<String, String> names) {
        this.sources = List.copyOf(sources);
        this.names = Map.copyOf(names);
    }

    /**
     * Loads every {@code *.pub} of each directory (a path may also name one {@code .pub} file), after checking that
     * the directory, the key files and the directories above them are in trusted hands; one that is not is refused
     * ({@link TrustedFiles.UntrustedException}, not permitted). A key file that does not read is an error, not
     * skipped: a trust directory is configuration, and a broken one should show.
     */
    public static TrustedKeys load(List<Path> paths) {
        var names = new LinkedHashMap<String, String>();
        for (Path path : paths) {
            List<Path> files;
            if (Files.isDirectory(path, LinkOption.NOFOLLOW_LINKS)
                    || Files.isSymbolicLink(path) && Files.isDirectory(path)) {
                TrustedFiles.requireDirectory(path, DIRECTORY_ROLE, DIRECTORY_ADVICE); // refuses a symlink too
                try (Stream<Path> entries = Files.list(path)) {
                    // not only regular files: a .pub that is a symlink or a directory is refused, not passed over
                    files = entries.filter(p -> p.getFileName().toString().endsWith(Keys.PUBLIC_SUFFIX))
                            .sorted().toList();
                } catch (IOException e) {
                    throw new SutureException(SutureException.Kind.BAD_INPUT, "cannot read the trust directory "
                            + path + ": " + TrustedFiles.reason(e));
                }
            } else if (Files.exists(path, LinkOption.NOFOLLOW_LINKS)) {
                TrustedFiles.requireParents(path, KEY_ROLE, KEY_ADVICE);
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
                names.putIfAbsent(Keys.keyId(readKey(f)), base);
            }
        }
        if (names.isEmpty()) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, "no public keys (*.pub) in " + describe(paths)
                    + ": no signed patch could be accepted; copy the signers' .pub files there");
        }
        return new TrustedKeys(paths, names);
    }

    /** A key file, checked (regular, trusted owner, not writable by others) and read through O_NOFOLLOW. */
    private static PublicKey readKey(Path file) {
        try {
            byte[] pem = TrustedFiles.readBoundedReadable(file, KEY_ROLE, KEY_ADVICE, Keys.maxKeyFile())
                    .orElseThrow(() -> new SutureException(SutureException.Kind.BAD_INPUT, file
                            + ": no such key file"));
            return Keys.readPublicKey(file, pem);
        } catch (IOException e) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, file + ": cannot read it: "
                    + TrustedFiles.reason(e));
        }
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

    /**
     * The name a trust directory gives the key that made {@code sig} (its .pub file's name), when the key is trusted
     * and the signature verifies; empty otherwise, and the signer name the file carries is only its claim.
     */
    public Optional<String> trustedName(PatchSignature sig) {
        return sig.valid() ? Optional.ofNullable(names.get(sig.keyId())) : Optional.empty();
    }

    /** Trusted key ids and the names of their files. */
    public Map<String, String> names() {
        return names;
    }

    /** The directories and files the keys were loaded from. */
    public List<Path> sources() {
        return sources;
    }

    private static String describe(List<Path> paths) {
        var shown = new ArrayList<String>();
        paths.forEach(p -> shown.add(p.toString()));
        return String.join(", ", shown);
    }
}
