package dev.suture.proc;

import dev.suture.SutureException;
import dev.suture.elf.ElfConstants;
import dev.suture.elf.Section;
import dev.suture.elf.Symbol;
import dev.suture.sys.SysException;
import dev.suture.sys.Syscalls;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;

/**
 * A place in executable memory whose bytes are never executed, where a syscall stub may be written for a moment:
 * alignment padding between two functions (found from the symbol table and checked to be padding, in the file and
 * in memory), or else the slack between the end of an executable segment and the end of its last page.
 *
 * @param address run-time address of the first byte
 * @param length usable bytes
 * @param original what the bytes are now (restored after use)
 * @param where "app: padding after main", for messages
 */
public record StubSite(long address, int length, byte[] original, String where) {

    /** Where, in the call stub, the function called returns to: right after its {@code call *%r11}. */
    public static final int CALL_RETURN_OFFSET = 3;

    /** Whether {@code code} is the stub a function called for suture returns into (not a system call's). */
    public static boolean runsAFunction(byte[] code) {
        return Arrays.equals(code, Injector.CALL_STUB);
    }

    /**
     * Why a journal's claim that suture wrote its stub {@code code} at {@code address} over {@code original} cannot
     * be true of this process; empty when it can. The code must be the stub suture writes, and the place one that
     * {@link #find} could have chosen: padding between functions whose bytes in the file are {@code original}, or
     * the slack after an executable segment. Recovery asks this before it writes {@code original} back.
     */
    public static Optional<String> problem(Modules modules, long address, byte[] original, byte[] code) {
        if (!Arrays.equals(code, Injector.STUB) && !Arrays.equals(code, Injector.CALL_STUB)) {
            return Optional.of("the stub's code is not suture's (" + HexFormat.of().formatHex(code) + ")");
        }
        var found = modules.containing(address);
        if (found.isEmpty()) {
            return Optional.of("0x" + Long.toHexString(address) + " is in no module");
        }
        Module m = found.get();
        int length = original.length;
        if (!executableMapping(m, address, length)) {
            return Optional.of("0x" + Long.toHexString(address) + " is not in executable code of " + m.name());
        }
        long vaddr = address - m.loadBias();
        long gapEnd = gapEnd(m, vaddr, length);
        var fileBytes = gapEnd < 0 ? Optional.<byte[]>empty() : m.elf().readAt(vaddr, (int) (gapEnd - vaddr));
        if (fileBytes.isPresent() && Arrays.equals(Arrays.copyOf(fileBytes.get(), length), original)
                && isPadding(fileBytes.get())) {
            return Optional.empty();
        }
        for (var p : m.elf().programHeaders()) {
            if (p.isLoad() && (p.p_flags() & ElfConstants.PF_X) != 0) {
                long end = m.runtime(p.p_vaddr() + p.p_memsz());
                long pageEnd = (end + Maps.PAGE - 1) & -Maps.PAGE;
                if (Long.compareUnsigned(address, end) >= 0 && Long.compareUnsigned(address + length, pageEnd) <= 0) {
                    return Optional.empty();
                }
            }
        }
        return Optional.of("0x" + Long.toHexString(address) + " in " + m.name() + " is neither padding between"
                + " functions holding those bytes in the file nor the slack after a code segment");
    }

    /**
     * Where the gap between symbols that holds {@code [vaddr, vaddr + length)} ends, at most 64 bytes on (as
     * {@link #find} looks no further); -1 when a symbol covers part of that range.
     */
    private static long gapEnd(Module m, long vaddr, int length) {
        long end = vaddr + 64;
        for (var s : m.elf().symbols()) {
            if (s.type() == ElfConstants.STT_SECTION || s.type() == ElfConstants.STT_TLS
                    || s.st_shndx() == ElfConstants.SHN_UNDEF) {
                continue;
            }
            if (Long.compareUnsigned(vaddr, s.st_value() + s.st_size()) < 0
                    && Long.compareUnsigned(s.st_value(), vaddr + length) < 0) {
                return -1;
            }
            if (Long.compareUnsigned(s.st_value(), vaddr + length) >= 0 && Long.compareUnsigned(s.st_value(), end) < 0) {
                end = s.st_value();
            }
        }
        return end;
    }

    /** Finds a site of at least {@code need} bytes in the process's modules (the executable first). */
    static StubSite find(int pid, Modules modules, int need) {
        for (var m : modules.all()) {
            var site = betweenFunctions(pid, m, need);
            if (site.isPresent()) {
                return site.get();
            }
        }
        for (var m : modules.all()) {
            var site = segmentTail(pid, m, need);
            if (site.isPresent()) {
                return site.get();
            }
        }
        throw new SutureException(SutureException.Kind.DOES_NOT_FIT, "process " + pid + " has no " + need
                + " bytes of padding in executable memory to run a system call from");
    }

    /** Whether the bytes here are still what we found (nobody patched them since). */
    boolean stillThere(int pid) {
        byte[] now = new byte[original.length];
        try {
            return Syscalls.readMemory(pid, address, now, 0, now.length) == now.length && Arrays.equals(now, original);
        } catch (SysException e) {
            return false;
        }
    }

