package dev.suture.patch;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.SutureException;
import dev.suture.testing.Gcc;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Key files, the {@code .suture.sig} section and the trust policy (docs/patch-format.md, section 7). */
class PatchSignatureTest {
    @TempDir
    Path dir;

    private Keys.SigningKey key(String name) {
        Keys.writePair(dir, name);
        return Keys.readSigningKey(dir.resolve(name + ".key"));
    }

    @Test
    void keygenWritesPemFilesThatReadBackAsOnePair() throws Exception {
        var files = Keys.writePair(dir, "alice");
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(files.privateKey())));
        assertTrue(Files.readString(files.privateKey()).startsWith("-----BEGIN PRIVATE KEY-----\n"));
        assertTrue(Files.readString(files.publicKey()).startsWith("-----BEGIN PUBLIC KEY-----\n"));
        var signing = Keys.readSigningKey(files.privateKey());
        var pub = Keys.readPublicKey(files.publicKey());
        assertArrayEquals(pub.getEncoded(), signing.publicKey().getEncoded(), "derived public key = written one");
        assertEquals(files.keyId(), signing.keyId());
        assertEquals("alice", signing.signer());
        var again = assertThrows(SutureException.class, () -> Keys.writePair(dir, "alice"));
        assertTrue(again.getMessage().contains("already exists"), again.getMessage());
    }

    @Test
    void opensslReadsTheKeysAndComputesTheSameKeyId() throws Exception {
        if (!Files.isExecutable(Path.of("/usr/bin/openssl"))) {
            return; // checked only where openssl exists
        }
        var files = Keys.writePair(dir, "ops");
        Gcc.run(dir, "openssl", "pkey", "-in", files.privateKey().toString(), "-noout");
        Gcc.run(dir, "openssl", "pkey", "-pubin", "-in", files.publicKey().toString(), "-noout");
        // openssl's own key file reads too, and its SubjectPublicKeyInfo hashes to our key id
        Gcc.run(dir, "openssl", "genpkey", "-algorithm", "ed25519", "-out", dir.resolve("o.key").toString());
        Gcc.run(dir, "openssl", "pkey", "-in", "o.key", "-pubout", "-outform", "DER", "-out", "o.der");
        var theirs = Keys.readSigningKey(dir.resolve("o.key"));
        assertEquals(PatchFile.sha256(Files.readAllBytes(dir.resolve("o.der"))), theirs.keyId());
    }

    @Test
    void aSignedPatchVerifiesAndNamesItsSigner() throws Exception {
        var alice = key("alice");
        Path file = dir.resolve("p.suture");
        PatchFileTest.sample().write(file);
        assertTrue(PatchFile.read(file).signature().isEmpty());
        var signed = PatchFile.sign(file, alice);
        var sig = signed.signature().orElseThrow();
        assertTrue(sig.valid());
        assertEquals("alice", sig.signer());
        assertEquals(alice.keyId(), sig.keyId());
        // the signature section is not patch content: same sections, symbols and metadata as before
        var plain = PatchFileTest.sample();
        assertEquals(plain.sections().size(), signed.sections().size());
        assertEquals(plain.symbols().size(), signed.symbols().size());
        assertEquals(plain.replaced(), signed.replaced());
        assertEquals(plain.info(), signed.info());
        // re-signing replaces the signature
        var bob = key("bob");
        assertEquals("bob", PatchFile.sign(file, bob).signature().orElseThrow().signer());
        assertEquals(1, Files.readString(file, StandardCharsets.ISO_8859_1).split("suture-signature 1", -1).length - 1);
    }

    /** Every single-byte change anywhere in a signed file leaves no valid signature (or no readable patch). */
    @Test
    void everyByteOfTheFileIsCovered() throws Exception {
        var alice = key("alice");
        byte[] image = PatchFileTest.sample().toBytes(alice);
        assertTrue(PatchFile.parse("ok", image).signature().orElseThrow().valid());
        int stillValid = 0;
        for (int i = 0; i < image.length; i++) {
            byte[] b = image.clone();
            b[i] ^= 0x01;
            try {
                var p = PatchFile.parse("flip " + i, b);
                if (p.signature().map(PatchSignature::valid).orElse(false)) {
                    stillValid++;
                }
            } catch (SutureException expected) {
                assertEquals(SutureException.Kind.BAD_INPUT, expected.kind());
            }
        }
        assertEquals(0, stillValid, "single-byte changes that kept a valid signature");
        // appending a byte changes the file too
        byte[] longer = java.util.Arrays.copyOf(image, image.length + 1);
        assertFalse(PatchFile.parse("longer", longer).signature().orElseThrow().valid());
    }

    /** Random rewrites of the signature section's text: a clear format error or an invalid signature, never more. */
    @Test
    void hostileSignatureSectionsAreErrorsNotCrashes() throws Exception {
        var alice = key("alice");
        byte[] image = PatchFileTest.sample().toBytes(alice);
        String text = new String(image, StandardCharsets.ISO_8859_1);
        int start = text.indexOf("suture-signature 1\n");
        int end = text.indexOf('\n', text.indexOf("\nsignature ", start) + 1) + 1;
        var random = new java.util.Random(6);
        byte[] alphabet = "0123456789abcdef +/=\n\0\u00ffsignature-keyidpublicEd25519".getBytes(StandardCharsets.ISO_8859_1);
        int valid = 0;
        for (int i = 0; i < 3000; i++) {
            byte[] b = image.clone();
            int edits = 1 + random.nextInt(4);
            for (int e = 0; e < edits; e++) {
                int at = start + random.nextInt(end - start);
                b[at] = random.nextBoolean() ? alphabet[random.nextInt(alphabet.length)] : (byte) random.nextInt(256);
            }
            try {
                if (PatchFile.parse("case " + i, b).signature().map(PatchSignature::valid).orElse(false)) {
                    valid += java.util.Arrays.equals(b, image) ? 0 : 1;
                }
            } catch (SutureException expected) {
                assertEquals(SutureException.Kind.BAD_INPUT, expected.kind(), expected.getMessage());
            }
        }
        assertEquals(0, valid, "altered files with a valid signature");
    }

    @Test
    void trustPolicyRefusesUnsignedUnknownAndAlteredPatches() throws Exception {
        var alice = key("alice");
        var mallory = key("mallory");
        Path trust = Files.createDirectories(dir.resolve("trust"));
        Files.copy(dir.resolve("alice.pub"), trust.resolve("alice.pub"));
        var keys = TrustedKeys.load(List.of(trust));

        var sample = PatchFileTest.sample();
        assertEquals("alice", keys.check(PatchFile.parse("a", sample.toBytes(alice))));

        var unsigned = assertThrows(PatchTrustException.class, () -> keys.check(PatchFile.parse("u", sample.toBytes())));
        assertTrue(unsigned.getMessage().contains("is not signed"), unsigned.getMessage());

        var unknown = assertThrows(PatchTrustException.class,
                () -> keys.check(PatchFile.parse("m", sample.toBytes(mallory))));
        assertTrue(unknown.getMessage().contains("signed by key " + mallory.keyId().substring(0, 16) + " (claims to be mallory)"),
                unknown.getMessage());

        byte[] altered = sample.toBytes(alice);
        int at = indexOf(altered, "target-name server".getBytes(StandardCharsets.US_ASCII)) + "target-name ".length();
        altered[at] = 'S';
        var patch = PatchFile.parse("t", altered);
        assertEquals("Server", patch.targetName());
        var tampered = assertThrows(PatchTrustException.class, () -> TrustedKeys.requireIntact(patch));
        assertTrue(tampered.getMessage().contains("changed after it was signed"), tampered.getMessage());
        assertThrows(PatchTrustException.class, () -> keys.check(patch));

        Path empty = Files.createDirectories(dir.resolve("empty"));
        var none = assertThrows(SutureException.class, () -> TrustedKeys.load(List.of(empty)));
        assertTrue(none.getMessage().contains("no public keys"), none.getMessage());
        Files.writeString(trust.resolve("broken.pub"), "not a key\n");
        var broken = assertThrows(SutureException.class, () -> TrustedKeys.load(List.of(trust)));
        assertTrue(broken.getMessage().contains("broken.pub"), broken.getMessage());
    }

    @Test
    void malformedKeyFilesAreExplained() throws Exception {
        Files.writeString(dir.resolve("enc.key"), "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n"
                + "-----END ENCRYPTED PRIVATE KEY-----\n");
        var enc = assertThrows(SutureException.class, () -> Keys.readSigningKey(dir.resolve("enc.key")));
        assertTrue(enc.getMessage().contains("encrypted"), enc.getMessage());
        Files.writeString(dir.resolve("junk.key"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
        var junk = assertThrows(SutureException.class, () -> Keys.readSigningKey(dir.resolve("junk.key")));
        assertTrue(junk.getMessage().contains("not an Ed25519 private key"), junk.getMessage());
        var missing = assertThrows(SutureException.class, () -> Keys.readSigningKey(dir.resolve("none.key")));
        assertTrue(missing.getMessage().contains("no such key file"), missing.getMessage());
    }

    private static int indexOf(byte[] hay, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= hay.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (hay[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        throw new AssertionError("not found");
    }
}
