package dev.suture.live;

import dev.suture.SutureException;
import dev.suture.elf.ElfConstants;
import dev.suture.patch.PatchFile;
import dev.suture.patch.PatchRelocation;
import dev.suture.patch.PatchSection;
import dev.suture.patch.PatchSymbol;
import dev.suture.patch.ReplacedFunction;
import dev.suture.x86.DoesNotFitException;
import dev.suture.x86.Jumps;
import dev.suture.x86.Relocations;
import dev.suture.x86.Relocations.GotEntry;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Lays a patch out in a region and binds it to one process: places the sections, resolves every symbol (the target
 * module's own by link-time address + load bias, others through {@link Externals}), routes external calls through
 * the region's jump table and GOT-relative accesses through its GOT, and applies every relocation.
 *
 * <p>Two phases, because the region's address decides what reaches what, and its size must be known to find an
 * address: {@link #plan} computes the layout from the patch alone; {@link #bind} fills it in at a base address.
 */
final class Binder {
    static final int PAGE = 4096;
    /** The largest region a patch may ask for: its image is built in memory, and it must fit in ±2 GiB. */
    static final long MAX_REGION = 64L << 20;
    private static final int JUMP_ENTRY = RegionHeader.JUMP_ENTRY_SIZE;
    private static final int GOT_ENTRY = RegionHeader.GOT_ENTRY_SIZE;
    private static final byte INT3 = (byte) 0xcc;

    private Binder() {}

    /**
     * The region's layout for {@code patch}, and the highest address its base may have (non-PIC code with
     * absolute 32-bit references to its own data must sit in the low 2 or 4 GiB).
     */
    record Plan(int headerSize, Map<Integer, Integer> sectionOffsets, RegionHeader.Layout layout, long size,
                long maxEnd, List<String> functionNames) {}

    /**
     * With {@code frames}, a patch with an {@code .eh_frame} also gets what registering it with the target's
     * unwinder takes ({@link FrameRegistration}): a zero terminator after the {@code .eh_frame}, the helper at the
     * end of the text and the block in the data.
     */
    static Plan plan(PatchFile patch, String modulePath, boolean frames) {
        var names = new ArrayList<String>();
        for (ReplacedFunction f : patch.replaced()) {
            if (!f.part()) {
                names.add(f.symbol());
            }
        }
        int headerSize = RegionHeader.sizeFor(patch.id(), patch.targetBuildId(), modulePath, patch.targetName(),
                names);
        if (headerSize > RegionHeader.MAX_HEADER_SIZE) {
            // info and revert would take a larger header for a corrupt one
            throw new DoesNotFitException(patch.file() + ": the region header for " + names.size()
                    + " replaced functions would take " + headerSize + " bytes, more than "
                    + RegionHeader.MAX_HEADER_SIZE + "; split the patch");
        }
        var offsets = new LinkedHashMap<Integer, Integer>();
        long off = headerSize;
        var readOnly = new ArrayList<PatchSection>();
        var writable = new ArrayList<PatchSection>();
        for (PatchSection s : patch.sections()) {
            if (!s.isAlloc()) {
                continue;
            }
            if ((s.flags() & ElfConstants.SHF_TLS) != 0) {
                throw new DoesNotFitException(patch.file() + ": section " + s.name()
                        + " adds thread-local variables, which a live patch cannot add; keep the TLS layout");
            }
            if (s.align() > PAGE) {
                throw new DoesNotFitException(patch.file() + ": section " + s.name() + " asks for alignment "
                        + s.align() + "; a patch region is only page-aligned (" + PAGE + ")");
            }
            (s.isWritable() ? writable : readOnly).add(s);
        }
        readOnly.sort((a, b) -> Boolean.compare(b.isExecutable(), a.isExecutable()));
        int ehFrameOffset = 0;
        int ehFrameSize = 0;
        for (PatchSection s : readOnly) {
            off = align(off, s.align());
            offsets.put(s.index(), (int) off);
            off += s.size();
            if (ehFrameSize == 0 && s.name().equals(".eh_frame") && !s.isNobits() && s.size() > 0) {
                // recorded in the header: the unwinder reads the new code's CFI from the target (docs/region-format.md)
                ehFrameOffset = (int) (off - s.size());
                ehFrameSize = (int) s.size();
                off += 4; // a zero length ends the records for libgcc (the image is zeros there)
            }
        }
        frames &= ehFrameSize > 0;
        if (frames) {
            off = align(off, 16) + FrameRegistration.HELPER_SPACE;
        }
        int textOffset = headerSize;
        int textSize = (int) (off - textOffset);
        long jumpTable = align(off, JUMP_ENTRY);
        int jumps = countJumpEntries(patch);
        long got = align(jumpTable + (long) jumps * JUMP_ENTRY, GOT_ENTRY);
        int slots = countGotSlots(patch);
        off = got + (long) slots * GOT_ENTRY;
        long dataOffset = align(off, PAGE);
        long end = dataOffset;
        for (PatchSection s : writable) {
            end = align(end, s.align());
            offsets.put(s.index(), (int) end);
            end += s.size();
        }
        long framesOffset = 0;
        if (frames) {
            framesOffset = align(end, 16);
            end = framesOffset + FrameRegistration.BLOCK_SIZE;
        }
        long size = align(end, PAGE);
        if (writable.isEmpty() && !frames) {
            dataOffset = size;
        }
        if (size > MAX_REGION) {
            throw new DoesNotFitException(patch.file() + ": the patch needs a region of " + size + " bytes, more than"
                    + " the " + MAX_REGION + " suture maps for one patch");
        }
        var layout = new RegionHeader.Layout(textOffset, textSize, (int) jumpTable, jumps, (int) got, slots,
                (int) dataOffset, (int) (end - dataOffset), ehFrameOffset, ehFrameSize, (int) framesOffset);
        return new Plan(headerSize, offsets, layout, size, maxEnd(patch), names);
    }

    /** One jump-table entry per external symbol that code calls or references PC-relatively. */
    private static int countJumpEntries(PatchFile patch) {
        var seen = new HashSet<Integer>();
        for (PatchSection s : patch.sections()) {
            for (PatchRelocation r : s.relocations()) {
                if (r.symbol() instanceof PatchSymbol.External e && isCodeReference(r)) {
                    seen.add(e.index());
                }
            }
        }
        return seen.size();
    }

    private static int countGotSlots(PatchFile patch) {
        var seen = new HashMap<String, Integer>();
        for (PatchSection s : patch.sections()) {
            for (PatchRelocation r : s.relocations()) {
                GotEntry g = Relocations.rule(r.type()).got();
                if (g != GotEntry.NONE) {
                    seen.put(r.symbol().index() + "/" + g, g == GotEntry.TLS_INDEX || g == GotEntry.TLS_MODULE ? 2 : 1);
                }
            }
        }
        return seen.values().stream().mapToInt(Integer::intValue).sum();
    }

    /** Non-PIC absolute references to the region itself bound the region's address. */
    private static long maxEnd(PatchFile patch) {
        long max = Long.MAX_VALUE;
        for (PatchSection s : patch.sections()) {
            for (PatchRelocation r : s.relocations()) {
                boolean toRegion = r.symbol() instanceof PatchSymbol.Defined
                        || r.symbol() instanceof PatchSymbol.SectionSymbol;
                if (!toRegion) {
                    continue;
                }
                if (r.type() == Relocations.R_X86_64_32S) {
                    max = Math.min(max, 0x8000_0000L);
                } else if (r.type() == Relocations.R_X86_64_32) {
                    max = Math.min(max, 0x1_0000_0000L);
                }
            }
        }
        return max;
    }

    /** A call or jump (PLT32), or a PC-relative reference to a function: these may go through the jump table. */
    private static boolean isCodeReference(PatchRelocation r) {
        if (r.type() == Relocations.R_X86_64_PLT32) {
            return true;
        }
        return r.type() == Relocations.R_X86_64_PC32 && r.symbol() instanceof PatchSymbol.External e
                && (e.type() == ElfConstants.STT_FUNC || e.type() == ElfConstants.STT_GNU_IFUNC);
    }

    /** Binds {@code patch} at {@code base} for a module with load bias {@code bias}. */
    static Image bind(PatchFile patch, Plan plan, long base, long bias, Externals externals) {
        return new Binding(patch, plan, base, bias, externals).bind();
    }

    /** The state of one bind: the image being filled and the entries allocated so far. */
    private static final class Binding {
        final PatchFile patch;
        final Plan plan;
        final long base;
        final long bias;
        final Externals externals;
        final byte[] image;
        final Map<Integer, Long> jumpEntries = new HashMap<>();
        final Map<String, Long> gotSlots = new HashMap<>();
        int jumpsUsed;
        int slotsUsed;

        Binding(PatchFile patch, Plan plan, long base, long bias, Externals externals) {
            this.patch = patch;
            this.plan = plan;
            this.base = base;
            this.bias = bias;
            this.externals = externals;
            this.image = new byte[(int) plan.size()];
        }

        Image bind() {
            var l = plan.layout();
            Arrays.fill(image, l.jumpTableOffset(), l.jumpTableOffset() + l.jumpTableCount() * JUMP_ENTRY, INT3);
            for (PatchSection s : patch.sections()) {
                Integer off = plan.sectionOffsets().get(s.index());
                if (off != null && !s.isNobits()) {
                    System.arraycopy(s.bytes(), 0, image, off, s.bytes().length);
                }
            }
            for (PatchSection s : patch.sections()) {
                Integer off = plan.sectionOffsets().get(s.index());
                if (off == null) {
                    continue;
                }
                for (PatchRelocation r : s.relocations()) {
                    relocate(s, off, r);
                }
            }
            var entries = new ArrayList<Image.Entry>();
            var ranges = new ArrayList<Image.Range>();
            for (ReplacedFunction f : patch.replaced()) {
                long old = f.targetAddress() + bias;
                ranges.add(new Image.Range(f.symbol(), old, old + f.size()));
                if (!f.part()) {
                    long now = symbolAddress(f.patchSymbol());
                    entries.add(new Image.Entry(f.symbol(), old, (int) f.size(), now,
                            (int) f.patchSymbol().size()));
                }
            }
            return new Image(base, image, plan.layout(), plan.headerSize(), entries, ranges);
        }

        private void relocate(PatchSection s, int sectionOffset, PatchRelocation r) {
            var rule = Relocations.rule(r.type());
            long place = base + sectionOffset + r.offset();
            String where = String.format("%s+0x%x -> %s (%s)", s.name(), r.offset(), describe(r.symbol()),
                    patch.file());
            long value = 0;
            long got = 0;
            PatchSymbol sym = r.symbol();
            switch (rule.operand()) {
                case NONE -> { }
                case ADDRESS -> value = isCodeReference(r) && sym instanceof PatchSymbol.External e
                        ? jumpEntry(e) : address(sym, where);
                case SIZE -> value = switch (sym) {
                    case PatchSymbol.Defined d -> d.size();
                    case PatchSymbol.TargetRelative t -> t.size();
                    default -> throw new DoesNotFitException(where + ": the size of this symbol is not known");
                };
                case TP_OFFSET -> value = tls(sym, where).tpOffset();
                case DTP_OFFSET -> value = tls(sym, where).offset();
            }
            if (rule.got() != GotEntry.NONE) {
                got = gotEntry(sym, rule.got(), where);
            }
            var values = new Relocations.Values(value, r.addend(), place, got, base + plan.layout().gotOffset());
            int at = (int) (sectionOffset + r.offset());
            try {
                Relocations.apply(r.type(), image, at, values, where);
            } catch (DoesNotFitException e) {
                throw new DoesNotFitException(e.getMessage() + hint(r));
            }
        }

        private static String hint(PatchRelocation r) {
            if (r.type() == Relocations.R_X86_64_32 || r.type() == Relocations.R_X86_64_32S) {
                return "; absolute 32-bit references need the target in the low 2 GiB: build the patch with -fPIC";
            }
            return "";
        }

        private long address(PatchSymbol sym, String where) {
            return switch (sym) {
                case PatchSymbol.SectionSymbol ss -> sectionAddress(ss.section(), where);
                case PatchSymbol.Defined d -> symbolAddress(d);
                case PatchSymbol.TargetRelative t -> {
                    if (t.type() == ElfConstants.STT_TLS) {
                        throw new DoesNotFitException(where + ": a thread-local variable has no fixed address");
                    }
                    yield t.value() + bias;
                }
                case PatchSymbol.External e -> externals.address(e);
            };
        }

        private long sectionAddress(int section, String where) {
            Integer off = plan.sectionOffsets().get(section);
            if (off == null) {
                throw new SutureException(SutureException.Kind.BAD_INPUT, where
                        + ": refers to section " + section + ", which is not loaded");
            }
            return base + off;
        }

        long symbolAddress(PatchSymbol.Defined d) {
            return sectionAddress(d.section(), d.name()) + d.value();
        }

        private Externals.Tls tls(PatchSymbol sym, String where) {
            return switch (sym) {
                case PatchSymbol.TargetRelative t when t.type() == ElfConstants.STT_TLS ->
                        externals.targetTls().at(t.value());
                case PatchSymbol.External e -> externals.tls(e);
                default -> throw new DoesNotFitException(where + ": TLS relocation against a symbol that is not"
                        + " thread-local");
            };
        }

        /** A jump-table entry for an external function: through the target's GOT slot when it has one. */
        private long jumpEntry(PatchSymbol.External e) {
            Long existing = jumpEntries.get(e.index());
            if (existing != null) {
                return existing;
            }
            var l = plan.layout();
            if (jumpsUsed >= l.jumpTableCount()) {
                throw new SutureException(SutureException.Kind.INTERNAL, "jump table of " + l.jumpTableCount()
                        + " entries is full");
            }
            int off = l.jumpTableOffset() + jumpsUsed++ * JUMP_ENTRY;
            long entry = base + off;
            long slot = externals.importSlot(e, true);
            byte[] code;
            if (slot != 0 && Jumps.reachable(entry, 6, slot)) {
                // jmp *slot(%rip): the call goes where the program's own calls go (lazy binding, interposition)
                code = new byte[] {(byte) 0xff, 0x25, 0, 0, 0, 0};
                int disp = (int) (slot - (entry + 6));
                for (int i = 0; i < 4; i++) {
                    code[2 + i] = (byte) (disp >>> (8 * i));
                }
            } else {
                code = Jumps.absoluteThunk(externals.address(e));
            }
            System.arraycopy(code, 0, image, off, code.length);
            jumpEntries.put(e.index(), entry);
            return entry;
        }

        /** The GOT entry G for a relocation: the target module's own slot for an import, else one of ours. */
        private long gotEntry(PatchSymbol sym, GotEntry kind, String where) {
            if (kind == GotEntry.ADDRESS && sym instanceof PatchSymbol.External e) {
                long slot = externals.importSlot(e, false);
                if (slot != 0) {
                    return slot;
                }
            }
            String key = sym.index() + "/" + kind;
            Long existing = gotSlots.get(key);
            if (existing != null) {
                return existing;
            }
            var l = plan.layout();
            int width = kind == GotEntry.TLS_INDEX || kind == GotEntry.TLS_MODULE ? 2 : 1;
            if (slotsUsed + width > l.gotCount()) {
                throw new SutureException(SutureException.Kind.INTERNAL, "GOT of " + l.gotCount() + " slots is full");
            }
            int off = l.gotOffset() + slotsUsed * GOT_ENTRY;
            slotsUsed += width;
            switch (kind) {
                case ADDRESS -> putLong(off, address(sym, where));
                case TP_OFFSET -> {
                    long tp = tls(sym, where).tpOffset();
                    if (tp == Long.MIN_VALUE) {
                        throw new DoesNotFitException(where + ": initial-exec TLS access to a variable of a module"
                                + " loaded with dlopen (no static TLS block)");
                    }
                    putLong(off, tp);
                }
                case TLS_INDEX -> {
                    var t = tls(sym, where);
                    putLong(off, t.moduleId());
                    putLong(off + 8, t.offset());
                }
                case TLS_MODULE -> {
                    putLong(off, tls(sym, where).moduleId());
                    putLong(off + 8, 0);
                }
                case NONE -> throw new IllegalStateException();
            }
            long entry = base + off;
            gotSlots.put(key, entry);
            return entry;
        }

        private void putLong(int at, long v) {
            for (int i = 0; i < 8; i++) {
                image[at + i] = (byte) (v >>> (8 * i));
            }
        }
    }

    static String describe(PatchSymbol s) {
        return switch (s) {
            case PatchSymbol.External e -> e.fileName();
            default -> s.name();
        };
    }

    static long align(long v, long a) {
        if (a <= 1) {
            return v;
        }
        return (v + a - 1) / a * a;
    }
}
