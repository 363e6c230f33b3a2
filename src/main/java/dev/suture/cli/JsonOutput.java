package dev.suture.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.PrintWriter;
import picocli.CommandLine.Option;

/** The {@code --json} option every command takes (a picocli mixin), and the one way a command prints its document. */
final class JsonOutput {
    private static final ObjectMapper MAPPER = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    @Option(names = "--json", description = "Print one JSON document instead of text.")
    private boolean enabled;

    boolean enabled() {
        return enabled;
    }

    /** Prints {@code document} (a Jackson tree, a map or a record) as indented JSON. */
    static void print(PrintWriter out, Object document) throws JsonProcessingException {
        out.println(MAPPER.writeValueAsString(document));
    }
}
