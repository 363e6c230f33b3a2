package dev.suture.patch;

import dev.suture.SutureException;
import dev.suture.sys.TrustedFiles;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.SecureRandom;
import java.security.Signature;
import java.security.interfaces.EdECPrivateKey;
import java.security.spec.NamedParameterSpec;
import java.security.spec.PKCS8EncodedKeySpec;
import java.security.spec.X509EncodedKeySpec;
import java.util.Arrays;
import java.util.Base64;
import java.util.regex.Pattern;

/**
 * Ed25519 key files for signing patches: PKCS#8 ({@code BEGIN PRIVATE KEY}) and X.509 SubjectPublicKeyInfo
 * ({@code BEGIN PUBLIC KEY}) PEM, the formats {@code openssl genpkey -algorithm ed25519} writes, and the key id
 * that names a public key everywhere (SHA-256 of its SubjectPublicKeyInfo DER).
 */
public final class Keys {
    public static final String ALGORITHM = "Ed25519";
    public static final String PRIVATE_SUFFIX = ".key";
    public static final String PUBLIC_SUFFIX = ".pub";
    /** Signer names and key names: what fits in a file name and on one line of {@code .suture.sig}. */
    static final Pattern NAME = Pattern.compile("[A-Za-z0-9._@+-]{1,128}");
    /** A key file is a few hundred bytes; anything much larger is not one (and is not read whole). */
    private static final long MAX_KEY_FILE = 64 * 1024;

    private Keys() {}

    /** A private key with its public half and the name it signs as. */
    public record SigningKey(PrivateKey privateKey, PublicKey publicKey, String signer) {
        public String keyId() {
            return Keys.keyId(publicKey);
        }
    }

    /** The two files {@link #writePair} made. */
    public record PairFiles(Path privateKey, Path publicKey, String keyId) {}

    /** Whether {@code name} may name a key or a signer (1-128 of A-Z a-z 0-9 . _ @ + -). */
    public static boolean isValidName(String name) {
        return NAME.matcher(name).matches();
    }

