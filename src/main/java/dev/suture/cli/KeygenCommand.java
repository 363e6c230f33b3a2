package dev.suture.cli;

import dev.suture.patch.Keys;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code suture keygen}: an Ed25519 key pair for signing patches, as PEM files. */
@Command(name = "keygen", header = "Makes an Ed25519 key pair for signing patches.", mixinStandardHelpOptions = true,
        description = {"Writes NAME.key (the private key, PKCS#8 PEM, mode 0600) and NAME.pub (the public key,",
                "X.509 PEM) and prints the key id (SHA-256 of the public key's DER). Never overwrites a file.",
                "Sign with build/diff --sign NAME.key or suture sign; put NAME.pub in the directory that",
                "apply --trust names on the machines that apply patches."})
public final class KeygenCommand implements Callable<Integer> {
    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = {"-o", "--output"}, paramLabel = "DIR", defaultValue = ".",
            description = "Where to write the two files (default: the current directory).")
    Path dir;

    @Option(names = "--name", paramLabel = "NAME", defaultValue = "suture",
            description = "The files' base name, also the signer name patches show (default: ${DEFAULT-VALUE}).")
    String name;

    @Mixin
    JsonOutput json;

    @Override
    public Integer call() throws Exception {
        var files = Keys.writePair(dir, name);
        var out = spec.commandLine().getOut();
        if (json.enabled()) {
            var doc = new LinkedHashMap<String, Object>();
            doc.put("privateKey", files.privateKey().toString());
            doc.put("publicKey", files.publicKey().toString());
            doc.put("keyId", files.keyId());
            doc.put("signer", name);
            JsonOutput.print(out, doc);
        } else {
            out.println("wrote " + files.privateKey() + " (private key, keep it secret) and " + files.publicKey()
                    + " (public key)");
            out.println("key id " + files.keyId());
        }
        out.flush();
        return ExitCodes.OK;
    }
}
