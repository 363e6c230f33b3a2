package dev.suture.cli;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import picocli.AutoComplete;
import picocli.CommandLine;
import picocli.CommandLine.Help;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;

/**
 * The manual pages (roff) and the shell completion of the command line, generated from the same picocli model that
 * prints {@code --help}, so the three never disagree. {@code ./suture-package} runs {@link #main} while it builds
 * the Debian package.
 */
public final class ManPages {
    private ManPages() {}

    /**
     * Writes {@code DIR/man1/suture.1} and {@code DIR/man1/suture-COMMAND.1} for each command, and the completion
     * scripts {@code DIR/bash-completion/suture} and {@code DIR/zsh/_suture}.
     */
    public static void main(String[] args) throws IOException {
        if (args.length != 1) {
            System.err.println("usage: java -cp suture.jar dev.suture.cli.ManPages OUTDIR");
            System.exit(ExitCodes.BAD_INPUT);
        }
        Path out = Path.of(args[0]);
        var cl = Main.commandLine();
        Files.createDirectories(out.resolve("man1"));
        Files.writeString(out.resolve("man1/suture.1"), render(cl.getCommandSpec()));
        for (var sub : cl.getSubcommands().values()) {
            Files.writeString(out.resolve("man1/" + pageName(sub.getCommandSpec()) + ".1"),
                    render(sub.getCommandSpec()));
        }
        Files.createDirectories(out.resolve("bash-completion"));
        Files.writeString(out.resolve("bash-completion/suture"), AutoComplete.bash("suture", cl));
        Files.createDirectories(out.resolve("zsh"));
        Files.writeString(out.resolve("zsh/_suture"), zsh());
    }

    /**
     * The zsh completion: picocli's bash completion run by zsh's bashcompinit. zsh autoloads this file as the
     * function {@code _suture} at the first Tab; it loads the bash script (which registers itself for later Tabs)
     * and completes this one.
     */
    static String zsh() {
        return """
                #compdef suture
                # suture's completion for zsh: the bash completion (generated from the command line's model), run
                # by zsh's bashcompinit.
                autoload -U +X bashcompinit && bashcompinit
                source /usr/share/bash-completion/completions/suture
                _bash_complete -F _complete_suture "$@"
                """;
    }

    /** suture, or suture-apply for a command. */
    static String pageName(CommandSpec spec) {
        return spec.qualifiedName("-");
    }

    /** The man page of one command (or of suture itself), in roff. */
    static String render(CommandSpec spec) {
        var plain = Help.defaultColorScheme(Help.Ansi.OFF);
        var help = new Help(spec, plain);
        var r = new StringBuilder();
        String name = pageName(spec);
        String version = new Main.Version().getVersion()[0];
        r.append(".TH ").append(name.toUpperCase(java.util.Locale.ROOT)).append(" 1 \"\" \"")
                .append(version).append("\" \"suture manual\"\n");
        // paths and option names are copied from man pages: never hyphenate them or stretch the spaces between
        r.append(".nh\n.ad l\n");
        r.append(".SH NAME\n").append(escape(name)).append(" \\- ").append(escape(summary(spec))).append('\n');
        r.append(".SH SYNOPSIS\n.nf\n").append(lines(help.synopsis(0).stripTrailing())).append(".fi\n");
        r.append(".SH DESCRIPTION\n").append(paragraphs(List.of(spec.usageMessage().description())));
        var positionals = spec.positionalParameters();
        if (!positionals.isEmpty()) {
            r.append(".SH ARGUMENTS\n");
            for (var p : positionals) {
                r.append(".TP\n\\fI").append(escape(p.paramLabel())).append("\\fR\n")
                        .append(paragraphs(List.of(p.description())));
            }
        }
        var options = spec.options().stream().filter(o -> !o.hidden()).toList();
        if (!options.isEmpty()) {
            r.append(".SH OPTIONS\n");
            for (var o : options) {
                r.append(".TP\n").append(optionNames(o)).append('\n').append(paragraphs(List.of(o.description())));
            }
        }
        if (!spec.subcommands().isEmpty()) {
            r.append(".SH COMMANDS\n");
            for (var e : spec.subcommands().entrySet()) {
                var sub = e.getValue().getCommandSpec();
                r.append(".TP\n\\fB").append(escape(e.getKey())).append("\\fR\n").append(escape(summary(sub)))
                        .append(" See \\fB").append(escape(pageName(sub))).append("\\fR(1).\n");
            }
        }
        var footer = spec.root().usageMessage().footer();
        r.append(".SH EXIT STATUS\n").append(paragraphs(List.of(footer)));
        r.append(".SH SEE ALSO\n");
        var related = new ArrayList<String>();
        if (spec.parent() != null) {
            related.add("\\fBsuture\\fR(1)");
        }
        related.add("the README and docs/ of suture, installed in /usr/share/doc/suture");
        r.append(String.join(", ", related)).append('\n');
        return r.toString();
    }

    /** The one-line summary: the header, or the description's first line. */
    static String summary(CommandSpec spec) {
        String[] header = spec.usageMessage().header();
        String[] description = spec.usageMessage().description();
        return header.length > 0 ? header[0] : description.length > 0 ? description[0] : "";
    }

    private static String optionNames(OptionSpec o) {
        var names = new ArrayList<String>();
        for (String n : o.names()) {
            names.add("\\fB" + escape(n) + "\\fR");
        }
        String label = o.typeInfo().isBoolean() || o.arity().max() == 0 ? "" : " \\fI" + escape(o.paramLabel()) + "\\fR";
        return String.join(", ", names) + label;
    }

    /** Description lines (wrapped for --help) as roff paragraphs: an empty line starts a new one. */
    private static String paragraphs(List<String> lines) {
        var r = new StringBuilder();
        var current = new StringBuilder();
        for (String line : lines) {
            if (line.isBlank()) {
                if (!current.isEmpty()) {
                    r.append(escape(current.toString().strip())).append("\n.PP\n");
                    current.setLength(0);
                }
            } else {
                current.append(line.strip()).append(' ');
            }
        }
        if (!current.isEmpty()) {
            r.append(escape(current.toString().strip())).append('\n');
        }
        return r.toString();
    }

    private static String lines(String text) {
        var r = new StringBuilder();
        for (String line : text.split("\n")) {
            r.append(escape(line)).append('\n');
        }
        return r.toString();
    }

    /** Text as roff reads it literally: backslashes, hyphens, and a leading dot or quote. */
    static String escape(String text) {
        String s = text.replace("\\", "\\e").replace("-", "\\-");
        return s.startsWith(".") || s.startsWith("'") ? "\\&" + s : s;
    }
}
