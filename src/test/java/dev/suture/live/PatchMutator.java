package dev.suture.live;

import static dev.suture.elf.ElfConstants.*;

import dev.suture.elf.ElfFile;
import dev.suture.elf.Section;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/**
 * Mutates one real patch file: blind mutations (bit flips, interesting bytes and words, truncation, extension,
 * duplicated chunks) and structure-aware ones that know where the section headers, symbols, relocations and the
 * {@code .suture.info} records are. Every mutant says what was done to it, so a failing case can be read and
 * replayed.
 */
final class PatchMutator {
    private static final int SHDR = 64;
    private static final int SYM = 24;
    private static final int RELA = 24;

    /** A mutated file and what was done to it. */
    record Mutant(byte[] bytes, String how) {}

    private final byte[] original;
    private final int shoff;
    private final int shnum;
    private final int symtabOffset;
    private final int symbols;
    private final List<int[]> relaTables = new ArrayList<>(); // {offset, count}
    private final int infoHeader;
    private final String info;

    PatchMutator(byte[] original) {
        this.original = original.clone();
        var elf = ElfFile.parse("seed", original);
        shoff = (int) elf.header().e_shoff();
        shnum = elf.sections().size();
        Section symtab = null;
        Section infoSection = null;
        for (var s : elf.sections()) {
            if (s.sh_type() == SHT_SYMTAB) {
                symtab = s;
            } else if (s.sh_type() == SHT_RELA) {
                relaTables.add(new int[] {(int) s.sh_offset(), (int) (s.sh_size() / RELA)});
            } else if (s.name().equals(".suture.info")) {
                infoSection = s;
            }
        }
        if (symtab == null || infoSection == null || relaTables.isEmpty()) {
            throw new IllegalArgumentException("seed patch lacks .symtab, .suture.info or relocations");
        }
        symtabOffset = (int) symtab.sh_offset();
        symbols = (int) (symtab.sh_size() / SYM);
        infoHeader = shoff + infoSection.index() * SHDR;
        info = new String(elf.bytes(infoSection), StandardCharsets.UTF_8);
    }

    /** One to three mutations stacked on the original. */
    Mutant mutate(Random r) {
        byte[] b = original.clone();
        var how = new StringBuilder();
        int n = r.nextInt(4) == 0 ? 2 + r.nextInt(2) : 1;
        for (int i = 0; i < n; i++) {
            var m = once(b, r);
            b = m.bytes();
            how.append(i == 0 ? "" : " + ").append(m.how());
        }
        return new Mutant(b, how.toString());
    }

    private Mutant once(byte[] b, Random r) {
        return switch (r.nextInt(14)) {
            case 0 -> bitFlips(b, r);
            case 1 -> setBytes(b, r);
            case 2 -> setWord(b, r);
            case 3 -> truncate(b, r);
            case 4 -> extend(b, r);
            case 5 -> duplicateChunk(b, r);
            case 6 -> r.nextInt(6) == 0 ? sectionCopies(b, r) : sectionField(b, r);
            case 7 -> sectionField(b, r);
            case 8, 9 -> symbolField(b, r);
            case 10, 11 -> relocationField(b, r);
            default -> infoRecord(b, r);
        };
    }

    private static Mutant bitFlips(byte[] b, Random r) {
        if (b.length == 0) {
            return new Mutant(b, "nothing to flip");
        }
        int flips = 1 + r.nextInt(8);
        var where = new StringBuilder("bit flips at");
        for (int i = 0; i < flips; i++) {
            int at = r.nextInt(b.length);
            b[at] ^= (byte) (1 << r.nextInt(8));
            where.append(" 0x").append(Integer.toHexString(at));
        }
        return new Mutant(b, where.toString());
    }

    private static Mutant setBytes(byte[] b, Random r) {
        if (b.length == 0) {
            return new Mutant(b, "nothing to set");
        }
        int count = 1 + r.nextInt(4);
        var where = new StringBuilder("bytes set:");
        for (int i = 0; i < count; i++) {
            int at = r.nextInt(b.length);
            byte v = (byte) new int[] {0, 0xff, 0x7f, 0x80, 0x01, 0x40, 0xfe}[r.nextInt(7)];
            b[at] = v;
            where.append(String.format(" [0x%x]=0x%02x", at, v & 0xff));
        }
        return new Mutant(b, where.toString());
    }

    private static Mutant setWord(byte[] b, Random r) {
        int width = r.nextBoolean() ? 4 : 8;
        if (b.length < width) {
            return new Mutant(b, "too short for a word");
        }
        int at = (r.nextInt(b.length - width + 1)) & ~(width - 1);
        long v = interesting(r, b.length);
        put(b, at, width, v);
        return new Mutant(b, String.format("%d-byte word at 0x%x = 0x%x", width, at, v));
    }

