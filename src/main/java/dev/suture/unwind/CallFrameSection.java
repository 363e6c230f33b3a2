package dev.suture.unwind;

import dev.suture.elf.AddressRanges;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The call frame information of one module, {@code .eh_frame} or {@code .debug_frame}, parsed once: finds the FDE
 * of a pc by binary search in the {@code .eh_frame_hdr} table, or, without a usable header, in an index sorted once
 * from a scan of every entry. FDEs found through the header are parsed on first use and then kept.
 *
 * <p>Addresses are link-time addresses of the module; callers subtract the load bias. Not thread-safe.
 */
public final class CallFrameSection {
    private static final long CIE_ID_32 = 0xffffffffL;

    private final String name;
    private final byte[] bytes;
    private final long address;
    private final boolean debugFrame;
    private final ByteCursor.Bases bases;
    private final Map<Integer, CommonInformationEntry> cies = new HashMap<>();
    private final ByteCursor cursor;

    private long[] starts;
    private int[] fdeOffsets;
    private FrameDescriptionEntry[] fdes;
    private boolean indexedByHeader;
    private String problem;

    private CallFrameSection(String name, byte[] bytes, long address, boolean debugFrame, ByteCursor.Bases bases) {
        this.name = name;
        this.bytes = bytes;
        this.address = address;
        this.debugFrame = debugFrame;
        this.bases = bases;
        this.cursor = new ByteCursor(bytes, name);
    }

    /**
     * {@code .eh_frame} at link-time {@code address}, indexed by {@code hdr} ({@code .eh_frame_hdr} at
     * {@code hdrAddress}) when it is given and well-formed. {@code text}/{@code got} are the bases of textrel and
     * datarel pointers (0 if absent).
     */
    public static CallFrameSection ehFrame(String name, byte[] ehFrame, long address, byte[] hdr, long hdrAddress,
                                           long text, long got) {
        var s = new CallFrameSection(name + " .eh_frame", ehFrame, address, false, new ByteCursor.Bases(text, got));
        if (hdr == null || !s.indexFromHeader(hdr, hdrAddress)) {
            s.indexByScanning();
        }
        return s;
    }

    /** {@code .debug_frame} (from a separate debug file): CIE pointers are section offsets, no header. */
    public static CallFrameSection debugFrame(String name, byte[] debugFrame) {
        var s = new CallFrameSection(name + " .debug_frame", debugFrame, 0, true, ByteCursor.Bases.NONE);
        s.indexByScanning();
        return s;
    }

    public String name() {
        return name;
    }

    byte[] bytes() {
        return bytes;
    }

    /** True for .debug_frame (CIE pointers are section offsets, addresses absolute), false for .eh_frame. */
    boolean isDebugFrame() {
        return debugFrame;
    }

    long address() {
        return address;
    }

    ByteCursor.Bases bases() {
        return bases;
    }

    /** True when lookups use the {@code .eh_frame_hdr} binary-search table. */
    public boolean indexedByHeader() {
        return indexedByHeader;
    }

    /** Number of FDEs in the index. */
    public int size() {
        return starts.length;
    }

    /** The link-time start of the {@code i}-th indexed FDE (ascending). */
    public long start(int i) {
        return starts[i];
    }

    /** Why part of the section was skipped when it was indexed (null if nothing was). */
    public String problem() {
        return problem;
    }

    /**
     * The FDE whose range holds link-time {@code pc}, or null. Throws {@link UnwindException} when that FDE is
     * malformed.
     */
    public FrameDescriptionEntry find(long pc) {
        int found = AddressRanges.floor(starts, starts.length, pc);
        if (found < 0) {
            return null;
        }
        FrameDescriptionEntry fde = fdes[found];
        if (fde == null) {
            fde = parseFde(fdeOffsets[found]);
            fdes[found] = fde;
        }
        return fde.contains(pc) ? fde : null;
    }

    /** Every FDE, parsed (for inspection and tests); malformed ones are skipped. */
    public List<FrameDescriptionEntry> entries() {
        var out = new ArrayList<FrameDescriptionEntry>();
        for (int i = 0; i < starts.length; i++) {
            try {
                if (fdes[i] == null) {
                    fdes[i] = parseFde(fdeOffsets[i]);
                }
                out.add(fdes[i]);
            } catch (UnwindException e) {
                // listed entries are the well-formed ones
            }
        }
        return out;
    }

    // ---- index ----

