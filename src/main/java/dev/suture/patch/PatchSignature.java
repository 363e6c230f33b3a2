package dev.suture.patch;

import java.security.PublicKey;

/**
 * The {@code .suture.sig} section of a patch file (docs/patch-format.md, section 7): who signed it, with which key,
 * and whether the signature verifies against the public key it carries. {@code valid} false means a byte of the
 * file changed after signing; whether the key is one to trust is {@link TrustedKeys}' question.
 */
public record PatchSignature(String keyId, PublicKey publicKey, String signer, boolean valid) {

    /** The first 16 hex digits of the key id, for people. */
    public String shortKeyId() {
        return Keys.shortId(keyId);
    }

    @Override
    public String toString() {
        return signer + " (key " + shortKeyId() + ")";
    }
}