    private static Mutant truncate(byte[] b, Random r) {
        int keep = b.length == 0 ? 0 : r.nextInt(b.length);
        return new Mutant(Arrays.copyOf(b, keep), "truncated to " + keep + " bytes");
    }

    private static Mutant extend(byte[] b, Random r) {
        int more = 1 + r.nextInt(4096);
        byte[] out = Arrays.copyOf(b, b.length + more);
        boolean random = r.nextBoolean();
        if (random) {
            for (int i = b.length; i < out.length; i++) {
                out[i] = (byte) r.nextInt(256);
            }
        }
        return new Mutant(out, "extended by " + more + (random ? " random" : " zero") + " bytes");
    }

    private static Mutant duplicateChunk(byte[] b, Random r) {
        if (b.length < 2) {
            return new Mutant(b, "too short to duplicate");
        }
        int from = r.nextInt(b.length);
        int len = 1 + r.nextInt(Math.min(256, b.length - from));
        int to = r.nextInt(b.length);
        if (r.nextBoolean()) {
            int n = Math.min(len, b.length - to);
            System.arraycopy(b, from, b, to, n);
            return new Mutant(b, String.format("copied 0x%x bytes from 0x%x over 0x%x", n, from, to));
        }
        byte[] out = new byte[b.length + len];
        System.arraycopy(b, 0, out, 0, to);
        System.arraycopy(b, from, out, to, len);
        System.arraycopy(b, to, out, to + len, b.length - to);
        return new Mutant(out, String.format("inserted a copy of 0x%x bytes from 0x%x at 0x%x", len, from, to));
    }

    private Mutant sectionField(byte[] b, Random r) {
        int index = r.nextInt(shnum);
        int[][] fields = {{0, 4}, {4, 4}, {8, 8}, {16, 8}, {24, 8}, {32, 8}, {40, 4}, {44, 4}, {48, 8}, {56, 8}};
        String[] names = {"sh_name", "sh_type", "sh_flags", "sh_addr", "sh_offset", "sh_size", "sh_link", "sh_info",
                "sh_addralign", "sh_entsize"};
        int f = r.nextInt(fields.length);
        int at = shoff + index * SHDR + fields[f][0];
        if (at + fields[f][1] > b.length) {
            return new Mutant(b, "section header " + index + " is gone");
        }
        long v = switch (names[f]) {
            case "sh_type" -> new long[] {SHT_NULL, SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_RELA, SHT_NOBITS, SHT_REL,
                    SHT_GROUP, SHT_DYNSYM, SHT_NOTE, 0x70000001L, 0xffffffffL}[r.nextInt(12)];
            case "sh_flags" -> get(b, at, 8) ^ (new long[] {SHF_ALLOC, SHF_WRITE, SHF_EXECINSTR, SHF_TLS, 0x10, 0x20,
                    1L << 40}[r.nextInt(7)]);
            case "sh_addralign" -> r.nextInt(3) == 0 ? interesting(r, b.length) : 1L << r.nextInt(64);
            case "sh_link", "sh_info" -> r.nextBoolean() ? r.nextInt(shnum + 3) : interesting(r, b.length);
            case "sh_size", "sh_offset" -> r.nextBoolean() ? get(b, at, 8) + r.nextInt(64) - 32
                    : interesting(r, b.length);
            default -> interesting(r, b.length);
        };
        put(b, at, fields[f][1], v);
        return new Mutant(b, String.format("section %d %s = 0x%x", index, names[f], v));
    }

    /**
     * Appends a section header table with hundreds of copies of one section header, each claiming the whole file:
     * a reader that copies every section would copy the file hundreds of times.
     */
    private Mutant sectionCopies(byte[] b, Random r) {
        if (shoff + shnum * SHDR > b.length) {
            return new Mutant(b, "section headers are gone");
        }
        int copies = 100 + r.nextInt(3000);
        int source = 1 + r.nextInt(shnum - 1);
        int at = (b.length + 7) & ~7;
        byte[] out = Arrays.copyOf(b, at + (shnum + copies) * SHDR);
        System.arraycopy(b, shoff, out, at, shnum * SHDR);
        for (int i = 0; i < copies; i++) {
            int h = at + (shnum + i) * SHDR;
            System.arraycopy(b, shoff + source * SHDR, out, h, SHDR);
            put(out, h + 4, 4, SHT_PROGBITS);
            put(out, h + 24, 8, 0);
            put(out, h + 32, 8, at);
        }
        put(out, 40, 8, at);
        put(out, 60, 2, shnum + copies);
        return new Mutant(out, copies + " copies of section " + source + " claiming the whole file");
    }

