package dev.suture.x86;

/**
 * The arithmetic of x86-64 relocations (System V psABI, x86-64 supplement, table "Relocation Types"): what each
 * type computes from S (the symbol's value), A (the addend), P (the place), G (the address of the symbol's GOT
 * entry), GOT (the GOT's base) and Z (the symbol's size), and how the result must fit its field.
 *
 * <p>The caller (the binder) resolves the symbol into what {@link Rule#operand()} asks for — an address, a
 * thread-pointer offset, an offset in the module's TLS block — and provides the GOT entry {@link Rule#got()} asks
 * for; this class does the rest, and refuses a value that does not fit its field with a {@link DoesNotFitException}.
 * Type numbers are the psABI's, the same ints the ELF reader reports.
 */
public final class Relocations {
    public static final int R_X86_64_NONE = 0;
    public static final int R_X86_64_64 = 1;
    public static final int R_X86_64_PC32 = 2;
    public static final int R_X86_64_GOT32 = 3;
    public static final int R_X86_64_PLT32 = 4;
    public static final int R_X86_64_GOTPCREL = 9;
    public static final int R_X86_64_32 = 10;
    public static final int R_X86_64_32S = 11;
    public static final int R_X86_64_16 = 12;
    public static final int R_X86_64_PC16 = 13;
    public static final int R_X86_64_8 = 14;
    public static final int R_X86_64_PC8 = 15;
    public static final int R_X86_64_DTPOFF64 = 17;
    public static final int R_X86_64_TPOFF64 = 18;
    public static final int R_X86_64_TLSGD = 19;
    public static final int R_X86_64_TLSLD = 20;
    public static final int R_X86_64_DTPOFF32 = 21;
    public static final int R_X86_64_GOTTPOFF = 22;
    public static final int R_X86_64_TPOFF32 = 23;
    public static final int R_X86_64_PC64 = 24;
    public static final int R_X86_64_GOTOFF64 = 25;
    public static final int R_X86_64_GOTPC32 = 26;
    public static final int R_X86_64_GOTPCREL64 = 28;
    public static final int R_X86_64_GOTPC64 = 29;
    public static final int R_X86_64_SIZE32 = 32;
    public static final int R_X86_64_SIZE64 = 33;
    public static final int R_X86_64_GOTPCRELX = 41;
    public static final int R_X86_64_REX_GOTPCRELX = 42;

    private Relocations() {}

    /** What the symbol must be resolved to before the arithmetic. */
    public enum Operand {
        /** No symbol value is used (the GOT entry or GOT base carries the meaning). */
        NONE,
        /** The symbol's run-time address. */
        ADDRESS,
        /** The symbol's size (Z). */
        SIZE,
        /** The variable's offset from the thread pointer (%fs), negative for the executable's static TLS. */
        TP_OFFSET,
        /** The variable's offset inside its module's TLS block. */
        DTP_OFFSET
    }

    /** The GOT entry a relocation refers to (G), which the binder allocates in the patch region. */
    public enum GotEntry {
        NONE,
        /** One 8-byte slot holding the symbol's address. */
        ADDRESS,
        /** One 8-byte slot holding the variable's thread-pointer offset (initial-exec TLS). */
        TP_OFFSET,
        /** Two slots: the module's TLS id and the variable's offset in its block (general-dynamic TLS). */
        TLS_INDEX,
        /** Two slots: the module's TLS id and 0 (local-dynamic TLS). */
        TLS_MODULE
    }

    /** How a field is checked before it is written. */
    public enum Field {
        NONE(0), S8(1), U8(1), S16(2), U16(2), S32(4), U32(4), WORD64(8);

        final int width;

        Field(int width) {
            this.width = width;
        }

        public int width() {
            return width;
        }
    }

    /** The rule of one relocation type. */
    public record Rule(int type, String name, Field field, Operand operand, GotEntry got, Formula formula) {}

    /** What is computed, before the field check. */
    public enum Formula {
        NOTHING, S_PLUS_A, S_PLUS_A_MINUS_P, G_PLUS_A_MINUS_P, S_PLUS_A_MINUS_GOT, GOT_PLUS_A_MINUS_P, Z_PLUS_A
    }

    /**
     * The values a relocation is computed from. {@code symbol} is whatever the rule's operand asks for (an address,
     * a size, a TLS offset); {@code gotEntry} the address of the GOT entry (or the first of two), {@code gotBase}
     * the address the region's GOT starts at.
     */
    public record Values(long symbol, long addend, long place, long gotEntry, long gotBase) {
        public static Values of(long symbol, long addend, long place) {
            return new Values(symbol, addend, place, 0, 0);
        }
    }

