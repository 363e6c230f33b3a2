package dev.suture.cli;

import dev.suture.patch.Keys;
import dev.suture.patch.PatchFile;
import dev.suture.patch.PatchSignature;
import dev.suture.sys.TrustedFiles;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code suture sign}: signs existing patch files in place. */
@Command(name = "sign", header = "Signs patch files in place.", mixinStandardHelpOptions = true,
        description = {"Adds (or replaces) the .suture.sig section of each PATCH: an Ed25519 signature by KEY over",
                "every other byte of the file. apply --require-signed --trust DIR accepts it when DIR holds",
                "the matching .pub file."})
public final class SignCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Parameters(arity = "1..*", paramLabel = "PATCH", description = "Patch files to sign.")
    List<Path> patches;

    @Option(names = "--key", required = true, paramLabel = "KEY",
            description = {"The private key (PKCS#8 PEM, e.g. from suture keygen); its file name is the signer",
                    "name the patch claims. Whoever verifies names the signer by the key id, and by the name",
                    "of the .pub file in their own trust directory."})
    Path key;

    @Mixin
    JsonOutput json;

    /**
     * Reads the private key of --key/--sign. One that group or others may read is used, with a warning: whoever can
     * read it can sign patches as its owner, but keeping it is the owner's business (openssl writes 0644 keys).
     */
    static Keys.SigningKey readKey(Path key, PrintWriter err) {
        var signing = Keys.readSigningKey(key);
        TrustedFiles.openToOthers(key).ifPresent(mode -> {
            err.println("warning: the private key " + key + " may be read by group or others (mode " + mode
                    + "): anyone who can read it can sign patches as " + signing.signer() + "; chmod 600 " + key);
            err.flush();
        });
        return signing;
    }

    /**
     * A signature just made, for --json: the key id first; the name only as the file claims it (who verifies names
     * the signer from their trust directory). "signer" is that claim under the key it always had.
     */
    static Map<String, Object> json(PatchSignature sig) {
        var m = new LinkedHashMap<String, Object>();
        m.put("keyId", sig.keyId());
        m.put("claimedSigner", sig.signer());
        m.put("signer", sig.signer());
        return m;
    }

    @Override
    public Integer call() throws Exception {
        var signing = readKey(key, spec.commandLine().getErr());
        // read every patch first: a bad one fails before any file is rewritten
        patches.forEach(PatchFile::read);
        var signed = new ArrayList<Map<String, Object>>();
        var out = spec.commandLine().getOut();
        for (Path p : patches) {
            var patch = PatchFile.sign(p, signing);
            var sig = patch.signature().orElseThrow();
            if (json.enabled()) {
                var doc = new LinkedHashMap<String, Object>();
                doc.put("patch", p.toString());
                doc.put("id", patch.id());
                doc.putAll(json(sig));
                signed.add(doc);
            } else {
                out.println("signed " + p + " (patch " + patch.id() + ") with " + sig);
            }
        }
        if (json.enabled()) {
            JsonOutput.print(out, Map.of("signed", signed));
        }
        out.flush();
        return ExitCodes.OK;
    }
}