    private boolean indexFromHeader(byte[] hdr, long hdrAddress) {
        try {
            var c = new ByteCursor(hdr, name + " (.eh_frame_hdr)");
            var hdrBases = new ByteCursor.Bases(bases.text(), hdrAddress);
            int version = c.u8();
            int ehFramePtrEnc = c.u8();
            int fdeCountEnc = c.u8();
            int tableEnc = c.u8();
            if (version != 1 || fdeCountEnc == Dwarf.DW_EH_PE_omit || tableEnc == Dwarf.DW_EH_PE_omit) {
                return false;
            }
            long ehFramePtr = c.encoded(ehFramePtrEnc, hdrAddress, hdrBases);
            long count = c.encoded(fdeCountEnc, hdrAddress, hdrBases);
            int entrySize = ByteCursor.fixedSize(tableEnc);
            if (ehFramePtr != address || entrySize < 0 || count < 0 || count > (hdr.length - c.position()) / (2L * entrySize)) {
                return false;
            }
            int n = (int) count;
            long[] pcs = new long[n];
            int[] offsets = new int[n];
            for (int i = 0; i < n; i++) {
                pcs[i] = c.encoded(tableEnc, hdrAddress, hdrBases);
                long fde = c.encoded(tableEnc, hdrAddress, hdrBases) - address;
                if (fde < 0 || fde >= bytes.length || (i > 0 && Long.compareUnsigned(pcs[i - 1], pcs[i]) > 0)) {
                    return false;
                }
                offsets[i] = (int) fde;
            }
            starts = pcs;
            fdeOffsets = offsets;
            fdes = new FrameDescriptionEntry[n];
            indexedByHeader = true;
            return true;
        } catch (UnwindException e) {
            return false;
        }
    }

    private void indexByScanning() {
        var found = new ArrayList<FrameDescriptionEntry>();
        int offset = 0;
        try {
            while (offset < bytes.length) {
                cursor.range(offset, bytes.length);
                long length = cursor.u32();
                if (length == 0 && !debugFrame) {
                    break; // the terminator
                }
                boolean dwarf64 = length == 0xffffffffL;
                if (dwarf64) {
                    length = cursor.u64();
                }
                int body = cursor.position();
                if (length < 0 || length > bytes.length - body) {
                    throw cursor.error("entry at offset 0x" + Integer.toHexString(offset) + " has length "
                            + Long.toUnsignedString(length) + " past the section end");
                }
                int end = body + (int) length;
                long id = dwarf64 ? cursor.u64() : cursor.u32();
                boolean isCie = debugFrame ? (dwarf64 ? id == -1L : id == CIE_ID_32) : id == 0;
                if (!isCie) {
                    try {
                        FrameDescriptionEntry fde = parseFde(offset);
                        if (fde.pcRange() != 0) {
                            found.add(fde);
                        }
                    } catch (UnwindException e) {
                        if (problem == null) {
                            problem = e.getMessage();
                        }
                    }
                }
                offset = end;
            }
        } catch (UnwindException e) {
            problem = e.getMessage();
        }
        found.sort((a, b) -> Long.compareUnsigned(a.pcBegin(), b.pcBegin()));
        int n = found.size();
        starts = new long[n];
        fdeOffsets = new int[n];
        fdes = found.toArray(new FrameDescriptionEntry[0]);
        for (int i = 0; i < n; i++) {
            starts[i] = fdes[i].pcBegin();
            fdeOffsets[i] = fdes[i].offset();
        }
        indexedByHeader = false;
    }

    // ---- entries ----

    /** Positions the cursor on the entry at {@code offset} and returns its end; the cursor is on the id field. */
    private int enter(int offset, boolean[] dwarf64) {
        if (offset < 0 || offset >= bytes.length) {
            throw cursor.error("entry offset 0x" + Integer.toHexString(offset) + " outside the section");
        }
        cursor.range(offset, bytes.length);
        long length = cursor.u32();
        dwarf64[0] = length == 0xffffffffL;
        if (dwarf64[0]) {
            length = cursor.u64();
        }
        int body = cursor.position();
        if (length <= 0 || length > bytes.length - body) {
            throw cursor.error("entry at offset 0x" + Integer.toHexString(offset) + " has bad length "
                    + Long.toUnsignedString(length));
        }
        int end = body + (int) length;
        cursor.range(body, end);
        return end;
    }

    private FrameDescriptionEntry parseFde(int offset) {
        boolean[] dwarf64 = new boolean[1];
        int end = enter(offset, dwarf64);
        int idPosition = cursor.position();
        long id = dwarf64[0] ? cursor.u64() : cursor.u32();
        long cieOffset;
        if (debugFrame) {
            if (dwarf64[0] ? id == -1L : id == CIE_ID_32) {
                throw cursor.error("offset 0x" + Integer.toHexString(offset) + " is a CIE, not an FDE");
            }
            cieOffset = id;
        } else {
            if (id == 0) {
                throw cursor.error("offset 0x" + Integer.toHexString(offset) + " is a CIE, not an FDE");
            }
            cieOffset = idPosition - id;
        }
        if (cieOffset < 0 || cieOffset >= bytes.length || cieOffset == offset) {
            throw cursor.error("FDE at offset 0x" + Integer.toHexString(offset) + " points at CIE offset "
                    + Long.toHexString(cieOffset) + ", outside the section");
        }
        CommonInformationEntry cie = cie((int) cieOffset);
        enter(offset, dwarf64);
        cursor.position(idPosition + (dwarf64[0] ? 8 : 4));
        long pcBegin;
        long pcRange;
        if (debugFrame) {
            pcBegin = cie.addressSize() == 4 ? cursor.u32() : cursor.u64();
            pcRange = cie.addressSize() == 4 ? cursor.u32() : cursor.u64();
        } else {
            pcBegin = cursor.encoded(cie.fdeEncoding(), address, bases);
            // the range is a size: same format, never relative
            pcRange = cursor.encoded(cie.fdeEncoding() & 0x0f, address, bases);
        }
        long lsda = 0;
        if (cie.hasAugmentationData()) {
            long augLength = cursor.uleb128();
            int augStart = cursor.skip(augLength);
            if (cie.lsdaEncoding() != Dwarf.DW_EH_PE_omit && augLength > 0) {
                int after = cursor.position();
                cursor.position(augStart);
                lsda = cursor.encoded(cie.lsdaEncoding(), address, bases);
                cursor.position(after);
            }
        }
        return new FrameDescriptionEntry(offset, cie, pcBegin, pcRange, lsda, cursor.position(), end);
    }