    /** The rule for {@code type}; DoesNotFitException for a type this code does not support. */
    public static Rule rule(int type) {
        return switch (type) {
            case R_X86_64_NONE -> r(type, "R_X86_64_NONE", Field.NONE, Operand.NONE, GotEntry.NONE, Formula.NOTHING);
            case R_X86_64_64 -> r(type, "R_X86_64_64", Field.WORD64, Operand.ADDRESS, GotEntry.NONE, Formula.S_PLUS_A);
            case R_X86_64_PC32 -> r(type, "R_X86_64_PC32", Field.S32, Operand.ADDRESS, GotEntry.NONE,
                    Formula.S_PLUS_A_MINUS_P);
            // the binder points S at a jump-table entry when the function itself is out of rel32 reach (L in the ABI)
            case R_X86_64_PLT32 -> r(type, "R_X86_64_PLT32", Field.S32, Operand.ADDRESS, GotEntry.NONE,
                    Formula.S_PLUS_A_MINUS_P);
            case R_X86_64_32 -> r(type, "R_X86_64_32", Field.U32, Operand.ADDRESS, GotEntry.NONE, Formula.S_PLUS_A);
            case R_X86_64_32S -> r(type, "R_X86_64_32S", Field.S32, Operand.ADDRESS, GotEntry.NONE, Formula.S_PLUS_A);
            case R_X86_64_16 -> r(type, "R_X86_64_16", Field.U16, Operand.ADDRESS, GotEntry.NONE, Formula.S_PLUS_A);
            case R_X86_64_PC16 -> r(type, "R_X86_64_PC16", Field.S16, Operand.ADDRESS, GotEntry.NONE,
                    Formula.S_PLUS_A_MINUS_P);
            case R_X86_64_8 -> r(type, "R_X86_64_8", Field.U8, Operand.ADDRESS, GotEntry.NONE, Formula.S_PLUS_A);
            case R_X86_64_PC8 -> r(type, "R_X86_64_PC8", Field.S8, Operand.ADDRESS, GotEntry.NONE,
                    Formula.S_PLUS_A_MINUS_P);
            case R_X86_64_PC64 -> r(type, "R_X86_64_PC64", Field.WORD64, Operand.ADDRESS, GotEntry.NONE,
                    Formula.S_PLUS_A_MINUS_P);
            case R_X86_64_GOTPCREL -> r(type, "R_X86_64_GOTPCREL", Field.S32, Operand.NONE, GotEntry.ADDRESS,
                    Formula.G_PLUS_A_MINUS_P);
            // the relaxable forms keep the GOT load: correct without rewriting the instruction
            case R_X86_64_GOTPCRELX -> r(type, "R_X86_64_GOTPCRELX", Field.S32, Operand.NONE, GotEntry.ADDRESS,
                    Formula.G_PLUS_A_MINUS_P);
            case R_X86_64_REX_GOTPCRELX -> r(type, "R_X86_64_REX_GOTPCRELX", Field.S32, Operand.NONE,
                    GotEntry.ADDRESS, Formula.G_PLUS_A_MINUS_P);
            case R_X86_64_GOTPCREL64 -> r(type, "R_X86_64_GOTPCREL64", Field.WORD64, Operand.NONE, GotEntry.ADDRESS,
                    Formula.G_PLUS_A_MINUS_P);
            case R_X86_64_GOTOFF64 -> r(type, "R_X86_64_GOTOFF64", Field.WORD64, Operand.ADDRESS, GotEntry.NONE,
                    Formula.S_PLUS_A_MINUS_GOT);
            case R_X86_64_GOTPC32 -> r(type, "R_X86_64_GOTPC32", Field.S32, Operand.NONE, GotEntry.NONE,
                    Formula.GOT_PLUS_A_MINUS_P);
            case R_X86_64_GOTPC64 -> r(type, "R_X86_64_GOTPC64", Field.WORD64, Operand.NONE, GotEntry.NONE,
                    Formula.GOT_PLUS_A_MINUS_P);
            case R_X86_64_SIZE32 -> r(type, "R_X86_64_SIZE32", Field.U32, Operand.SIZE, GotEntry.NONE, Formula.Z_PLUS_A);
            case R_X86_64_SIZE64 -> r(type, "R_X86_64_SIZE64", Field.WORD64, Operand.SIZE, GotEntry.NONE,
                    Formula.Z_PLUS_A);
            case R_X86_64_TPOFF32 -> r(type, "R_X86_64_TPOFF32", Field.S32, Operand.TP_OFFSET, GotEntry.NONE,
                    Formula.S_PLUS_A);
            case R_X86_64_TPOFF64 -> r(type, "R_X86_64_TPOFF64", Field.WORD64, Operand.TP_OFFSET, GotEntry.NONE,
                    Formula.S_PLUS_A);
            case R_X86_64_DTPOFF32 -> r(type, "R_X86_64_DTPOFF32", Field.S32, Operand.DTP_OFFSET, GotEntry.NONE,
                    Formula.S_PLUS_A);
            case R_X86_64_DTPOFF64 -> r(type, "R_X86_64_DTPOFF64", Field.WORD64, Operand.DTP_OFFSET, GotEntry.NONE,
                    Formula.S_PLUS_A);
            case R_X86_64_GOTTPOFF -> r(type, "R_X86_64_GOTTPOFF", Field.S32, Operand.NONE, GotEntry.TP_OFFSET,
                    Formula.G_PLUS_A_MINUS_P);
            case R_X86_64_TLSGD -> r(type, "R_X86_64_TLSGD", Field.S32, Operand.NONE, GotEntry.TLS_INDEX,
                    Formula.G_PLUS_A_MINUS_P);
            case R_X86_64_TLSLD -> r(type, "R_X86_64_TLSLD", Field.S32, Operand.NONE, GotEntry.TLS_MODULE,
                    Formula.G_PLUS_A_MINUS_P);
            default -> throw new DoesNotFitException("relocation type " + type
                    + " is not supported in patches (supported: absolute, PC-relative, PLT, GOT-relative and the"
                    + " TLS types TPOFF, GOTTPOFF, TLSGD, TLSLD, DTPOFF); rebuild the patch without it");
        };
    }

