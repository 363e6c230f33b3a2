package dev.suture.live;

import dev.suture.SutureException;
import dev.suture.proc.Module;
import dev.suture.proc.Modules;
import dev.suture.proc.Tracer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.Arrays;
import java.util.Optional;

/**
 * A region's {@code .eh_frame} registered with the target's own unwinder, so that a C++ exception thrown from, or
 * through, the new code is caught where the program catches it (libgcc's {@code _Unwind_Find_FDE} finds the
 * frames of the modules through {@code dl_iterate_phdr} and those registered with it; a region is neither).
 *
 * <p>{@code __register_frame_info(begin, ob)} is called before the window that installs the jumps, and
 * {@code __deregister_frame_info(begin)} after the window that takes them out and before the region is unmapped,
 * each on a borrowed thread ({@link Tracer#call}) while the rest of the process runs. libgcc keeps {@code ob} (its
 * {@code struct object}, 48 bytes in libgcc 12) in a list; it lies in the region's data, in a block that starts
 * with a state word. Neither call is made directly: the region's helper ({@link #HELPER}, the last bytes of its
 * text) makes it and then stores the state word, so the state the process is in is written by the process itself
 * the moment the call returns, whenever suture dies: 0 never registered, 1 registered, 2 registered and taken back.
 * Revert and recovery deregister only a region whose word says 1 (libgcc aborts on a frame it does not know), and
 * unmap a region whose word says 1 only once that succeeded (docs/region-format.md).
 */
final class FrameRegistration {
    private FrameRegistration() {}

    /** The block in the region's data: the state word, then room for libgcc's {@code struct object}. */
    static final int BLOCK_SIZE = 8 + 128;
    /** Room at the end of the text for {@link #HELPER}. */
    static final int HELPER_SPACE = 32;

    static final long NEVER = 0;
    static final long REGISTERED = 1;
    static final long DEREGISTERED = 2;

    /**
     * {@code helper(rdi, rsi, fn = rdx, state = rcx, value = r8)}: calls {@code fn(rdi, rsi)}, then stores
     * {@code value} at {@code state}, and returns what {@code fn} returned: {@code push %rbx; push %r12;
     * mov %rcx,%rbx; mov %r8,%r12; sub $8,%rsp; call *%rdx; mov %r12,(%rbx); add $8,%rsp; pop %r12; pop %rbx; ret}.
     */
    static final byte[] HELPER = {0x53, 0x41, 0x54, 0x48, (byte) 0x89, (byte) 0xcb, 0x4d, (byte) 0x89, (byte) 0xc4,
        0x48, (byte) 0x83, (byte) 0xec, 0x08, (byte) 0xff, (byte) 0xd2, 0x4c, (byte) 0x89, 0x23, 0x48, (byte) 0x83,
        (byte) 0xc4, 0x08, 0x41, 0x5c, 0x5b, (byte) 0xc3};

    /** How long either call may take: a lock, a short list walk (and, at most, one free). */
    static final Duration TIMEOUT = Duration.ofSeconds(1);

    private static final String REGISTER = "__register_frame_info";
    private static final String DEREGISTER = "__deregister_frame_info";

    /** The unwinder's two entry points, as the dynamic linker binds them, in the module that defines both. */
    record EntryPoints(Module module, long register, long deregister) {}

    /** libgcc's entry points in {@code modules} (libgcc_s.so.1 in a C++ program); empty in a plain C program. */
    static Optional<EntryPoints> find(Modules modules) {
        var register = modules.resolve(REGISTER);
        var deregister = modules.resolve(DEREGISTER);
        if (register.isEmpty() || deregister.isEmpty() || register.get().module() != deregister.get().module()) {
            return Optional.empty();
        }
        return Optional.of(new EntryPoints(register.get().module(), register.get().address(),
                deregister.get().address()));
    }

    /** Writes the helper into {@code image}, the region's bytes to be written (the block is zeros there). */
    static void lay(byte[] image, RegionHeader.Layout l) {
        System.arraycopy(HELPER, 0, image, l.framesHelperOffset(), HELPER.length);
    }

