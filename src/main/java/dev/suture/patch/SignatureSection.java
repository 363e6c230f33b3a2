package dev.suture.patch;

import static dev.suture.elf.ElfConstants.*;

import dev.suture.elf.ElfFile;
import dev.suture.elf.Section;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.PublicKey;
import java.security.Signature;
import java.security.SignatureException;
import java.util.Arrays;
import java.util.Base64;
import java.util.HexFormat;
import java.util.Optional;
import java.util.regex.Pattern;

/**
 * The signature section {@code .suture.sig} (docs/patch-format.md, section 7): its text, and the signed message,
 * which is the whole file image with the 128 hex digits of the {@code signature} line read as ASCII {@code '0'}s.
 * So every byte of the file but those is covered — headers, every section, the padding between them, the section
 * header table, and the signer name and key of the section itself.
 */
final class SignatureSection {
    static final String MAGIC = "suture-signature";
    static final int VERSION = 1;
    /** Hex digits of an Ed25519 signature (64 bytes). */
    static final int SIGNATURE_DIGITS = 128;
    /** The last line: "signature " + digits + "\n"; the field ends one byte before the section does. */
    private static final String SIGNATURE_KEY = "signature ";
    /** A section larger than this is not a signature section (a key line and a name line are short). */
    private static final long MAX_SIZE = 4096;
    private static final Pattern HEX64 = Pattern.compile("[0-9a-f]{64}");
    private static final Pattern HEX128 = Pattern.compile("[0-9a-f]{128}");

    private SignatureSection() {}

    /** The section text for {@code key} with the signature field still all {@code '0'}. */
    static byte[] template(Keys.SigningKey key) {
        String text = MAGIC + " " + VERSION + "\n"
                + "algorithm " + Keys.ALGORITHM + "\n"
                + "key-id " + key.keyId() + "\n"
                + "public-key " + Base64.getEncoder().encodeToString(key.publicKey().getEncoded()) + "\n"
                + "signer " + key.signer() + "\n"
                + SIGNATURE_KEY + "0".repeat(SIGNATURE_DIGITS) + "\n";
        return text.getBytes(StandardCharsets.US_ASCII);
    }

    /** Fills the signature field of {@code image} (written with {@link #template}) and returns it. */
    static byte[] sign(byte[] image, Keys.SigningKey key) {
        var elf = ElfFile.parse("<patch being signed>", image);
        Section s = elf.section(PatchFile.SIGNATURE_SECTION).orElseThrow(
                () -> new IllegalStateException("the image has no " + PatchFile.SIGNATURE_SECTION + " section"));
        int field = fieldOffset(s);
        try {
            var signer = Signature.getInstance(Keys.ALGORITHM);
            signer.initSign(key.privateKey());
            signer.update(image);
            byte[] digits = HexFormat.of().formatHex(signer.sign()).getBytes(StandardCharsets.US_ASCII);
            System.arraycopy(digits, 0, image, field, SIGNATURE_DIGITS);
            return image;
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("Ed25519 signing failed: " + e.getMessage(), e);
        }
    }

    /**
     * The signature of a patch image, if it has a {@code .suture.sig} section; a malformed section is a
     * {@link PatchFormatException}, a signature that does not verify is returned with {@code valid} false.
     */
    static Optional<PatchSignature> read(String name, byte[] image, ElfFile elf) {
        Section s = null;
        for (Section candidate : elf.sections()) {
            if (candidate.name().equals(PatchFile.SIGNATURE_SECTION)) {
                if (s != null) {
                    throw new PatchFormatException(name, "two " + PatchFile.SIGNATURE_SECTION + " sections");
                }
                s = candidate;
            }
        }
        if (s == null) {
            return Optional.empty();
        }
        if (s.sh_type() != SHT_PROGBITS || s.sh_flags() != 0 || s.sh_size() > MAX_SIZE) {
            throw new PatchFormatException(name, PatchFile.SIGNATURE_SECTION + " is not a PROGBITS section without"
                    + " flags of at most " + MAX_SIZE + " bytes");
        }
        byte[] content = elf.bytes(s);
        String[] lines = new String(content, StandardCharsets.US_ASCII).split("\n", -1);
        String[] keys = {MAGIC, "algorithm", "key-id", "public-key", "signer", "signature"};
        if (lines.length != keys.length + 1 || !lines[keys.length].isEmpty()) {
            throw malformed(name, "expected " + keys.length + " lines, each ending with a newline");
        }
        String[] values = new String[keys.length];
        for (int i = 0; i < keys.length; i++) {
            if (!lines[i].startsWith(keys[i] + " ")) {
                throw malformed(name, "line " + (i + 1) + " is not \"" + keys[i] + " ...\"");
            }
            values[i] = lines[i].substring(keys[i].length() + 1);
        }
        if (!values[0].equals(Integer.toString(VERSION))) {
            throw malformed(name, "signature format " + values[0] + " is not " + VERSION
                    + " (a newer suture wrote it?)");
        }
        if (!values[1].equals(Keys.ALGORITHM)) {
            throw malformed(name, "algorithm " + values[1] + " is not " + Keys.ALGORITHM);
        }
        if (!HEX64.matcher(values[2]).matches()) {
            throw malformed(name, "key-id is not 64 lowercase hex digits");
        }
        PublicKey key;
        try {
            byte[] der = Base64.getDecoder().decode(values[3]);
            key = Keys.decodePublic(der);
            if (!Arrays.equals(key.getEncoded(), der)) {
                throw new GeneralSecurityException("not in its canonical encoding");
            }
        } catch (GeneralSecurityException | RuntimeException e) {
            // RuntimeException too: whatever a provider throws on hostile DER is this file's fault, not a crash
            throw malformed(name, "public-key is not a base64 Ed25519 SubjectPublicKeyInfo: " + e.getMessage());
        }
        if (!Keys.keyId(key).equals(values[2])) {
            throw malformed(name, "key-id is not the SHA-256 of public-key");
        }
        if (!Keys.isValidName(values[4])) {
            throw malformed(name, "signer is not 1-128 characters of A-Z a-z 0-9 . _ @ + -");
        }
        if (!HEX128.matcher(values[5]).matches()) {
            throw malformed(name, "signature is not " + SIGNATURE_DIGITS + " lowercase hex digits");
        }
        byte[] message = image.clone();
        Arrays.fill(message, fieldOffset(s), fieldOffset(s) + SIGNATURE_DIGITS, (byte) '0');
        boolean valid;
        try {
            var verifier = Signature.getInstance(Keys.ALGORITHM);
            verifier.initVerify(key);
            verifier.update(message);
            valid = verifier.verify(HexFormat.of().parseHex(values[5]));
        } catch (SignatureException | RuntimeException e) {
            valid = false; // a signature value that is not even well formed verifies nothing
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("Ed25519 verification failed: " + e.getMessage(), e);
        }
        return Optional.of(new PatchSignature(values[2], key, values[4], valid));
    }

    /** File offset of the signature field: the last line is "signature " + 128 digits + "\n". */
    private static int fieldOffset(Section s) {
        return Math.toIntExact(s.sh_offset() + s.sh_size() - 1 - SIGNATURE_DIGITS);
    }

    private static PatchFormatException malformed(String name, String problem) {
        return new PatchFormatException(name, PatchFile.SIGNATURE_SECTION + ": " + problem);
    }
}
