package dev.suture.unwind;

/**
 * A little-endian reader over part of a CFI section that checks every read against its limit, so malformed bytes
 * end in an {@link UnwindException} naming the section and offset, never an index error. Mutable and reusable:
 * evaluating a frame repositions one cursor instead of making new ones.
 */
final class ByteCursor {
    private byte[] bytes;
    private String what;
    private int position;
    private int limit;

    ByteCursor(byte[] bytes, String what) {
        reset(bytes, what, 0, bytes.length);
    }

    void reset(byte[] bytes, String what, int position, int limit) {
        this.bytes = bytes;
        this.what = what;
        this.position = position;
        this.limit = Math.min(limit, bytes.length);
    }

    void range(int position, int limit) {
        this.position = position;
        this.limit = Math.min(limit, bytes.length);
    }

    int position() {
        return position;
    }

    void position(int position) {
        if (position < 0 || position > limit) {
            throw error("offset 0x" + Integer.toHexString(position) + " outside the entry");
        }
        this.position = position;
    }

    int limit() {
        return limit;
    }

    boolean hasMore() {
        return position < limit;
    }

    byte[] bytes() {
        return bytes;
    }

    private void need(int n) {
        if (n < 0 || position > limit - n) {
            throw error("truncated: " + n + " bytes needed at offset 0x" + Integer.toHexString(position)
                    + ", entry ends at 0x" + Integer.toHexString(limit));
        }
    }

    UnwindException error(String message) {
        return new UnwindException(what + ": " + message);
    }

    int u8() {
        need(1);
        return bytes[position++] & 0xff;
    }

    int u16() {
        need(2);
        int v = (bytes[position] & 0xff) | (bytes[position + 1] & 0xff) << 8;
        position += 2;
        return v;
    }

    long u32() {
        need(4);
        long v = (bytes[position] & 0xffL) | (bytes[position + 1] & 0xffL) << 8 | (bytes[position + 2] & 0xffL) << 16
                | (bytes[position + 3] & 0xffL) << 24;
        position += 4;
        return v;
    }

    long u64() {
        long lo = u32();
        long hi = u32();
        return lo | hi << 32;
    }

    long uleb128() {
        long result = 0;
        for (int shift = 0; ; shift += 7) {
            int b = u8();
            if (shift < 64) {
                result |= (long) (b & 0x7f) << shift;
            }
            if ((b & 0x80) == 0) {
                return result;
            }
            if (shift > 63 + 7 * 2) {
                throw error("LEB128 number longer than 10 bytes at offset 0x" + Integer.toHexString(position));
            }
        }
    }

    long sleb128() {
        long result = 0;
        int shift = 0;
        int b;
        do {
            b = u8();
            if (shift < 64) {
                result |= (long) (b & 0x7f) << shift;
            }
            shift += 7;
            if (shift > 63 + 7 * 3) {
                throw error("LEB128 number longer than 10 bytes at offset 0x" + Integer.toHexString(position));
            }
        } while ((b & 0x80) != 0);
        if (shift < 64 && (b & 0x40) != 0) {
            result |= -1L << shift;
        }
        return result;
    }

    /** A register number: fits in an int, or the entry is hostile. */
    int register() {
        long r = uleb128();
        if (r < 0 || r > 0xffff) {
            throw error("register number " + Long.toUnsignedString(r) + " out of range");
        }
        return (int) r;
    }

    /** Skips a block of {@code length} bytes and returns where it started. */
    int skip(long length) {
        if (length < 0 || length > limit - position) {
            throw error("block of " + Long.toUnsignedString(length) + " bytes at offset 0x"
                    + Integer.toHexString(position) + " runs past the entry");
        }
        int start = position;
        position += (int) length;
        return start;
    }

    /**
     * Reads a pointer in the given DW_EH_PE encoding. {@code sectionAddress} is the link-time address of byte 0 of
     * the section (for pcrel); {@code bases} gives text and data addresses. Indirect pointers are returned as the
     * address of the pointer: eh_frame uses them only for personality routines, which unwinding never calls.
     */
    long encoded(int encoding, long sectionAddress, Bases bases) {
        if (encoding == Dwarf.DW_EH_PE_omit) {
            throw error("omitted pointer encoding where a value is required");
        }
        long fieldAddress = sectionAddress + position;
        long value = switch (encoding & 0x0f) {
            case Dwarf.DW_EH_PE_absptr -> u64();
            case Dwarf.DW_EH_PE_uleb128 -> uleb128();
            case Dwarf.DW_EH_PE_udata2 -> u16();
            case Dwarf.DW_EH_PE_udata4 -> u32();
            case Dwarf.DW_EH_PE_udata8 -> u64();
            case Dwarf.DW_EH_PE_sleb128 -> sleb128();
            case Dwarf.DW_EH_PE_sdata2 -> (short) u16();
            case Dwarf.DW_EH_PE_sdata4 -> (int) u32();
            case Dwarf.DW_EH_PE_sdata8 -> u64();
            default -> throw error("unknown pointer encoding 0x" + Integer.toHexString(encoding));
        };
        long base = switch (encoding & 0x70) {
            case 0 -> 0;
            case Dwarf.DW_EH_PE_pcrel -> fieldAddress;
            case Dwarf.DW_EH_PE_textrel -> bases.text();
            case Dwarf.DW_EH_PE_datarel -> bases.data();
            default -> throw error("unsupported pointer application 0x" + Integer.toHexString(encoding & 0x70));
        };
        return value + base;
    }

    /** Size in bytes of a fixed-size encoding, or -1 for LEB128 and omitted values. */
    static int fixedSize(int encoding) {
        return switch (encoding & 0x0f) {
            case Dwarf.DW_EH_PE_absptr, Dwarf.DW_EH_PE_udata8, Dwarf.DW_EH_PE_sdata8 -> 8;
            case Dwarf.DW_EH_PE_udata4, Dwarf.DW_EH_PE_sdata4 -> 4;
            case Dwarf.DW_EH_PE_udata2, Dwarf.DW_EH_PE_sdata2 -> 2;
            default -> -1;
        };
    }

    /** Base addresses for textrel and datarel pointers; 0 where the module has no such section. */
    record Bases(long text, long data) {
        static final Bases NONE = new Bases(0, 0);
    }
}
