package dev.suture.proc;

import dev.suture.SutureException;
import dev.suture.sys.TrustedFiles;
import dev.suture.sys.ProcessVanishedException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;

/** The ELF auxiliary vector the kernel gave a process at exec (/proc/PID/auxv): a_type -> a_val. */
public record Auxv(Map<Long, Long> entries) {
    public static final long AT_PHDR = 3;
    public static final long AT_PHENT = 4;
    public static final long AT_PHNUM = 5;
    public static final long AT_PAGESZ = 6;
    public static final long AT_BASE = 7;
    public static final long AT_ENTRY = 9;
    public static final long AT_SYSINFO_EHDR = 33;
    public static final long AT_EXECFN = 31;

    public static Auxv read(int pid) {
        try {
            return parse(Files.readAllBytes(Path.of("/proc/" + pid + "/auxv")));
        } catch (NoSuchFileException e) {
            throw ProcessVanishedException.process(pid, "reading /proc/" + pid + "/auxv");
        } catch (IOException e) {
            if (ThreadState.processGone(pid, ThreadState.VANISH_GRACE_MILLIS)) {
                throw ProcessVanishedException.process(pid, "reading /proc/" + pid + "/auxv");
            }
            throw new SutureException(SutureException.Kind.NOT_PERMITTED, "cannot read /proc/" + pid + "/auxv: "
                    + TrustedFiles.reason(e) + ProcessIds.WHY_DENIED);
        }
    }

    /** Decodes (a_type, a_val) pairs of 64-bit words up to AT_NULL. */
    public static Auxv parse(byte[] bytes) {
        var buf = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        var map = new LinkedHashMap<Long, Long>();
        while (buf.remaining() >= 16) {
            long type = buf.getLong();
            long value = buf.getLong();
            if (type == 0) {
                break;
            }
            map.put(type, value);
        }
        return new Auxv(Collections.unmodifiableMap(map));
    }

    public Optional<Long> get(long type) {
        return Optional.ofNullable(entries.get(type));
    }

    /** The address of the vdso's ELF header, if the kernel mapped one. */
    public Optional<Long> vdso() {
        return get(AT_SYSINFO_EHDR);
    }

    /** The executable's entry point (after its load bias). */
    public Optional<Long> entry() {
        return get(AT_ENTRY);
    }

    /** Where the dynamic linker was loaded (0 for a static executable). */
    public Optional<Long> interpreterBase() {
        return get(AT_BASE);
    }
}
