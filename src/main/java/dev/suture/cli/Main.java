package dev.suture.cli;

import dev.suture.live.Patcher;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * The {@code suture} command: registers the subcommands and turns failures into the documented exit codes
 * (see {@link ExitCodes}).
 */
@Command(name = "suture",
        mixinStandardHelpOptions = true,
        versionProvider = Main.Version.class,
        usageHelpWidth = 100,
        description = {
                "Live-patches functions of running Linux x86-64 processes: builds a patch from a source diff, "
                        + "applies it through ptrace after proving no thread runs the replaced code, "
                        + "and reverts it on demand."},
        footer = {"",
                "Exit codes: 0 done, 1 internal error, 2 bad usage or input, 3 patch does not fit the target, "
                        + "4 unsafe (a replaced function stayed busy, or no stop kept within --max-pause, past the "
                        + "timeout), 5 not permitted (or another "
                        + "suture holds the process, or it awaits suture recover), "
                        + "6 the process vanished, 8 (status) some process runs unpatched code."})
public final class Main implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    /** Every registered subcommand; only commands that work belong here. */
    static Object[] subcommands() {
        return new Object[] {
            new BuildCommand(),
            new DiffCommand(),
            new InspectCommand(),
            new ApplyCommand(),
            new RevertCommand(),
            new InfoCommand(),
            new StacksCommand(),
            new RecoverCommand(),
            new DemoCommand(),
            new KeygenCommand(),
            new SignCommand(),
            new AgentCommand(),
            new StatusCommand(),
            new PackageCommand(),
        };
    }

    public static void main(String[] args) {
        if (Boolean.getBoolean("suture.aotTraining")) {
            Patcher.rehearse(); // the launcher's AOT training run: the hold paths' classes go into the cache too
        }
        // A command a running agent serves never gets here: the launchers send it with suture-client (ViaAgent).
        System.exit(run(args));
    }

    /** Runs the command line and returns the exit code; tests call this in-process. */
    public static int run(String... args) {
        var cl = commandLine();
        return cl.execute(args);
    }

    static CommandLine commandLine() {
        var cl = new CommandLine(new Main());
        for (Object sub : subcommands()) {
            cl.addSubcommand(sub);
        }
        // description lines are written for 100 columns; set after the subcommands so it reaches them too
        cl.setUsageHelpWidth(100);
        cl.setExecutionExceptionHandler(ExitCodes::handle);
        cl.setParameterExceptionHandler(ExitCodes::handleUsage);
        return cl;
    }

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = Main.class.getPackage().getImplementationVersion();
            return new String[] {"suture " + (v == null ? "(development build)" : v)};
        }
    }
}
