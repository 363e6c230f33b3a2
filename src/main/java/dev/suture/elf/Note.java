package dev.suture.elf;

import static dev.suture.elf.ElfConstants.*;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HexFormat;
import java.util.List;
import java.util.StringJoiner;

/** One ELF note: owner name, type and descriptor bytes. */
public record Note(String name, int type, byte[] desc) {

    /** A GNU property from an {@code NT_GNU_PROPERTY_TYPE_0} note: {@code pr_type} and its data. */
    public record GnuProperty(int pr_type, byte[] data) {
        /** The data as a 32-bit little-endian number (most x86 properties are bit masks), or 0 if shorter. */
        public long u32() {
            return data.length < 4 ? 0 : (data[0] & 0xffL) | (data[1] & 0xffL) << 8 | (data[2] & 0xffL) << 16
                    | (data[3] & 0xffL) << 24;
        }

        /** What the property says, e.g. "x86 feature: IBT, SHSTK" or "x86 ISA needed: x86-64-v2". */
        public String describe() {
            return switch (pr_type) {
                case ElfConstants.GNU_PROPERTY_X86_FEATURE_1_AND -> "x86 feature: " + x86Features(u32());
                case ElfConstants.GNU_PROPERTY_X86_ISA_1_NEEDED -> "x86 ISA needed: " + isaLevels(u32());
                case ElfConstants.GNU_PROPERTY_X86_ISA_1_USED -> "x86 ISA used: " + isaLevels(u32());
                case ElfConstants.GNU_PROPERTY_STACK_SIZE -> "stack size: " + u32();
                default -> "property " + hex(Integer.toUnsignedLong(pr_type));
            };
        }

        private static String x86Features(long bits) {
            var f = new StringJoiner(", ");
            if ((bits & ElfConstants.GNU_PROPERTY_X86_FEATURE_1_IBT) != 0) f.add("IBT");
            if ((bits & ElfConstants.GNU_PROPERTY_X86_FEATURE_1_SHSTK) != 0) f.add("SHSTK");
            if ((bits & ~3L) != 0) f.add(hex(bits & ~3L));
            return bits == 0 ? "none" : f.toString();
        }

        private static String isaLevels(long bits) {
            var j = new StringJoiner(", ");
            if ((bits & 1) != 0) j.add("x86-64-baseline");
            if ((bits & 2) != 0) j.add("x86-64-v2");
            if ((bits & 4) != 0) j.add("x86-64-v3");
            if ((bits & 8) != 0) j.add("x86-64-v4");
            if ((bits & ~15L) != 0) j.add(hex(bits & ~15L));
            return j.length() == 0 ? "none" : j.toString();
        }

        private static String hex(long v) {
            return "0x" + Long.toHexString(v);
        }
    }

    public boolean isGnu() {
        return "GNU".equals(name);
    }

    public boolean isBuildId() {
        return isGnu() && type == ElfConstants.NT_GNU_BUILD_ID;
    }

    /** The descriptor in lowercase hex. */
    public String descHex() {
        return HexFormat.of().formatHex(desc);
    }

    /** The properties of a GNU property note (8-byte aligned entries); empty for other notes or malformed data. */
    public List<GnuProperty> gnuProperties() {
        var out = new ArrayList<GnuProperty>();
        if (!isGnu() || type != ElfConstants.NT_GNU_PROPERTY_TYPE_0) {
            return out;
        }
        int p = 0;
        while (p + 8 <= desc.length) {
            int prType = le32(p);
            int size = le32(p + 4);
            if (size < 0 || size > desc.length - p - 8) {
                break;
            }
            byte[] data = Arrays.copyOfRange(desc, p + 8, p + 8 + size);
            out.add(new GnuProperty(prType, data));
            p += 8 + ((size + 7) & ~7);
        }
        return out;
    }

    private int le32(int p) {
        return (desc[p] & 0xff) | (desc[p + 1] & 0xff) << 8 | (desc[p + 2] & 0xff) << 16 | (desc[p + 3] & 0xff) << 24;
    }

    /** Decodes the notes of every SHT_NOTE section (or, without section headers, of every PT_NOTE segment). */
    static List<Note> readAll(ElfFile elf) {
        var out = new ArrayList<Note>();
        if (!elf.sections().isEmpty()) {
            for (var s : elf.sections()) {
                if (s.sh_type() == SHT_NOTE) {
                    int off = elf.checkRange(s.sh_offset(), s.sh_size(), elf.describe(s));
                    read(elf, off, (int) s.sh_size(), s.sh_addralign() == 8 ? 8 : 4, elf.describe(s), out);
                }
            }
        } else {
            for (var p : elf.programHeaders()) {
                if (p.p_type() == PT_NOTE) {
                    int off = elf.checkRange(p.p_offset(), p.p_filesz(), "segment " + p.index() + " (NOTE)");
                    read(elf, off, (int) p.p_filesz(), p.p_align() == 8 ? 8 : 4, "segment " + p.index(), out);
                }
            }
        }
        return Collections.unmodifiableList(out);
    }

    private static void read(ElfFile elf, int off, int len, int align, String where, List<Note> out) {
        long p = 0;
        while (p + 12 <= len) {
            int o = off + (int) p;
            long namesz = elf.u32(o);
            long descsz = elf.u32(o + 4);
            int type = elf.data().getInt(o + 8);
            long descOff = alignUp(12 + namesz, align);
            long next = alignUp(descOff + descsz, align);
            if (descOff + descsz > len - p) {
                throw elf.error(where + ": the note at offset 0x" + Long.toHexString(p) + " (namesz " + namesz
                        + ", descsz " + descsz + ") runs past the end of its " + len + "-byte container");
            }
            // The name includes its terminating NUL; be lenient about a missing one, as readelf is.
            int nlen = (int) namesz;
            while (nlen > 0 && elf.data().get(o + 12 + nlen - 1) == 0) {
                nlen--;
            }
            byte[] nameBytes = new byte[nlen];
            elf.data().get(o + 12, nameBytes);
            byte[] desc = new byte[(int) descsz];
            elf.data().get(o + (int) descOff, desc);
            out.add(new Note(new String(nameBytes, StandardCharsets.UTF_8), type, desc));
            p += next;
        }
    }

    private static long alignUp(long v, long a) {
        return (v + a - 1) & -a;
    }

}
