package dev.suture.sys;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * The kernel's file notifications, for the agent (docs/agent.md): inotify on the patch store (what changed in it)
 * and fanotify on the files the store patches (who is about to execute or open them: a permission event holds the
 * opener in the kernel until it is answered). Blocking reads; each watcher reads on a thread of its own.
 */
public final class Notify {
    private Notify() {}

    public static final int IN_MODIFY = 0x2;
    public static final int IN_ATTRIB = 0x4;
    public static final int IN_CLOSE_WRITE = 0x8;
    public static final int IN_MOVED_FROM = 0x40;
    public static final int IN_MOVED_TO = 0x80;
    public static final int IN_CREATE = 0x100;
    public static final int IN_DELETE = 0x200;
    public static final int IN_DELETE_SELF = 0x400;
    public static final int IN_MOVE_SELF = 0x800;
    public static final int IN_ISDIR = 0x40000000;
    public static final int IN_DONT_FOLLOW = 0x02000000;
    public static final int IN_ONLYDIR = 0x01000000;

    public static final int FAN_CLASS_CONTENT = 0x4;
    public static final int FAN_CLOEXEC = 0x1;
    /** Events name the thread that caused them, not its process. */
    public static final int FAN_REPORT_TID = 0x100;
    public static final int FAN_MARK_ADD = 0x1;
    public static final int FAN_MARK_REMOVE = 0x2;
    public static final int FAN_MARK_DONT_FOLLOW = 0x4;
    public static final int FAN_MARK_MOUNT = 0x10;
    public static final long FAN_OPEN = 0x20;
    public static final long FAN_OPEN_EXEC = 0x1000;
    public static final long FAN_OPEN_PERM = 0x10000;
    public static final long FAN_OPEN_EXEC_PERM = 0x40000;
    public static final int FAN_ALLOW = 0x1;
    private static final int O_RDONLY_LARGEFILE = 0x8000;
    private static final int AT_FDCWD = -100;

    private static final class InotifyInit {
        static final MethodHandle H = Syscalls.link("inotify_init1", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    }

    private static final class InotifyAddWatch {
        static final MethodHandle H = Syscalls.link("inotify_add_watch", FunctionDescriptor.of(JAVA_INT, JAVA_INT,
                ADDRESS, JAVA_INT));
    }

    private static final class FanotifyInit {
        static final MethodHandle H = Syscalls.link("fanotify_init", FunctionDescriptor.of(JAVA_INT, JAVA_INT,
                JAVA_INT));
    }

    private static final class FanotifyMark {
        static final MethodHandle H = Syscalls.link("fanotify_mark", FunctionDescriptor.of(JAVA_INT, JAVA_INT,
                JAVA_INT, JAVA_LONG, JAVA_INT, ADDRESS));
    }

    private static final class Read {
        static final MethodHandle H = Syscalls.link("read", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS,
                JAVA_LONG));
    }

