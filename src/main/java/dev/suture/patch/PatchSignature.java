package dev.suture.patch;

import java.security.PublicKey;

/**
 * The {@code .suture.sig} section of a patch file (docs/patch-format.md, section 7): which key signed it, the signer
 * name the file claims, and whether the signature verifies against the public key it carries. {@code valid} false
 * means a byte of the file changed after signing. Anyone can make a key and call it "alice", so the key id is what
 * identifies the signer and {@code signer} is only a claim; whether the key is one to trust, and under which name,
 * is {@link TrustedKeys}' question.
 */
public record PatchSignature(String keyId, PublicKey publicKey, String signer, boolean valid) {

    /** The first 16 hex digits of the key id, for people. */
    public String shortKeyId() {
        return Keys.shortId(keyId);
    }

    /** The signer for people, given the name a trust directory knows the key by ({@code null}: not trusted). */
    public String describe(String trustedName) {
        return "key " + shortKeyId() + (trustedName != null ? " (trusted as " + trustedName + ")"
                : " (claims to be " + signer + ")");
    }

    /** "key 0123456789abcdef (claims to be alice)": the key first, the name only as the file's claim. */
    @Override
    public String toString() {
        return describe(null);
    }
}