    CommonInformationEntry cie(int offset) {
        CommonInformationEntry cie = cies.get(offset);
        if (cie == null) {
            cie = parseCie(offset);
            cies.put(offset, cie);
        }
        return cie;
    }

    private CommonInformationEntry parseCie(int offset) {
        boolean[] dwarf64 = new boolean[1];
        int end = enter(offset, dwarf64);
        long id = dwarf64[0] ? cursor.u64() : cursor.u32();
        boolean isCie = debugFrame ? (dwarf64[0] ? id == -1L : id == CIE_ID_32) : id == 0;
        if (!isCie) {
            throw cursor.error("offset 0x" + Integer.toHexString(offset) + " is not a CIE");
        }
        int version = cursor.u8();
        if (version != 1 && version != 3 && version != 4) {
            throw cursor.error("CIE at offset 0x" + Integer.toHexString(offset) + " has unsupported version " + version);
        }
        var aug = new StringBuilder();
        for (int ch = cursor.u8(); ch != 0; ch = cursor.u8()) {
            if (aug.length() > 32) {
                throw cursor.error("CIE at offset 0x" + Integer.toHexString(offset) + ": augmentation string too long");
            }
            aug.append((char) ch);
        }
        String augmentation = aug.toString();
        int addressSize = 8;
        if (version == 4) {
            addressSize = cursor.u8();
            cursor.u8(); // segment selector size
            if (addressSize != 4 && addressSize != 8) {
                throw cursor.error("CIE at offset 0x" + Integer.toHexString(offset) + ": address size " + addressSize);
            }
        }
        long codeAlign = cursor.uleb128();
        long dataAlign = cursor.sleb128();
        int raRegister = version == 1 ? cursor.u8() : cursor.register();
        int fdeEncoding = Dwarf.DW_EH_PE_absptr;
        int lsdaEncoding = Dwarf.DW_EH_PE_omit;
        long personality = 0;
        boolean signalFrame = false;
        if (augmentation.startsWith("z")) {
            long augLength = cursor.uleb128();
            int augStart = cursor.skip(augLength);
            int augEnd = cursor.position();
            cursor.position(augStart);
            for (int i = 1; i < augmentation.length() && cursor.position() <= augEnd; i++) {
                switch (augmentation.charAt(i)) {
                    case 'R' -> fdeEncoding = cursor.u8();
                    case 'L' -> lsdaEncoding = cursor.u8();
                    case 'P' -> {
                        int enc = cursor.u8();
                        personality = cursor.encoded(enc & 0x7f, address, bases);
                    }
                    case 'S' -> signalFrame = true;
                    default -> i = augmentation.length(); // unknown: the length lets us skip the rest
                }
            }
            if (cursor.position() > augEnd) {
                throw cursor.error("CIE at offset 0x" + Integer.toHexString(offset) + ": augmentation data overruns");
            }
            cursor.position(augEnd);
        } else if (!augmentation.isEmpty()) {
            throw cursor.error("CIE at offset 0x" + Integer.toHexString(offset) + ": unsupported augmentation '"
                    + augmentation + "'");
        }
        if (!debugFrame && ByteCursor.fixedSize(fdeEncoding) < 0 && (fdeEncoding & 0x0f) != Dwarf.DW_EH_PE_uleb128
                && (fdeEncoding & 0x0f) != Dwarf.DW_EH_PE_sleb128) {
            throw cursor.error("CIE at offset 0x" + Integer.toHexString(offset) + ": bad FDE pointer encoding 0x"
                    + Integer.toHexString(fdeEncoding));
        }
        return new CommonInformationEntry(offset, version, augmentation, addressSize, codeAlign, dataAlign,
                raRegister, fdeEncoding, lsdaEncoding, personality, signalFrame, cursor.position(), end);
    }

    @Override
    public String toString() {
        return name + " (" + starts.length + " FDEs" + (indexedByHeader ? ", via .eh_frame_hdr" : "") + ")";
    }
}
