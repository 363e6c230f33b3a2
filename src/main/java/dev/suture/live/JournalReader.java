package dev.suture.live;

import dev.suture.SutureException;
import dev.suture.sys.TrustedFiles;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;

/**
 * A {@link Journal} read back: the journal an interrupted transaction left, parsed into what it was doing
 * ({@link Pending}), every field checked for its form. docs/journal.md is the format's specification.
 */
final class JournalReader {
    private static final HexFormat HEX = HexFormat.of();

    private JournalReader() {}

    /** A thread borrowed for a system call and not given back: its registers, and the stub's original bytes. */
    record Injection(int tid, long stub, byte[] stubOriginal, byte[] stubCode, long[] registers) {}

    /** A stub written and not (journaled as) removed: its original bytes. */
    record Stub(long address, byte[] original, byte[] code) {}

    /** A journal left behind: what the interrupted transaction was doing. */
    record Pending(Path file, Journal.Operation operation, int pid, String start, long toolPid, String at, String what,
                   Region region, List<Range> forbidden, List<ApplyTransaction.Write> writes, boolean committed,
                   List<Unmap> unmaps, List<Long> unmapped, List<Injection> injections, List<Stub> stubs) {
        /** True when the journal belongs to the process now running under that pid (not an earlier one). */
        boolean sameProcess() {
            return Journal.startOf(pid).map(Instant::toString).orElse("gone").equals(start);
        }

        String describe() {
            return "an interrupted " + operation.name().toLowerCase(Locale.ROOT) + " (" + what
                    + ", by suture pid " + toolPid + " at " + at + ")";
        }
    }

    record Region(long address, long size, long textStart, long textEnd) {
        boolean contains(long at) {
            return inside(at, address, size);
        }
    }

    record Range(long start, long end) {}

    /** Whether {@code address} is in the {@code size} bytes from {@code start}. */
    static boolean inside(long address, long start, long size) {
        return Long.compareUnsigned(address, start) >= 0 && Long.compareUnsigned(address, start + size) < 0;
    }

    record Unmap(long address, long size, String patchId) {
        boolean contains(long at) {
            return inside(at, address, size);
        }
    }

    /**
     * The journal of {@code pid}, if one was left behind: read only from a checked file of the run directory, and no
     * larger than {@link Journal#MAX_BYTES}. A file without the magic line and a begin record is no journal (a journal
     * becomes visible with its header complete, see {@link Journal#begin}); a journal whose begin names another pid than
     * its file does is damaged.
     */
    static Optional<Pending> read(int pid) {
        Path file = RunDirectory.journal(pid);
        byte[] bytes;
        try {
            if (RunDirectory.existing().isEmpty()) {
                return Optional.empty();
            }
            var read = TrustedFiles.readBounded(file, Journal.ROLE, RunDirectory.FILE_ADVICE, Journal.MAX_BYTES);
            if (read.isEmpty()) {
                return Optional.empty();
            }
            bytes = read.get();
        } catch (IOException e) {
            throw new SutureException(SutureException.Kind.NOT_PERMITTED, "cannot read the journal " + file + ": "
                    + TrustedFiles.reason(e));
        }
        return parse(file, pid, new String(bytes, StandardCharsets.UTF_8));
    }