    private Mutant symbolField(byte[] b, Random r) {
        int index = r.nextInt(symbols);
        int[][] fields = {{0, 4}, {4, 1}, {5, 1}, {6, 2}, {8, 8}, {16, 8}};
        String[] names = {"st_name", "st_info", "st_other", "st_shndx", "st_value", "st_size"};
        int f = r.nextInt(fields.length);
        int at = symtabOffset + index * SYM + fields[f][0];
        if (at + fields[f][1] > b.length) {
            return new Mutant(b, "symbol " + index + " is gone");
        }
        long v = switch (names[f]) {
            case "st_info" -> {
                int bind = new int[] {STB_LOCAL, STB_GLOBAL, STB_WEAK, 3}[r.nextInt(4)];
                int type = new int[] {STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION, STT_FILE, STT_COMMON, STT_TLS,
                        STT_GNU_IFUNC, 15}[r.nextInt(9)];
                yield (bind << 4) | type;
            }
            case "st_shndx" -> r.nextBoolean() ? r.nextInt(shnum + 3)
                    : new long[] {SHN_UNDEF, SHN_ABS, SHN_COMMON, SHN_XINDEX, 0xff00}[r.nextInt(5)];
            case "st_value", "st_size" -> r.nextBoolean() ? get(b, at, 8) + r.nextInt(4096) - 2048
                    : interesting(r, b.length);
            default -> interesting(r, b.length);
        };
        put(b, at, fields[f][1], v);
        return new Mutant(b, String.format("symbol %d %s = 0x%x", index, names[f], v));
    }

    private Mutant relocationField(byte[] b, Random r) {
        int[] table = relaTables.get(r.nextInt(relaTables.size()));
        if (table[1] == 0) {
            return new Mutant(b, "empty relocation table");
        }
        int index = r.nextInt(table[1]);
        int base = table[0] + index * RELA;
        int field = r.nextInt(4);
        String what = new String[] {"r_offset", "type", "symbol", "r_addend"}[field];
        int at = base + new int[] {0, 8, 12, 16}[field];
        int width = field == 1 || field == 2 ? 4 : 8;
        if (at + width > b.length) {
            return new Mutant(b, "relocation is gone");
        }
        long v = switch (field) {
            case 0 -> r.nextBoolean() ? get(b, at, 8) + r.nextInt(16) - 8 : interesting(r, b.length);
            case 1 -> r.nextInt(4) == 0 ? interesting(r, b.length) : r.nextInt(45);
            case 2 -> r.nextInt(4) == 0 ? interesting(r, b.length) : r.nextInt(symbols + 2);
            default -> r.nextBoolean() ? get(b, at, 8) + r.nextInt(64) - 32 : interesting(r, b.length);
        };
        put(b, at, width, v);
        return new Mutant(b, String.format("relocation 0x%x %s = 0x%x", base, what, v));
    }

    /**
     * Rewrites {@code .suture.info}: the new text goes at the end of the file and the section header points at it,
     * so records can grow and shrink.
     */
    private Mutant infoRecord(byte[] b, Random r) {
        if (infoHeader + SHDR > b.length) {
            return new Mutant(b, "info header is gone");
        }
        var lines = new ArrayList<>(Arrays.asList(info.split("\n", -1)));
        lines.removeLast(); // the text ends with a newline
        String how;
        int i = 1 + r.nextInt(lines.size() - 1);
        switch (r.nextInt(8)) {
            case 0, 1, 2 -> {
                var f = lines.get(i).split(" ", -1);
                int j = r.nextInt(f.length);
                f[j] = token(r);
                lines.set(i, String.join(" ", f));
                how = "info line " + (i + 1) + " field " + j + " = " + abbreviate(f[j]);
            }
            case 3 -> {
                lines.add(i, lines.get(i));
                how = "info line " + (i + 1) + " duplicated";
            }
            case 4 -> {
                lines.remove(i);
                how = "info line " + (i + 1) + " removed";
            }
            case 5 -> {
                int k = 1 + r.nextInt(lines.size() - 1);
                var t = lines.get(i);
                lines.set(i, lines.get(k));
                lines.set(k, t);
                how = "info lines " + (i + 1) + " and " + (k + 1) + " swapped";
            }
            case 6 -> {
                if (r.nextInt(8) == 0) {
                    // many distinct records with long names: the region header grows past what info reads back
                    var f = lines.stream().filter(l -> l.startsWith("replace ")).findFirst().orElse(lines.get(i))
                            .split(" ", -1);
                    int count = 100 + r.nextInt(400);
                    long address = f.length > 3 ? parseHex(f[2]) : 0x1000;
                    for (int k = 0; k < count; k++) {
                        if (f.length > 3) {
                            f[1] = "f" + k + "_" + "x".repeat(r.nextBoolean() ? 4000 : 20);
                            f[2] = "0x" + Long.toHexString(address + 0x1000L * (k + 1));
                        }
                        lines.add(i, String.join(" ", f));
                    }
                    how = count + " replace records added";
                    break;
                }
                String extra = switch (r.nextInt(5)) {
                    case 0 -> "new-function " + r.nextInt(symbols + 2);
                    case 1 -> "new-data " + r.nextInt(symbols + 2);
                    case 2 -> "comment x";
                    case 3 -> lines.get(i) + " part";
                    default -> lines.get(i).replaceFirst("^replace \\S+", "replace other_" + r.nextInt(100));
                };
                lines.add(i, extra);
                how = "info line added: " + abbreviate(extra);
            }
            default -> {
                var f = lines.get(i).split(" ", -1);
                f[0] = new String[] {"replace", "new-function", "new-data", "id", "target-name", ""}[r.nextInt(6)];
                lines.set(i, String.join(" ", f));
                how = "info line " + (i + 1) + " keyword = " + f[0];
            }
        }
        String text = String.join("\n", lines) + (r.nextInt(20) == 0 ? "" : "\n");
        return new Mutant(withInfo(b, text), how);
    }