    private static final class Write {
        static final MethodHandle H = Syscalls.link("write", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS,
                JAVA_LONG));
    }

    /** inotify_init1(IN_CLOEXEC). */
    public static int inotify() {
        var s = Syscalls.SCRATCH.get();
        try {
            int fd = (int) InotifyInit.H.invokeExact(s.errno, 0x80000);
            if (fd < 0) {
                throw SysException.of("inotify_init1", s.errno(), "the patch store's watch");
            }
            return fd;
        } catch (Throwable t) {
            throw Syscalls.rethrow(t);
        }
    }

    /** inotify_add_watch; returns the watch descriptor. */
    public static int addWatch(int fd, String path, int mask) {
        var s = Syscalls.SCRATCH.get();
        try (var arena = Arena.ofConfined()) {
            int wd = (int) InotifyAddWatch.H.invokeExact(s.errno, fd, arena.allocateFrom(path), mask);
            if (wd < 0) {
                throw SysException.of("inotify_add_watch", s.errno(), path);
            }
            return wd;
        } catch (Throwable t) {
            throw Syscalls.rethrow(t);
        }
    }

    /** One inotify event: the watch it came from, what happened, and the name in the watched directory. */
    public record InotifyEvent(int watch, int mask, String name) {}

    /** Blocks until inotify events arrive, and returns them. */
    public static List<InotifyEvent> readInotify(int fd) {
        var b = readBlock(fd, "read of the patch store's watch");
        var out = new ArrayList<InotifyEvent>();
        while (b.remaining() >= 16) {
            int wd = b.getInt();
            int mask = b.getInt();
            b.getInt(); // cookie
            int len = b.getInt();
            byte[] name = new byte[len];
            b.get(name);
            int end = 0;
            while (end < len && name[end] != 0) {
                end++;
            }
            out.add(new InotifyEvent(wd, mask, new String(name, 0, end, java.nio.charset.StandardCharsets.UTF_8)));
        }
        return out;
    }

    /**
     * fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_REPORT_TID, O_RDONLY | O_LARGEFILE): permission events,
     * each naming the thread that waits for the answer.
     */
    public static int fanotify() {
        var s = Syscalls.SCRATCH.get();
        try {
            int fd = (int) FanotifyInit.H.invokeExact(s.errno, FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_REPORT_TID,
                    O_RDONLY_LARGEFILE | 0x80000);
            if (fd < 0) {
                int errno = s.errno();
                if (errno == Errno.EPERM) {
                    throw new NotPermittedException("fanotify_init", errno, "fanotify needs CAP_SYS_ADMIN: run the"
                            + " agent as root");
                }
                throw SysException.of("fanotify_init", errno, "the agent's watch of patched files");
            }
            return fd;
        } catch (Throwable t) {
            throw Syscalls.rethrow(t);
        }
    }

    /** fanotify_mark of one file (an inode mark, not following a symlink). */
    public static void mark(int fd, int flags, long mask, String path) {
        var s = Syscalls.SCRATCH.get();
        try (var arena = Arena.ofConfined()) {
            int r = (int) FanotifyMark.H.invokeExact(s.errno, fd, flags | FAN_MARK_DONT_FOLLOW, mask, AT_FDCWD,
                    arena.allocateFrom(path));
            if (r < 0) {
                throw SysException.of("fanotify_mark", s.errno(), path);
            }
        } catch (Throwable t) {
            throw Syscalls.rethrow(t);
        }
    }

    /**
     * One fanotify event: what happened ({@code mask}), the file's descriptor in this process, and the thread that did
     * it ({@code tid}).
     */
    public record FanotifyEvent(long mask, int fd, int tid) {
        public boolean permission() {
            return (mask & (FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM)) != 0;
        }
    }

    /** Blocks until fanotify events arrive, and returns them. */
    public static List<FanotifyEvent> readFanotify(int fd) {
        var b = readBlock(fd, "read of the agent's fanotify watch");
        var out = new ArrayList<FanotifyEvent>();
        while (b.remaining() >= 24) {
            int start = b.position();
            int len = b.getInt();
            b.get(); // vers
            b.get(); // reserved
            b.getShort(); // metadata_len
            long mask = b.getLong();
            int file = b.getInt();
            int pid = b.getInt();
            out.add(new FanotifyEvent(mask, file, pid));
            if (len < 24) {
                break;
            }
            b.position(start + len);
        }
        return out;
    }

    /** Answers a permission event (FAN_ALLOW): the opener goes on. */
    public static void allow(int fd, int eventFd) {
        var s = Syscalls.SCRATCH.get();
        MemorySegment buf = s.buffer(8);
        buf.set(JAVA_INT, 0, eventFd);
        buf.set(JAVA_INT, 4, FAN_ALLOW);
        try {
            long n = (long) Write.H.invokeExact(s.errno, fd, buf, 8L);
            if (n != 8) {
                throw SysException.of("write", s.errno(), "fanotify response");
            }
        } catch (Throwable t) {
            throw Syscalls.rethrow(t);
        }
    }

    private static ByteBuffer readBlock(int fd, String what) {
        var s = Syscalls.SCRATCH.get();
        MemorySegment buf = s.buffer(64 * 1024);
        long n;
        while (true) {
            try {
                n = (long) Read.H.invokeExact(s.errno, fd, buf, 64L * 1024);
            } catch (Throwable t) {
                throw Syscalls.rethrow(t);
            }
            if (n >= 0) {
                break;
            }
            if (s.errno() != Errno.EINTR) {
                throw SysException.of("read", s.errno(), what);
            }
        }
        byte[] out = new byte[(int) n];
        MemorySegment.copy(buf, ValueLayout.JAVA_BYTE, 0, out, 0, (int) n);
        return ByteBuffer.wrap(out).order(ByteOrder.nativeOrder());
    }
}