    /** Generates a key pair and writes {@code dir/NAME.key} (mode 0600) and {@code dir/NAME.pub}; never overwrites. */
    public static PairFiles writePair(Path dir, String name) {
        if (!isValidName(name)) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, "key name \"" + name
                    + "\" is not 1-128 characters of A-Z a-z 0-9 . _ @ + -");
        }
        Path priv = dir.resolve(name + PRIVATE_SUFFIX);
        Path pub = dir.resolve(name + PUBLIC_SUFFIX);
        for (Path p : new Path[] {priv, pub}) {
            if (Files.exists(p, LinkOption.NOFOLLOW_LINKS)) {
                throw new SutureException(SutureException.Kind.BAD_INPUT, p + " already exists; suture keygen never"
                        + " overwrites a key: choose another --name or -o directory, or remove the old pair first");
            }
        }
        KeyPair pair;
        try {
            pair = KeyPairGenerator.getInstance(ALGORITHM).generateKeyPair();
        } catch (GeneralSecurityException e) {
            throw new SutureException(SutureException.Kind.INTERNAL, "this JDK cannot make Ed25519 keys: " + e, e);
        }
        try {
            // the README's own example names a directory that may not exist yet: made private, like the key
            Files.createDirectories(dir, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
            // CREATE_NEW with the mode given at creation: the private key is never readable by others, not even
            // for an instant, and a file that appeared meanwhile is not overwritten.
            Files.createFile(priv, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
            Files.writeString(priv, pem("PRIVATE KEY", pair.getPrivate().getEncoded()));
            Files.createFile(pub, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-r--r--")));
            Files.writeString(pub, pem("PUBLIC KEY", pair.getPublic().getEncoded()));
        } catch (FileAlreadyExistsException e) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, e.getFile() + " already exists; suture keygen"
                    + " never overwrites a key");
        } catch (IOException e) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, "cannot write keys to " + dir + ": "
                    + TrustedFiles.reason(e));
        }
        return new PairFiles(priv, pub, keyId(pair.getPublic()));
    }

    /**
     * Reads a PKCS#8 Ed25519 private key and derives its public key. The signer name is the file's name without
     * {@code .key} (characters a name cannot hold become {@code _}).
     */
    public static SigningKey readSigningKey(Path file) {
        byte[] der = readPem(file, "PRIVATE KEY");
        PrivateKey key;
        try {
            key = KeyFactory.getInstance(ALGORITHM).generatePrivate(new PKCS8EncodedKeySpec(der));
        } catch (GeneralSecurityException | RuntimeException e) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, file + ": not an Ed25519 private key ("
                    + e.getMessage() + "); make one with suture keygen or openssl genpkey -algorithm ed25519");
        }
        String base = file.getFileName().toString();
        if (base.endsWith(PRIVATE_SUFFIX) && base.length() > PRIVATE_SUFFIX.length()) {
            base = base.substring(0, base.length() - PRIVATE_SUFFIX.length());
        }
        String signer = base.replaceAll("[^A-Za-z0-9._@+-]", "_");
        if (signer.length() > 128) {
            signer = signer.substring(0, 128);
        }
        return new SigningKey(key, publicOf(file, key), signer);
    }

    /** Reads an X.509 SubjectPublicKeyInfo PEM file holding an Ed25519 public key. */
    public static PublicKey readPublicKey(Path file) {
        return publicKey(file, readPem(file, "PUBLIC KEY"));
    }

    /** The Ed25519 public key in {@code contents}, the PEM text of {@code file} already read (and checked). */
    static PublicKey readPublicKey(Path file, byte[] contents) {
        return publicKey(file, pemBlock(file, new String(contents, StandardCharsets.US_ASCII), "PUBLIC KEY"));
    }

    /** At most this many bytes are read of a key file. */
    static int maxKeyFile() {
        return (int) MAX_KEY_FILE;
    }

    private static PublicKey publicKey(Path file, byte[] der) {
        try {
            return decodePublic(der);
        } catch (GeneralSecurityException | RuntimeException e) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, file + ": not an Ed25519 public key ("
                    + e.getMessage() + ")");
        }
    }

    /** Decodes the DER of an Ed25519 SubjectPublicKeyInfo. */
    static PublicKey decodePublic(byte[] der) throws GeneralSecurityException {
        return KeyFactory.getInstance(ALGORITHM).generatePublic(new X509EncodedKeySpec(der));
    }

    /** The key id: SHA-256 of the SubjectPublicKeyInfo DER, 64 lowercase hex digits (what openssl can recompute). */
    public static String keyId(PublicKey key) {
        return PatchFile.sha256(key.getEncoded());
    }

    /** The first 16 hex digits of a key id, for people. */
    public static String shortId(String keyId) {
        return keyId.length() <= 16 ? keyId : keyId.substring(0, 16);
    }

    /**
     * The public key of {@code key}. The JDK has no call for it, but its Ed25519 key pair generator takes the
     * private key's 32 bytes from the random source it is given: hand it exactly those and it computes the public
     * key. A signature check proves the result, so a JDK that generates keys differently fails loudly here.
     */
    private static PublicKey publicOf(Path file, PrivateKey key) {
        byte[] raw = ((EdECPrivateKey) key).getBytes().orElseThrow(() -> new SutureException(
                SutureException.Kind.BAD_INPUT, file + ": the private key's bytes are not available"));
        try {
            var generator = KeyPairGenerator.getInstance(ALGORITHM);
            generator.initialize(NamedParameterSpec.ED25519, new SecureRandom() {
                @Override
                public void nextBytes(byte[] bytes) {
                    Arrays.fill(bytes, (byte) 0);
                    System.arraycopy(raw, 0, bytes, 0, Math.min(raw.length, bytes.length));
                }
            });
            PublicKey pub = generator.generateKeyPair().getPublic();
            byte[] probe = "suture key check".getBytes(StandardCharsets.US_ASCII);
            var signer = Signature.getInstance(ALGORITHM);
            signer.initSign(key);
            signer.update(probe);
            byte[] sig = signer.sign();
            var verifier = Signature.getInstance(ALGORITHM);
            verifier.initVerify(pub);
            verifier.update(probe);
            if (!verifier.verify(sig)) {
                throw new GeneralSecurityException("the derived public key does not verify the key's signature");
            }
            return pub;
        } catch (GeneralSecurityException e) {
            throw new SutureException(SutureException.Kind.INTERNAL, file + ": cannot derive the public key: "
                    + e.getMessage(), e);
        } finally {
            Arrays.fill(raw, (byte) 0);
        }
    }

    private static byte[] readPem(Path file, String label) {
        String text;
        try {
            if (Files.size(file) > MAX_KEY_FILE) {
                throw new SutureException(SutureException.Kind.BAD_INPUT, file + ": " + Files.size(file)
                        + " bytes is too large for a key file");
            }
            text = Files.readString(file, StandardCharsets.US_ASCII);
        } catch (NoSuchFileException e) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, file + ": no such key file");
        } catch (AccessDeniedException e) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, file + ": permission denied");
        } catch (java.nio.charset.CharacterCodingException e) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, file + ": not a PEM key file (it holds bytes"
                    + " that are not text); suture keygen or openssl genpkey -algorithm ed25519 makes key files it"
                    + " reads");
        } catch (IOException e) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, file + ": cannot read it: "
                    + TrustedFiles.reason(e));
        }
        return pemBlock(file, text, label);
    }

    private static byte[] pemBlock(Path file, String text, String label) {
        String begin = "-----BEGIN " + label + "-----";
        String end = "-----END " + label + "-----";
        int b = text.indexOf(begin);
        int e = b < 0 ? -1 : text.indexOf(end, b + begin.length());
        if (b < 0 || e < 0) {
            String hint = text.contains("ENCRYPTED PRIVATE KEY")
                    ? " (it is encrypted: suture reads unencrypted keys; openssl pkey -in KEY -out PLAIN decrypts it)"
                    : text.contains("OPENSSH PRIVATE KEY") ? " (it is an OpenSSH key, not PKCS#8)" : "";
            throw new SutureException(SutureException.Kind.BAD_INPUT, file + ": no \"" + begin + "\" block" + hint
                    + "; suture keygen or openssl genpkey -algorithm ed25519 makes key files it reads");
        }
        try {
            return Base64.getMimeDecoder().decode(text.substring(b + begin.length(), e).strip());
        } catch (IllegalArgumentException x) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, file + ": the " + label
                    + " block is not valid base64: " + x.getMessage());
        }
    }

    static String pem(String label, byte[] der) {
        return "-----BEGIN " + label + "-----\n"
                + Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII)).encodeToString(der)
                + "\n-----END " + label + "-----\n";
    }
}