    /** The seed's {@code .suture.info} text. */
    String info() {
        return info;
    }

    /** The seed with {@code .suture.info} replaced by {@code text} (crafted records for the attack tests). */
    byte[] withInfo(String text) {
        return withInfo(original.clone(), text);
    }

    private byte[] withInfo(byte[] b, String text) {
        byte[] t = text.getBytes(StandardCharsets.UTF_8);
        int at = (b.length + 7) & ~7;
        byte[] out = Arrays.copyOf(b, at + t.length);
        System.arraycopy(t, 0, out, at, t.length);
        put(out, infoHeader + 24, 8, at);
        put(out, infoHeader + 32, 8, t.length);
        return out;
    }

    private String token(Random r) {
        return switch (r.nextInt(16)) {
            case 0 -> "0x0";
            case 1 -> "0x1";
            case 2 -> "0x4";
            case 3 -> "0xffffffffffffffff";
            case 4 -> "0x7fffffffffff";
            case 5 -> "0x" + Long.toHexString(r.nextLong());
            case 6 -> "0x" + Integer.toHexString(r.nextInt(1 << 16));
            case 7 -> Integer.toString(r.nextInt(symbols + 3));
            case 8 -> Integer.toString(r.nextInt(symbols + 3) - 2);
            case 9 -> "";
            case 10 -> "x".repeat(r.nextBoolean() ? 4096 : 5000);
            case 11 -> "0".repeat(64);
            case 12 -> "ab".repeat(r.nextInt(70));
            case 13 -> new String[] {"ET_EXEC", "ET_DYN", "ET_REL", "part", "whole"}[r.nextInt(5)];
            case 14 -> "AB".repeat(32);
            default -> "é\t" + r.nextInt(10);
        };
    }

    private static long parseHex(String s) {
        try {
            return Long.parseUnsignedLong(s.substring(2), 16);
        } catch (RuntimeException e) {
            return 0x1000;
        }
    }

    private static String abbreviate(String s) {
        return s.length() <= 40 ? "\"" + s + "\"" : "\"" + s.substring(0, 20) + "...\" (" + s.length() + " chars)";
    }

    static long interesting(Random r, int fileSize) {
        return switch (r.nextInt(14)) {
            case 0 -> 0;
            case 1 -> -1;
            case 2 -> 0x7fffffffL;
            case 3 -> 0x80000000L;
            case 4 -> 0xffffffffL;
            case 5 -> Long.MAX_VALUE;
            case 6 -> Long.MIN_VALUE;
            case 7 -> fileSize;
            case 8 -> fileSize - 1 - r.nextInt(64);
            case 9 -> 1L << r.nextInt(63);
            case 10 -> 0x7f;
            case 11 -> r.nextInt(256);
            case 12 -> Long.MAX_VALUE - r.nextInt(16);
            default -> r.nextLong();
        };
    }

    private static void put(byte[] b, int at, int width, long v) {
        var buf = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        switch (width) {
            case 1 -> buf.put(at, (byte) v);
            case 2 -> buf.putShort(at, (short) v);
            case 4 -> buf.putInt(at, (int) v);
            default -> buf.putLong(at, v);
        }
    }

    private static long get(byte[] b, int at, int width) {
        var buf = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        return switch (width) {
            case 4 -> buf.getInt(at) & 0xffffffffL;
            default -> buf.getLong(at);
        };
    }
}