    /**
     * Parses a journal of {@code pid}. A last line without its newline is a record whose write was cut short: the
     * action it announced never started, so it is ignored. Every field is checked for its form here; what the
     * records claim about the process is checked against it by {@link Recovery} before a byte is written.
     */
    static Optional<Pending> parse(Path file, int pid, String text) {
        int complete = text.lastIndexOf('\n');
        var lines = complete < 0 ? List.<String>of() : List.of(text.substring(0, complete).split("\n"));
        if (lines.size() < 2 || !lines.getFirst().equals(Journal.MAGIC) || !lines.get(1).startsWith("begin ")) {
            return Optional.empty();
        }
        Journal.Operation op = null;
        String start = null;
        long tool = 0;
        String at = "";
        String what = "";
        Region region = null;
        var forbidden = new ArrayList<Range>();
        var writes = new ArrayList<ApplyTransaction.Write>();
        var unmaps = new ArrayList<Unmap>();
        var unmapped = new ArrayList<Long>();
        var injections = new LinkedHashMap<Integer, Injection>();
        var stubs = new LinkedHashMap<Long, Stub>();
        boolean committed = false;
        for (String line : lines.subList(1, lines.size())) {
            if (line.startsWith("#")) {
                continue; // a blank line left for an inject record that was never stored, or not to its first byte
            }
            String[] f = line.stripTrailing().split(" ");
            try {
                switch (f[0]) {
                    case "begin" -> {
                        if (op != null) {
                            throw bad(file, "it has two begin records");
                        }
                        op = Journal.Operation.valueOf(f[1].toUpperCase(Locale.ROOT));
                        Map<String, String> kv = new LinkedHashMap<>();
                        for (int i = 2; i < f.length; i++) {
                            int eq = f[i].indexOf('=');
                            kv.put(f[i].substring(0, eq), f[i].substring(eq + 1));
                        }
                        if (Integer.parseInt(kv.get("pid")) != pid) {
                            throw bad(file, "its begin record names pid " + kv.get("pid") + ", not " + pid
                                    + " as its name does");
                        }
                        start = Objects.requireNonNull(kv.get("start"));
                        tool = Long.parseLong(kv.get("tool"));
                        at = kv.getOrDefault("at", "");
                        what = unescape(kv.getOrDefault("what", ""));
                    }
                    case "region" -> {
                        fields(f, 5);
                        region = new Region(num(f[1]), num(f[2]), num(f[3]), num(f[4]));
                        if (region.size() <= 0 || !within(region.textStart(), region.textEnd(), region.address(),
                                region.size())) {
                            throw new IllegalArgumentException("its code is not inside it");
                        }
                    }
                    case "forbid" -> {
                        fields(f, 3);
                        forbidden.add(new Range(num(f[1]), num(f[2])));
                    }
                    case "write" -> {
                        fields(f, 4);
                        var w = new ApplyTransaction.Write(num(f[1]), bytes(f[2]), bytes(f[3]));
                        if (w.bytes().length != w.undo().length) {
                            throw new IllegalArgumentException("new and old bytes differ in length");
                        }
                        writes.add(w);
                    }
                    case "committed" -> committed = true;
                    case "unmap" -> {
                        fields(f, 4);
                        unmaps.add(new Unmap(num(f[1]), num(f[2]), unescape(f[3])));
                    }
                    case "unmapped" -> {
                        fields(f, 2);
                        unmapped.add(num(f[1]));
                    }
                    case "inject" -> {
                        fields(f, 5 + REGISTERS);
                        long[] regs = new long[REGISTERS];
                        for (int i = 0; i < regs.length; i++) {
                            regs[i] = Long.parseUnsignedLong(f[5 + i], 16);
                        }
                        int tid = Integer.parseInt(f[1]);
                        var in = new Injection(tid, num(f[2]), bytes(f[3]), bytes(f[4]), regs);
                        if (in.stubOriginal().length != in.stubCode().length) {
                            throw new IllegalArgumentException("stub and original bytes differ in length");
                        }
                        injections.put(tid, in);
                        stubs.putIfAbsent(in.stub(), new Stub(in.stub(), in.stubOriginal(), in.stubCode()));
                    }
                    case "returned" -> {
                        fields(f, 2);
                        injections.remove(Integer.parseInt(f[1]));
                    }
                    case "stub" -> {
                        fields(f, 4);
                        var stub = new Stub(num(f[1]), bytes(f[2]), bytes(f[3]));
                        if (stub.original().length != stub.code().length) {
                            throw new IllegalArgumentException("stub and original bytes differ in length");
                        }
                        stubs.put(stub.address(), stub);
                    }
                    case "unstub" -> {
                        fields(f, 2);
                        stubs.remove(num(f[1]));
                    }
                    default -> throw bad(file, "unknown record '" + abbreviate(f[0]) + "'");
                }
            } catch (RuntimeException e) {
                if (e instanceof SutureException s) {
                    throw s;
                }
                throw bad(file, "cannot parse '" + abbreviate(line) + "' (" + e.getMessage() + ")");
            }
        }
        return Optional.of(new Pending(file, op, pid, start, tool, at, what, region, forbidden, writes, committed,
                unmaps, unmapped, List.copyOf(injections.values()), List.copyOf(stubs.values())));
    }

    /** The registers of an {@code inject} record: a {@code user_regs_struct}. */
    private static final int REGISTERS = 27;
    /** Longer than any write or stub suture makes (a 5-byte jump, a 2-byte state, a 4-byte stub). */
    private static final int MAX_RECORD_BYTES = 16;

    private static void fields(String[] f, int count) {
        if (f.length != count) {
            throw new IllegalArgumentException(count + " fields expected, " + f.length + " found");
        }
    }

    private static byte[] bytes(String hex) {
        byte[] b = HEX.parseHex(hex);
        if (b.length == 0 || b.length > MAX_RECORD_BYTES) {
            throw new IllegalArgumentException(b.length + " bytes, not 1-" + MAX_RECORD_BYTES);
        }
        return b;
    }

    private static boolean within(long start, long end, long base, long size) {
        return Long.compareUnsigned(start, base) >= 0 && Long.compareUnsigned(start, end) <= 0
                && Long.compareUnsigned(end, base + size) <= 0;
    }

    private static String abbreviate(String s) {
        return s.length() <= 80 ? s : s.substring(0, 80) + "...";
    }

    /** Refuses to start a transaction on a process with a journal left by an interrupted one. */
    static void refusePending(int pid) {
        var pending = read(pid);
        if (pending.isEmpty() || !pending.get().sameProcess()) {
            // no journal, a file that is none (no header), or one of a process gone whose pid was reused
            try {
                Files.deleteIfExists(RunDirectory.journal(pid));
            } catch (IOException ignored) {
                // begin will say why it cannot write there
            }
            return;
        }
        throw new SutureException(SutureException.Kind.NOT_PERMITTED, "pid " + pid + " has "
                + pending.get().describe() + ", journaled in " + pending.get().file() + "; run 'suture recover -p "
                + pid + "' first, which finishes or undoes it");
    }

    private static SutureException bad(Path file, String why) {
        return new SutureException(SutureException.Kind.BAD_INPUT, "the journal " + file + " is damaged: " + why
                + "; inspect the process with 'suture info' and remove the file by hand");
    }
    private static long num(String s) {
        return Long.parseUnsignedLong(s.substring(2), 16);
    }
    private static String unescape(String s) {
        var sb = new StringBuilder();
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '%' && i + 2 < s.length()) {
                sb.append((char) Integer.parseInt(s.substring(i + 1, i + 3), 16));
                i += 2;
            } else {
                sb.append(c);
            }
        }
        return sb.toString();
    }
}
