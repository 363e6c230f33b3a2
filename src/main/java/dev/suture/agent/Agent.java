package dev.suture.agent;

import dev.suture.SutureException;
import dev.suture.live.Patcher;
import dev.suture.live.Processes;
import dev.suture.patch.TrustedKeys;
import dev.suture.sys.Notify;
import dev.suture.sys.Syscalls;
import dev.suture.sys.TrustedFiles;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

/**
 * {@code suture agent}: keeps the patch store applied (docs/agent.md). On start it recovers what a killed suture
 * left, gives back processes a killed agent held, and brings every running process to the store's state; then it
 * acts on every change of the store (inotify), holds each new process of a patched executable until it is patched
 * (fanotify permission events and {@link ExecHold}), holds a thread that loads a patched library until it is patched
 * ({@link LibraryHold}), and looks at every process again every {@code rescan}. One transaction per process at a time;
 * nothing stays traced between transactions.
 */
public final class Agent {
    static final String KNOWN = "agent.patches";
    static final String LOCK = "agent.lock";
    static final String PID = "agent.pid";

    /**
     * {@code keys}: every patch must be signed by one of them (null: signatures are only checked to verify);
     * {@code timeout}, {@code maxPause}: as for apply; {@code rescan}: how often every process is looked at again;
     * {@code log}: where the agent says what it does, a line at a time (standard output: the journal under systemd);
     * {@code requests}: what answers a request on the agent's socket (null: no socket).
     */
    public record Config(Path store, TrustedKeys keys, Duration timeout, Duration maxPause, Duration rescan,
                         java.util.function.Consumer<String> log,
                         CommandSocket.Exchange requests) {}

    private final Config config;
    private final Failures failures = new Failures();
    private final Map<Integer, Object> pidLocks = new ConcurrentHashMap<>();
    private final Set<Integer> held = ConcurrentHashMap.newKeySet();
    private final Set<String> marked = new LinkedHashSet<>();
    private final ScheduledExecutorService worker = Executors.newSingleThreadScheduledExecutor(
            Thread.ofPlatform().daemon().name("suture-agent-store").factory());
    private final ScheduledExecutorService late = Executors.newScheduledThreadPool(2,
            Thread.ofPlatform().daemon().name("suture-agent-late-", 0).factory());
    private final int self = (int) ProcessHandle.current().pid();
    private volatile DesiredState desired;
    private volatile Set<String> known = Set.of();
    private ScheduledFuture<?> pendingReload;
    private int fanotify = -1;
    private int inotify = -1;
    private final Map<Integer, Path> watches = new HashMap<>();
    private FileLock lock;

    private Agent(Config config) {
        this.config = config;
    }

    /** Runs the agent until the JVM ends; returns only when it cannot start (the exception says why). */
    public static Agent start(Config config) {
        var agent = new Agent(config);
        agent.begin();
        return agent;
    }

