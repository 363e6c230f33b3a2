package dev.suture.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.testing.Commands;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The man pages and the completion the package ships, generated from the model --help prints. */
class ManPagesTest {
    @TempDir
    Path dir;

    /** man renders each page, and it holds every option --help lists, with the same words. */
    @Test
    void eachCommandsPageHoldsWhatItsHelpSays() throws Exception {
        ManPages.main(new String[] {dir.toString()});
        var cl = Main.commandLine();
        for (var sub : cl.getSubcommands().values()) {
            String name = "suture-" + sub.getCommandName();
            Path page = dir.resolve("man1/" + name + ".1");
            assertTrue(Files.isRegularFile(page), name);
            var man = Commands.run(dir, Duration.ofSeconds(30), "env", "LC_ALL=C", "MANWIDTH=200",
                    "man", "-P", "cat", "-l", page.toString());
            assertEquals(0, man.status(), man.output());
            String text = man.output().replaceAll(".\b", "").replaceAll("\\s+", " ").replace("‐", "-").replace("−", "-");
            assertTrue(text.contains(name + " - " + sub.getCommandSpec().usageMessage().header()[0]), text);
            for (var o : sub.getCommandSpec().options()) {
                assertTrue(text.contains(o.longestName()), name + " " + o.longestName());
                String description = String.join(" ", o.description()).replaceAll("\\s+", " ").strip();
                assertTrue(text.contains(description), name + " " + o.longestName() + ": " + description
                        + "\nnot in:\n" + text);
            }
            assertTrue(text.contains("EXIT STATUS"), text);
        }
        var main = Commands.run(dir, Duration.ofSeconds(30), "man", "-P", "cat", "-l",
                dir.resolve("man1/suture.1").toString());
        assertTrue(main.output().contains("suture-apply(1)"), main.output());
    }

    /** bash completes commands and options from the generated script. */
    @Test
    void bashCompletesCommandsAndOptions() throws Exception {
        ManPages.main(new String[] {dir.toString()});
        Path script = dir.resolve("bash-completion/suture");
        assertEquals("apply", complete(script, "suture", "ap"));
        assertTrue(complete(script, "suture", "apply", "--ti").contains("--timeout"));
        assertEquals("package", complete(script, "suture", "pack"));
        assertTrue(Files.readString(dir.resolve("zsh/_suture")).startsWith("#compdef suture\n"));
    }

    /** What bash's completion offers for {@code words}, the last being the word under the cursor. */
    private String complete(Path script, String... words) throws Exception {
        String line = String.join(" ", words);
        var r = Commands.run(dir, Duration.ofSeconds(30), "bash", "-c", ". \"$1\"; COMP_WORDS=(" + line + ");"
                + " COMP_CWORD=" + (words.length - 1) + "; COMP_LINE='" + line + "'; COMP_POINT=" + line.length()
                + "; _complete_suture; echo \"${COMPREPLY[*]}\"", "bash", script.toString());
        assertEquals(0, r.status(), r.output());
        return r.output().strip();
    }
}