    /**
     * Registers the region's CFI; before its window, with the region written. A call that fails leaves the state
     * word as it was (the helper stores it only once the call returned), and this throws.
     */
    static void register(Tracer tracer, long base, RegionHeader.Layout l, Modules modules, EntryPoints e,
                         String patchId) {
        run(tracer, base, l, e.register(), REGISTERED, REGISTER + " (" + e.module().name() + ") for patch " + patchId,
                guard(modules, e));
        long state = state(tracer, base, l);
        if (state != REGISTERED) {
            throw new SutureException(SutureException.Kind.INTERNAL, String.format("patch %s: after %s returned,"
                    + " the region's frame state at 0x%x is %d, not %d", patchId, REGISTER, base + l.framesOffset(),
                    state, REGISTERED));
        }
    }

    /**
     * Takes the region's CFI back from libgcc if it is registered; after the window that took the jumps out and
     * before the unmap. Returns normally when the region may be unmapped; throws when it must stay mapped (the
     * call failed, or returned another object than the region's), saying so.
     */
    static void release(Tracer tracer, long base, RegionHeader.Layout l, Modules modules, String patchId) {
        if (!l.hasFrames() || state(tracer, base, l) != REGISTERED) {
            return;
        }
        String what = DEREGISTER + " for patch " + patchId;
        var e = find(modules).orElseThrow(() -> new SutureException(SutureException.Kind.UNSAFE, String.format(
                "patch %s: its unwind information is registered with libgcc, but no module of the process defines"
                        + " %s any more; the region at 0x%x stays mapped", patchId, DEREGISTER, base)));
        long returned;
        try {
            returned = run(tracer, base, l, e.deregister(), DEREGISTERED, what + " (" + e.module().name() + ")",
                    guard(modules, e));
        } catch (SutureException ex) {
            throw new SutureException(ex.kind(), ex.getMessage() + "; the region at 0x" + Long.toHexString(base)
                    + " stays mapped, its unwind information registered (run revert or recover again)", ex);
        }
        long ob = objectAddress(base, l);
        if (returned != ob) {
            throw new SutureException(SutureException.Kind.UNSAFE, String.format("patch %s: %s returned 0x%x, not"
                    + " the region's object at 0x%x; the region at 0x%x stays mapped", patchId, DEREGISTER, returned,
                    ob, base));
        }
    }

    /** The state word of a region with a frames block. */
    static long state(Tracer tracer, long base, RegionHeader.Layout l) {
        byte[] word = tracer.read(base + l.framesOffset(), 8);
        return ByteBuffer.wrap(word).order(ByteOrder.LITTLE_ENDIAN).getLong();
    }

    private static long objectAddress(long base, RegionHeader.Layout l) {
        return base + l.framesOffset() + 8;
    }

    /**
     * Keeps the calls off a thread that may hold libgcc's object lock, which both take: one stopped inside libgcc
     * (its unwinder holds the lock while it searches, and calls the C library's {@code malloc} and
     * {@code pthread_mutex_*} with it held), or running in the C library or the dynamic linker. A thread blocked in
     * a system call of the C library, or running anywhere else (the program's own code), holds it only in a
     * {@code malloc} that grows the heap from inside the unwinder; that case is not told apart
     * (docs/real-fixes.md).
     */
    private static Tracer.CallGuard guard(Modules modules, EntryPoints e) {
        var libgcc = e.module();
        var runtime = modules.all().stream().filter(m -> m.name().startsWith("libc.so")
                || m.name().startsWith("ld-linux")).toList();
        return new Tracer.CallGuard() {
            @Override
            public boolean mayBorrow(long rip, boolean inSystemCall) {
                return !libgcc.contains(rip) && (inSystemCall || runtime.stream().noneMatch(m -> m.contains(rip)));
            }

            @Override
            public String why() {
                return "inside " + libgcc.name() + ", or running in the C library, where it may hold libgcc's object"
                        + " lock";
            }
        };
    }

    /** Calls {@code function(begin, ob)} through the region's helper, which then stores {@code state}. */
    private static long run(Tracer tracer, long base, RegionHeader.Layout l, long function, long state, String what,
                            Tracer.CallGuard guard) {
        long helper = base + l.framesHelperOffset();
        if (!Arrays.equals(tracer.read(helper, HELPER.length), HELPER)) {
            throw new SutureException(SutureException.Kind.UNSAFE, String.format("%s: the region's helper at 0x%x is"
                    + " not the code suture writes there; suture will not run it", what, helper));
        }
        return tracer.call(what, helper, TIMEOUT, guard, base + l.ehFrameOffset(), objectAddress(base, l), function,
                base + l.framesOffset(), state);
    }
}