    private static Optional<StubSite> betweenFunctions(int pid, Module m, int need) {
        if (m.path().startsWith("[")) {
            return Optional.empty();
        }
        List<Symbol> symbols = m.elf().symbols();
        if (symbols.isEmpty()) {
            return Optional.empty();
        }
        for (Section text : m.elf().sections()) {
            if (!text.isExecutable() || text.sh_type() != ElfConstants.SHT_PROGBITS || text.sh_size() < need) {
                continue;
            }
            // every symbol that marks something in this section, functions or not: a gap holds none of them
            var inSection = new ArrayList<Symbol>();
            for (var s : symbols) {
                if (s.st_shndx() == text.index() && s.type() != ElfConstants.STT_SECTION) {
                    inSection.add(s);
                }
            }
            inSection.sort(Comparator.comparingLong(Symbol::st_value));
            long covered = text.sh_addr();
            Symbol previous = null;
            for (var s : inSection) {
                long gapEnd = s.st_value();
                if (previous != null && previous.isFunction() && previous.st_size() > 0 && gapEnd - covered >= need) {
                    var site = check(pid, m, covered, (int) Math.min(gapEnd - covered, 64),
                            "padding after " + previous.name());
                    if (site.isPresent()) {
                        return site;
                    }
                }
                covered = Math.max(covered, s.st_value() + Math.max(s.st_size(), 0));
                previous = s;
            }
        }
        return Optional.empty();
    }

    private static Optional<StubSite> check(int pid, Module m, long vaddr, int length, String what) {
        var fileBytes = m.elf().readAt(vaddr, length);
        if (fileBytes.isEmpty() || !isPadding(fileBytes.get())) {
            return Optional.empty();
        }
        long at = m.runtime(vaddr);
        if (!executableMapping(m, at, length)) {
            return Optional.empty();
        }
        byte[] live = new byte[length];
        try {
            if (Syscalls.readMemory(pid, at, live, 0, length) != length || !Arrays.equals(live, fileBytes.get())) {
                return Optional.empty();
            }
        } catch (SysException e) {
            return Optional.empty();
        }
        return Optional.of(new StubSite(at, length, live, m.name() + ": " + what));
    }

    /** The bytes between the end of an executable PT_LOAD and the end of the page it ends in. */
    private static Optional<StubSite> segmentTail(int pid, Module m, int need) {
        for (var p : m.elf().programHeaders()) {
            if (!p.isLoad() || (p.p_flags() & ElfConstants.PF_X) == 0) {
                continue;
            }
            long end = m.runtime(p.p_vaddr() + p.p_memsz());
            long pageEnd = (end + Maps.PAGE - 1) & -Maps.PAGE;
            int length = (int) Math.min(pageEnd - end, 64);
            if (length >= need && executableMapping(m, end, length)) {
                byte[] live = new byte[length];
                try {
                    if (Syscalls.readMemory(pid, end, live, 0, length) == length) {
                        return Optional.of(new StubSite(end, length, live, m.name() + ": end of its code segment"));
                    }
                } catch (SysException e) {
                    // unreadable: try the next
                }
            }
        }
        return Optional.empty();
    }

    private static boolean executableMapping(Module m, long at, int length) {
        for (var mapping : m.mappings()) {
            if (mapping.executable() && mapping.contains(at) && mapping.contains(at + length - 1)) {
                return true;
            }
        }
        return false;
    }

    /** Whether {@code b} is a run of the fillers compilers and assemblers put between functions: int3 and NOPs. */
    static boolean isPadding(byte[] b) {
        int i = 0;
        while (i < b.length) {
            int n = fillerLength(b, i);
            if (n <= 0) {
                return false;
            }
            i += n;
        }
        return true;
    }

    private static int fillerLength(byte[] b, int i) {
        int start = i;
        int op = b[i] & 0xff;
        if (op == 0xcc || op == 0x90 || op == 0x00 && allZero(b, i)) {
            return op == 0x00 ? b.length - i : 1;
        }
        while (i < b.length && ((b[i] & 0xff) == 0x66 || (b[i] & 0xff) == 0x2e)) {
            i++;
        }
        if (i < b.length && (b[i] & 0xff) == 0x90) {
            return i + 1 - start;
        }
        if (i + 2 >= b.length || (b[i] & 0xff) != 0x0f || (b[i + 1] & 0xff) != 0x1f) {
            return -1;
        }
        int modrm = b[i + 2] & 0xff;
        int mod = modrm >> 6;
        int rm = modrm & 7;
        int length = 3 + (rm == 4 && mod != 3 ? 1 : 0) + (mod == 1 ? 1 : mod == 2 ? 4 : 0);
        if ((modrm >> 3 & 7) != 0 || mod == 3 || i + length > b.length) {
            return -1;
        }
        for (int k = i + 3; k < i + length; k++) {
            if (b[k] != 0 && !(k == i + 3 && rm == 4 && (b[k] & 0xff) == 0x00)) {
                return -1;
            }
        }
        return i + length - start;
    }

    private static boolean allZero(byte[] b, int from) {
        for (int i = from; i < b.length; i++) {
            if (b[i] != 0) {
                return false;
            }
        }
        return true;
    }
}
