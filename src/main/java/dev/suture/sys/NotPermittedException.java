package dev.suture.sys;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/** The kernel refused (EPERM/EACCES). For ptrace, {@link #forPtrace} names the likely reason. */
public final class NotPermittedException extends SysException {
    public NotPermittedException(String call, int errno, String message) {
        super(Kind.NOT_PERMITTED, call, errno, message);
    }

    /**
     * The refusal of {@code call} on thread {@code tid} of process {@code pid}, with the most likely reason found
     * in /proc: another tracer, Yama's ptrace_scope, a missing CAP_SYS_PTRACE, or a setuid/non-dumpable target.
     */
    public static NotPermittedException forPtrace(String call, int errno, int pid, int tid) {
        return new NotPermittedException(call, errno, "cannot trace process " + pid
                + (tid != pid ? " (thread " + tid + ")" : "") + ": " + reason(pid, tid));
    }

    static String reason(int pid, int tid) {
        if (pid == ProcessHandle.current().pid()) {
            return "it is suture's own process";
        }
        Optional<String> status = read(Path.of("/proc/" + pid + "/task/" + tid + "/status"))
                .or(() -> read(Path.of("/proc/" + pid + "/status")));
        long tracer = status.map(s -> field(s, "TracerPid:")).map(NotPermittedException::parseLong).orElse(0L);
        if (tracer != 0) {
            String name = read(Path.of("/proc/" + tracer + "/comm")).map(String::strip).orElse("?");
            String cmdline = read(Path.of("/proc/" + tracer + "/cmdline"))
                    .map(c -> c.replace('\0', ' ').strip()).filter(c -> !c.isEmpty()).orElse(name);
            return "it is already traced by pid " + tracer + " (" + name + ": " + cmdline
                    + "); a process can have only one tracer: detach that debugger or tracer and retry";
        }
        String scope = read(Path.of("/proc/sys/kernel/yama/ptrace_scope")).map(String::strip).orElse("");
        boolean capable = hasCapSysPtrace();
        if (!capable) {
            switch (scope) {
                case "3" -> {
                    return "Yama ptrace_scope is 3 (ptrace disabled for everyone until reboot)";
                }
                case "2" -> {
                    return "Yama ptrace_scope is 2 (only CAP_SYS_PTRACE may attach): run suture as root or grant "
                            + "it CAP_SYS_PTRACE";
                }
                case "1" -> {
                    return "Yama ptrace_scope is 1 (only ancestors may attach): run suture with CAP_SYS_PTRACE "
                            + "(e.g. as root), or set /proc/sys/kernel/yama/ptrace_scope to 0";
                }
                default -> { }
            }
        }
        if (status.isPresent()) {
            String uid = field(status.get(), "Uid:");
            String gid = field(status.get(), "Gid:");
            if (uid != null && !allSame(uid) || gid != null && !allSame(gid)) {
                return "its user or group ids differ (a setuid/setgid program)"
                        + (capable ? "" : ": run suture as root or with CAP_SYS_PTRACE");
            }
            long self = ProcessHandle.current().pid();
            String selfUid = read(Path.of("/proc/" + self + "/status")).map(s -> field(s, "Uid:")).orElse(null);
            if (!capable && uid != null && selfUid != null && !first(uid).equals(first(selfUid))) {
                return "it belongs to uid " + first(uid) + " and suture runs as uid " + first(selfUid)
                        + " without CAP_SYS_PTRACE: run suture as that user or as root";
            }
        }
        if (!capable) {
            return "suture lacks CAP_SYS_PTRACE and the target may be non-dumpable (prctl PR_SET_DUMPABLE 0, or a "
                    + "setuid program): run suture as root";
        }
        return "the kernel refused (the target may be non-dumpable, exiting, or protected by a security module)";
    }

    private static boolean hasCapSysPtrace() {
        long self = ProcessHandle.current().pid();
        return read(Path.of("/proc/" + self + "/status")).map(s -> field(s, "CapEff:"))
                .map(hex -> (Long.parseUnsignedLong(hex.strip(), 16) & (1L << 19)) != 0).orElse(false);
    }

    private static boolean allSame(String ids) {
        String[] f = ids.strip().split("\\s+");
        for (String s : f) {
            if (!s.equals(f[0])) {
                return false;
            }
        }
        return true;
    }

    private static String first(String ids) {
        return ids.strip().split("\\s+")[0];
    }

    private static String field(String status, String name) {
        return status.lines().filter(l -> l.startsWith(name)).findFirst()
                .map(l -> l.substring(name.length()).strip()).orElse(null);
    }

    private static Long parseLong(String s) {
        try {
            return Long.parseLong(s.strip());
        } catch (NumberFormatException e) {
            return 0L;
        }
    }

    private static Optional<String> read(Path p) {
        try {
            return Optional.of(Files.readString(p));
        } catch (IOException | RuntimeException e) {
            return Optional.empty();
        }
    }
}