    /** True if {@code type} is one this class can apply. */
    public static boolean supported(int type) {
        try {
            rule(type);
            return true;
        } catch (DoesNotFitException e) {
            return false;
        }
    }

    private static Rule r(int type, String name, Field field, Operand operand, GotEntry got, Formula formula) {
        return new Rule(type, name, field, operand, got, formula);
    }

    /** The value {@code type} computes from {@code v}, before the field check. */
    public static long compute(int type, Values v) {
        Rule rule = rule(type);
        return switch (rule.formula()) {
            case NOTHING -> 0;
            case S_PLUS_A, Z_PLUS_A -> v.symbol() + v.addend();
            case S_PLUS_A_MINUS_P -> v.symbol() + v.addend() - v.place();
            case G_PLUS_A_MINUS_P -> v.gotEntry() + v.addend() - v.place();
            case S_PLUS_A_MINUS_GOT -> v.symbol() + v.addend() - v.gotBase();
            case GOT_PLUS_A_MINUS_P -> v.gotBase() + v.addend() - v.place();
        };
    }

    /**
     * Computes relocation {@code type} and writes it into {@code section} at {@code offset}. {@code where} names the
     * relocation for a person ("thread3_say+0x21 -> printf") and goes into the message when the value does not fit.
     */
    public static void apply(int type, byte[] section, int offset, Values v, String where) {
        Rule rule = rule(type);
        if (rule.field() == Field.NONE) {
            return;
        }
        int width = rule.field().width();
        if (offset < 0 || offset > section.length - width) {
            throw new DoesNotFitException(String.format("%s (%s): offset 0x%x is outside its section of %d bytes",
                    where, rule.name(), offset, section.length));
        }
        long value = compute(type, v);
        check(rule, value, where);
        for (int i = 0; i < width; i++) {
            section[offset + i] = (byte) (value >>> (8 * i));
        }
    }

    private static void check(Rule rule, long value, String where) {
        boolean fits = switch (rule.field()) {
            case NONE, WORD64 -> true;
            case S32 -> value == (int) value;
            case U32 -> value >= 0 && value <= 0xffff_ffffL;
            case S16 -> value == (short) value;
            // the psABI treats the 16- and 8-bit absolute types as bit fields: either sign reading is accepted
            case U16 -> value >= Short.MIN_VALUE && value <= 0xffff;
            case S8 -> value == (byte) value;
            case U8 -> value >= Byte.MIN_VALUE && value <= 0xff;
        };
        if (!fits) {
            String why = switch (rule.formula()) {
                case S_PLUS_A_MINUS_P, G_PLUS_A_MINUS_P, GOT_PLUS_A_MINUS_P ->
                        "the distance is beyond the field's ±" + (rule.field().width() == 4 ? "2 GiB" : "range");
                default -> "the value needs more than " + rule.field().width() * 8 + " bits";
            };
            throw new DoesNotFitException(String.format("%s (%s): value 0x%x does not fit: %s", where, rule.name(),
                    value, why));
        }
    }
}