    /** The pid of the running agent, if one holds the agent's lock in the run directory. */
    public static java.util.Optional<Integer> running() {
        try {
            Path dir = AgentFiles.dir();
            try (FileChannel ch = FileChannel.open(dir.resolve(LOCK), java.nio.file.StandardOpenOption.WRITE,
                    java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                FileLock l = ch.tryLock();
                if (l != null) {
                    l.release();
                    return java.util.Optional.empty();
                }
            }
            var lines = AgentFiles.read(PID);
            return java.util.Optional.of(lines.isEmpty() ? 0 : Integer.parseInt(lines.getFirst().trim()));
        } catch (IOException | RuntimeException e) {
            return java.util.Optional.empty();
        }
    }

    void log(String message) {
        config.log().accept(message);
    }

    private void begin() {
        Path dir = AgentFiles.dir();
        try {
            FileChannel ch = TrustedFiles.openOrCreate(dir.resolve(LOCK), "the agent's lock", AgentFiles.ADVICE);
            lock = ch.tryLock();
            if (lock == null) {
                throw new SutureException(SutureException.Kind.NOT_PERMITTED, "another suture agent runs (pid "
                        + String.join("", AgentFiles.read(PID)) + "); stop it first (systemctl stop suture-agent)");
            }
        } catch (IOException e) {
            throw new SutureException(SutureException.Kind.NOT_PERMITTED, "cannot lock " + dir.resolve(LOCK) + ": "
                    + TrustedFiles.reason(e));
        }
        AgentFiles.write(PID, List.of(Integer.toString(self)));
        log("starting (pid " + self + ", store " + config.store() + ", run directory " + dir + ")");
        // recovery first: what a killed suture (or agent) left half-done is finished or undone
        for (var r : Patcher.recoverAll(config.timeout(), config.maxPause())) {
            if (r.outcome() != Patcher.RecoverOutcome.NOTHING) {
                log("recover pid " + r.pid() + ": " + r.outcome() + (r.message() == null ? "" : ": " + r.message()));
            }
        }
        for (int pid : ExecHold.releaseLeftovers()) {
            log("pid " + pid + " (" + Processes.name(pid) + "): released from the entry point where a killed agent"
                    + " held it; it is patched in the normal way now");
        }
        for (int tid : LibraryHold.releaseLeftovers()) {
            log("thread " + tid + ": released from the library load where a killed agent held it; its process is"
                    + " patched in the normal way now");
        }
        known = new LinkedHashSet<>(AgentFiles.read(KNOWN));
        desired = readStore();
        if (desired == null) {
            throw new SutureException(SutureException.Kind.NOT_PERMITTED, "the patch store " + config.store()
                    + " cannot be used; see above");
        }
        Patcher.rehearse();
        fanotify = Notify.fanotify();
        inotify = Notify.inotify();
        watchStore();
        watchExecs();
        Thread.ofPlatform().daemon().name("suture-agent-fanotify").start(this::fanotifyLoop);
        Thread.ofPlatform().daemon().name("suture-agent-inotify").start(this::inotifyLoop);
        runOnWorker(() -> passAll("start"));
        long every = config.rescan().toMillis();
        worker.scheduleWithFixedDelay(() -> passAll(null), every, every, TimeUnit.MILLISECONDS);
        if (config.requests() != null) {
            CommandSocket.serve(config.requests(), this::log);
            log("serving apply, revert and info on " + AgentFiles.dir().resolve(CommandSocket.NAME));
        }
    }

    /** Runs {@code work} on the store's worker and waits for it. */
    private void runOnWorker(Runnable work) {
        try {
            worker.submit(work).get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (java.util.concurrent.ExecutionException e) {
            throw e.getCause() instanceof RuntimeException r ? r : new IllegalStateException(e.getCause());
        }
    }

    /** The store as it is now, or null (logged) when it cannot be used. */
    private DesiredState readStore() {
        try {
            var d = DesiredState.read(config.store(), config.keys());
            for (var r : d.refused()) {
                log("not acting on " + r.file() + ": " + r.reason());
            }
            return d;
        } catch (SutureException e) {
            log("the store is not used: " + e.getMessage());
            return null;
        }
    }

    // ---- the store ----

    private void watchStore() {
        int mask = Notify.IN_CREATE | Notify.IN_DELETE | Notify.IN_MOVED_TO | Notify.IN_MOVED_FROM
                | Notify.IN_CLOSE_WRITE | Notify.IN_ATTRIB | Notify.IN_DELETE_SELF | Notify.IN_MOVE_SELF
                | Notify.IN_ONLYDIR | Notify.IN_DONT_FOLLOW;
        synchronized (watches) {
            watches.put(Notify.addWatch(inotify, config.store().toString(), mask), config.store());
            if (desired != null) {
                for (var w : desired.byBuildId().values()) {
                    Path parent = w.file().getParent();
                    if (!parent.equals(config.store())) {
                        try {
                            watches.put(Notify.addWatch(inotify, parent.toString(), mask), parent);
                        } catch (SutureException gone) {
                            // removed meanwhile: the store's own watch reports it
                        }
                    }
                }
            }
        }
    }

    private void inotifyLoop() {
        while (true) {
            try {
                var events = Notify.readInotify(inotify);
                if (!events.isEmpty()) {
                    scheduleReload();
                }
            } catch (RuntimeException e) {
                log("watching the store failed: " + e.getMessage());
                return;
            }
        }
    }

    private synchronized void scheduleReload() {
        if (pendingReload == null || pendingReload.isDone()) {
            // a burst of events (a copy, a package's files) is read once it settles
            pendingReload = worker.schedule(this::reload, 100, TimeUnit.MILLISECONDS);
        }
    }

    private void reload() {
        var d = readStore();
        if (d == null) {
            return; // an untrusted store is not acted on; what is applied stays as it is
        }
        var before = desired;
        desired = d;
        watchStore();
        if (!before.patchIds().equals(d.patchIds())) {
            log("store changed: " + (d.patchIds().isEmpty() ? "no patches" : String.join(", ", d.patchIds())));
        }
        failures.prune(true);
        passAll("store change");
    }

    /** Every process to the store's state; {@code why} null for the periodic pass (it logs only what it does). */
    private void passAll(String why) {
        try {
            var d = desired;
            var ids = d.patchIds();
            var merged = new LinkedHashSet<>(known);
            merged.addAll(ids);
            if (!merged.equals(known)) {
                known = merged;
                AgentFiles.write(KNOWN, List.copyOf(merged));
            }
            var forgotten = new LinkedHashSet<>(known);
            forgotten.removeAll(ids);
            failures.prune(false);
            var processes = new Processes();
            boolean allReverted = true;
            for (int pid : Processes.all()) {
                if (pid == self || held.contains(pid)) {
                    continue;
                }
                allReverted &= reconcile(pid, processes, d, forgotten, why == null);
            }
            if (allReverted && !forgotten.isEmpty()) {
                known = new LinkedHashSet<>(ids);
                AgentFiles.write(KNOWN, List.copyOf(ids));
            }
            if (why != null) {
                log("every process is at the store's state (" + why + "): " + summary());
            }
        } catch (RuntimeException e) {
            log("pass over the processes failed: " + e);
        }
    }

    private String summary() {
        var d = desired;
        return d.byBuildId().size() + " patch(es) in the store, " + failures.count() + " process(es) not patched";
    }

    /**
     * One process to the store's state: reverts patches that left the store, applies (replacing older levels)
     * what is missing. Returns false when a patch that left the store could not be reverted.
     */
    private boolean reconcile(int pid, Processes processes, DesiredState d, Set<String> forgotten, boolean retry) {
        var mapped = processes.modules(pid);
        var relevant = d.byBuildId().values().stream().filter(w -> mapped.containsKey(w.buildId())).toList();
        if (relevant.isEmpty() && forgotten.isEmpty()) {
            return true;
        }
        String exe = exeOf(pid);
        for (var w : relevant) {
            String path = mapped.get(w.buildId());
            mark(path, path != null && path.equals(exe));
        }
        synchronized (pidLocks.computeIfAbsent(pid, p -> new Object())) { // one per pid ever seen: a few bytes
            return reconcileHeld(pid, relevant, forgotten, retry);
        }
    }

    private boolean reconcileHeld(int pid, List<DesiredState.Wanted> relevant, Set<String> forgotten,
                                  boolean retry) {
        long start = Processes.startTime(pid);
        List<Patcher.AppliedPatch> applied;
        try {
            applied = Patcher.applied(pid);
        } catch (SutureException e) {
            return true; // gone, or not a process suture can read (a kernel thread)
        }
        boolean ok = true;
        var revert = applied.stream().filter(a -> forgotten.contains(a.patchId()) && "applied".equals(a.state()))
                .map(Patcher.AppliedPatch::patchId).distinct().toList();
        if (!revert.isEmpty()) {
            try {
                for (var r : Patcher.revert(pid, revert, false, config.timeout(), config.maxPause())) {
                    log(String.format("pid %d (%s): reverted %s from %s (removed from the store); pause %.3f ms",
                            pid, Processes.name(pid), r.patchId(), r.module(), r.pauseNanos() / 1e6));
                }
            } catch (SutureException e) {
                ok = !fail(pid, start, String.join(",", revert), e);
            }
        }
        for (var w : relevant) {
            String id = w.patch().id();
            boolean in = applied.stream().anyMatch(a -> a.patchId().equals(id) && a.buildId().equals(w.buildId())
                    && "applied".equals(a.state()));
            if (in) {
                failures.clear(pid, start, id);
                continue;
            }
            var failed = failures.of(pid, start, id);
            if (failed != null && !(retry && retryable(failed))) {
                continue;
            }
            try {
                var r = Patcher.apply(pid, w.patch(), new Patcher.ApplyOptions(config.timeout(), false, true,
                        config.maxPause()));
                failures.clear(pid, start, id);
                if (r.outcome() == Patcher.Outcome.APPLIED) {
                    log(String.format("pid %d (%s): applied %s to %s; pause %.3f ms%s", pid, Processes.name(pid),
                            id, r.module(), r.pauseNanos() / 1e6, r.replacedPatches().isEmpty() ? ""
                                    : "; replaced " + String.join(", ", r.replacedPatches())));
                }
            } catch (SutureException e) {
                fail(pid, start, id, e);
            }
        }
        return ok;
    }

    /** A busy function or a tracer in the way may be gone later: such failures are tried again every minute. */
    private static boolean retryable(Failures.Failure f) {
        return (f.kind() == SutureException.Kind.UNSAFE || f.kind() == SutureException.Kind.NOT_PERMITTED)
                && System.currentTimeMillis() - f.atMillis() > 60_000;
    }

    /** Records a failure; a process that exited meanwhile is none (returns false then). */
    private boolean fail(int pid, long start, String patch, SutureException e) {
        if (e.kind() == SutureException.Kind.VANISHED || !Processes.exists(pid, start)) {
            log("pid " + pid + " exited while it was being patched; nothing to do");
            return false;
        }
        failures.record(new Failures.Failure(pid, start, patch, e.kind(), e.getMessage(),
                System.currentTimeMillis()));
        log("pid " + pid + " (" + Processes.name(pid) + "): could not bring " + patch + " to the store's state: "
                + e.getMessage());
        return true;
    }

    // ---- new processes and libraries ----

    /**
     * Watches a file the store patches: an executable for its execs (held before they run, {@link ExecHold}), a
     * library for its opens (patched as soon as it is mapped).
     */
    private void mark(String path, boolean executable) {
        synchronized (marked) {
            if (path == null || marked.contains(path)) {
                return;
            }
            long mask = executable ? Notify.FAN_OPEN_EXEC_PERM : Notify.FAN_OPEN_PERM;
            try {
                Notify.mark(fanotify, Notify.FAN_MARK_ADD, mask, path);
                marked.add(path);
            } catch (SutureException e) {
                log("cannot watch " + path + " for new processes: " + e.getMessage());
            }
        }
    }

    private static final Set<String> PSEUDO = Set.of("proc", "sysfs", "cgroup", "cgroup2", "devpts", "devtmpfs",
            "mqueue", "debugfs", "tracefs", "securityfs", "pstore", "bpf", "autofs", "configfs", "fusectl",
            "hugetlbfs", "binfmt_misc", "nsfs", "efivarfs", "rpc_pipefs");

    /**
     * Every exec on the machine's file systems, as a notification (FAN_OPEN_EXEC on each mount, not a permission
     * event: nobody waits for the agent): how the agent learns of an executable the store patches that no process
     * ran when its patch arrived. That first process is patched in the normal window; the file is marked, and its
     * later execs are held.
     */
    private void watchExecs() {
        try {
            for (String line : java.nio.file.Files.readAllLines(Path.of("/proc/self/mountinfo"))) {
                String[] halves = line.split(" - ", 2);
                String[] f = halves[0].split(" ");
                if (halves.length == 2 && f.length > 4 && !PSEUDO.contains(halves[1].split(" ")[0])) {
                    try {
                        Notify.mark(fanotify, Notify.FAN_MARK_ADD | Notify.FAN_MARK_MOUNT, Notify.FAN_OPEN_EXEC,
                                f[4].replace("\\040", " "));
                    } catch (SutureException e) {
                        // a mount fanotify cannot watch: its programs are found by the passes
                    }
                }
            }
        } catch (IOException e) {
            log("cannot read the mounts (" + e.getMessage() + "): executables are learnt from running processes");
        }
    }

    private final Map<String, String> buildIdOfFile = new ConcurrentHashMap<>();

    /** After an exec of {@code path} the agent did not hold: if the store patches that file, mark and patch. */
    private void learnExec(int pid, String path, long eventNanos) {
        String key;
        try {
            var attrs = java.nio.file.Files.readAttributes(Path.of(path), "unix:ino,dev,lastModifiedTime");
            key = path + "\0" + attrs.get("dev") + ":" + attrs.get("ino") + ":" + attrs.get("lastModifiedTime");
        } catch (IOException | RuntimeException e) {
            return;
        }
        String id = buildIdOfFile.computeIfAbsent(key, k -> buildIdOf(Path.of(path)));
        boolean known;
        synchronized (marked) {
            known = marked.contains(path);
        }
        if (!known && !id.isEmpty() && desired.byBuildId().containsKey(id)) {
            mark(path, true);
            log("pid " + pid + ": " + path + ", which the store patches, was executed before the agent watched it;"
                    + " its later processes are held before main");
            afterOpen(pid, eventNanos);
        }
    }

    private static String buildIdOf(Path file) {
        if (!dev.suture.elf.ElfFile.hasElfMagic(file)) {
            return "";
        }
        try (var elf = dev.suture.elf.ElfFile.open(file)) {
            return elf.buildId().orElse("");
        } catch (RuntimeException e) {
            return "";
        }
    }

    private static String exeOf(int pid) {
        try {
            return java.nio.file.Files.readSymbolicLink(Path.of("/proc/" + pid + "/exe")).toString();
        } catch (IOException e) {
            return "";
        }
    }

    private void fanotifyLoop() {
        while (true) {
            List<Notify.FanotifyEvent> events;
            try {
                events = Notify.readFanotify(fanotify);
            } catch (RuntimeException e) {
                log("watching patched files failed: " + e.getMessage());
                return;
            }
            for (var ev : events) {
                long now = System.nanoTime();
                try {
                    int pid = LibraryHold.tgid(ev.tid());
                    if (pid == self || held.contains(pid)) {
                        continue; // our own reads; a process the agent holds already (its loader opens libraries)
                    }
                    if ((ev.mask() & Notify.FAN_OPEN_EXEC_PERM) != 0) {
                        held.add(pid);
                        ExecHold.catchExec(ev.tid(), now, handler(pid, "new process patched before main"));
                    } else if ((ev.mask() & Notify.FAN_OPEN_EXEC) != 0 && (ev.mask() & Notify.FAN_OPEN_PERM) == 0) {
                        String path = java.nio.file.Files.readSymbolicLink(Path.of("/proc/self/fd/" + ev.fd()))
                                .toString();
                        late.execute(() -> learnExec(pid, path, now));
                    } else if ((ev.mask() & Notify.FAN_OPEN_PERM) != 0) {
                        held.add(pid);
                        String path = java.nio.file.Files.readSymbolicLink(Path.of("/proc/self/fd/" + ev.fd()))
                                .toString();
                        LibraryHold.catchOpen(ev.tid(), path, now, handler(pid,
                                "patched before the library it opened ran"));
                    }
                } catch (IOException | RuntimeException e) {
                    log("thread " + ev.tid() + ": " + e.getMessage());
                } finally {
                    try {
                        if (ev.permission()) {
                            Notify.allow(fanotify, ev.fd());
                        }
                    } finally {
                        if (ev.fd() >= 0) {
                            Syscalls.close(ev.fd());
                        }
                    }
                }
            }
        }
    }

    /** What a hold of process {@code pid} does: patch it, and say how it went ({@code what}: the guarantee met). */
    private ExecHold.Handler handler(int pid, String what) {
        return new ExecHold.Handler() {
            @Override
            public String patch(int ignored) {
                var d = desired;
                reconcile(pid, new Processes(), d, Set.of(), false);
                try {
                    return String.join(", ", Patcher.applied(pid).stream().map(Patcher.AppliedPatch::patchId)
                            .toList());
                } catch (SutureException e) {
                    return "";
                }
            }

            @Override
            public void lost(int ignored, long eventNanos, String why) {
                held.remove(pid);
                log("pid " + pid + ": not held: " + why + "; patching it now");
                late.execute(() -> afterOpen(pid, eventNanos));
            }

            @Override
            public void held(int ignored, long eventNanos, long heldNanos, long releasedNanos, String patched) {
                held.remove(pid);
                log(String.format("pid %d (%s): %s (%s): held %.3f ms after the event, ran on %.3f ms after it",
                        pid, Processes.name(pid), what, patched.isEmpty() ? "nothing applied" : patched,
                        (heldNanos - eventNanos) / 1e6, (releasedNanos - eventNanos) / 1e6));
            }
        };
    }

    /**
     * A process opened a patched file without being held (a library, or an exec the hold lost): waits until it
     * maps a module of the store, then patches it in the normal way and says how long after the open that was.
     */
    private void afterOpen(int pid, long eventNanos) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        var d = desired;
        while (System.nanoTime() < deadline) {
            var mapped = new Processes().modules(pid);
            if (mapped.isEmpty() && !java.nio.file.Files.exists(Path.of("/proc/" + pid))) {
                return;
            }
            if (d.byBuildId().keySet().stream().anyMatch(mapped::containsKey)) {
                reconcile(pid, new Processes(), d, Set.of(), false);
                log(String.format("pid %d (%s): patched in the normal window %.3f ms after it opened a patched"
                        + " file (not held: it may have run the old code meanwhile)", pid, Processes.name(pid),
                        (System.nanoTime() - eventNanos) / 1e6));
                return;
            }
            java.util.concurrent.locks.LockSupport.parkNanos(500_000);
        }
    }

    // ---- for the socket and for tests ----

    public DesiredState desired() {
        return desired;
    }

    List<String> knownIds() {
        return new ArrayList<>(known);
    }
}
