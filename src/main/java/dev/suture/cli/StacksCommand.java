package dev.suture.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.suture.live.Patcher;
import dev.suture.live.Processes;
import dev.suture.unwind.Backtrace;
import dev.suture.unwind.Frame;
import dev.suture.unwind.ProcessStacks;
import dev.suture.unwind.StackEnd;
import java.io.PrintWriter;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code suture stacks -p PID}: backtraces of every thread of a running process, which runs on afterwards. */
@Command(name = "stacks", header = "Backtraces of every thread of a running process.",
        mixinStandardHelpOptions = true,
        description = {
                "Prints the backtrace of every thread of a running process: it is stopped only while registers",
                "and stacks are copied (the window is reported), then runs on. Frames are found from the CFI",
                "(.eh_frame; in an applied patch's new code, the patch's own, read from the process); where a pc",
                "has none, from the frame-pointer chain, and the frame says so."})
final class StacksCommand implements Callable<Integer> {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = {"-p", "--pid"}, required = true, paramLabel = "PID", description = "The process.")
    int pid;

    @Mixin
    JsonOutput json;

    @Option(names = "--no-debug-files",
            description = "Name functions from the binaries' own symbol tables only, not their separate debug files.")
    boolean noDebugFiles;

    @Override
    public Integer call() throws Exception {
        Processes.requireGiven(pid);
        ProcessStacks stacks = ProcessStacks.take(pid, !noDebugFiles, Patcher.regionCode(pid));
        PrintWriter out = spec.commandLine().getOut();
        if (json.enabled()) {
            JsonOutput.print(out, toJson(stacks));
        } else {
            printText(stacks, out);
        }
        out.flush();
        return ExitCodes.OK;
    }

    private static void printText(ProcessStacks stacks, PrintWriter out) {
        var w = stacks.timing();
        out.printf(Locale.ROOT, "process %d: %s, stopped for %.3f ms (stop %.3f, registers %.3f, stack copies"
                        + " %.3f, unwinding %.3f, resume %.3f)%n", stacks.pid(), TextTable.count(stacks.threads().size(), "thread"),
                w.windowNanos() / 1e6, w.stopNanos() / 1e6, w.registersNanos() / 1e6, w.copyNanos() / 1e6,
                w.unwindNanos() / 1e6, w.resumeNanos() / 1e6);
        for (var t : stacks.threads()) {
            out.printf("%nthread %d \"%s\" (%c)%n", t.tid(), t.name(), t.state());
            if (t.error() != null) {
                out.println("  " + t.error());
            }
            Backtrace bt = t.backtrace();
            for (Frame f : bt.frames()) {
                out.printf("  #%-2d 0x%016x  %-24s %s [%s]%n", f.index(), f.pc(), shortName(f.module()), f.function(),
                        f.method().label());
            }
            if (bt.end() == StackEnd.ERROR) {
                out.println("  unwinding stopped: " + bt.error());
            } else if (bt.end() != StackEnd.OUTERMOST) {
                out.println("  (" + endText(bt.end()) + ")");
            }
        }
    }

    private static String endText(StackEnd end) {
        return switch (end) {
            case OUTERMOST -> "outermost frame";
            case ZERO_PC -> "ends at a zero return address";
            case STACK_NOT_INCREASING -> "stopped: the next stack pointer would not be above this frame's";
            case FRAME_LIMIT -> "stopped at the frame limit";
            case ERROR -> "unwinding error";
        };
    }

    private static String shortName(String module) {
        if (module == null) {
            return "??";
        }
        int slash = module.lastIndexOf('/');
        return slash < 0 ? module : module.substring(slash + 1);
    }

    private static ObjectNode toJson(ProcessStacks stacks) {
        var mapper = new ObjectMapper();
        ObjectNode root = mapper.createObjectNode();
        root.put("pid", stacks.pid());
        root.put("stoppedMicros", stacks.windowNanos() / 1000);
        ArrayNode threads = root.putArray("threads");
        for (var t : stacks.threads()) {
            ObjectNode tn = threads.addObject();
            tn.put("tid", t.tid());
            tn.put("name", t.name());
            tn.put("state", String.valueOf(t.state()));
            ArrayNode frames = tn.putArray("frames");
            for (Frame f : t.backtrace().frames()) {
                ObjectNode fn = frames.addObject();
                fn.put("index", f.index());
                fn.put("pc", hex(f.pc()));
                fn.put("sp", hex(f.sp()));
                if (f.cfa() != 0) {
                    fn.put("cfa", hex(f.cfa()));
                }
                fn.put("module", f.module());
                fn.put("symbol", f.symbol());
                fn.put("offset", f.offset());
                fn.put("method", f.method().label());
                if (f.signalTrampoline()) {
                    fn.put("signalTrampoline", true);
                }
            }
            tn.put("end", t.backtrace().end().name().toLowerCase(Locale.ROOT));
            if (t.backtrace().error() != null) {
                tn.put("error", t.backtrace().error());
            }
            if (t.error() != null) {
                tn.put("threadError", t.error());
            }
        }
        return root;
    }

    private static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }
}
