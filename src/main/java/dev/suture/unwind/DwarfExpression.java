package dev.suture.unwind;

import static dev.suture.unwind.Dwarf.*;

/**
 * Evaluates the DWARF expressions CFI uses (glibc's signal trampoline reads the interrupted context through
 * {@code DW_OP_breg7} and {@code DW_OP_deref}; PLT entries compute the CFA from rsp and rip with lit, and, ge, shl,
 * plus). The operand stack is an array owned by the caller; steps and depth are bounded, so a looping or
 * overflowing expression is an {@link UnwindException}, never a hang.
 */
final class DwarfExpression {
    static final int MAX_STEPS = 10_000;
    static final int MAX_DEPTH = 64;

    private final long[] stack = new long[MAX_DEPTH];
    private final ByteCursor cursor = new ByteCursor(new byte[0], "");

    /**
     * Runs the expression in {@code bytes[start, end)} with {@code initial} pushed (the CFA, for register rules; none
     * for the CFA rule when {@code pushInitial} is false), reading registers from {@code registers} (valid where
     * the bit of {@code validMask} is set) and memory from {@code memory}, and returns the value on top.
     */
    long evaluate(String where, byte[] bytes, int start, int end, boolean pushInitial, long initial,
                  long[] registers, int validMask, StackCopy memory) {
        cursor.reset(bytes, where, start, end);
        int sp = 0;
        if (pushInitial) {
            stack[sp++] = initial;
        }
        int steps = 0;
        while (cursor.hasMore()) {
            if (++steps > MAX_STEPS) {
                throw cursor.error("expression exceeds " + MAX_STEPS + " steps (a loop?)");
            }
            int op = cursor.u8();
            if (op >= DW_OP_lit0 && op <= DW_OP_lit31) {
                sp = push(sp, op - DW_OP_lit0);
                continue;
            }
            if (op >= DW_OP_breg0 && op <= DW_OP_breg31) {
                long base = register(op - DW_OP_breg0, registers, validMask);
                sp = push(sp, base + cursor.sleb128());
                continue;
            }
            if (op >= DW_OP_reg0 && op <= DW_OP_reg31) {
                throw cursor.error("DW_OP_reg" + (op - DW_OP_reg0) + " names a location, not a value, in CFI");
            }
            switch (op) {
                case DW_OP_addr, DW_OP_const8u, DW_OP_const8s -> sp = push(sp, cursor.u64());
                case DW_OP_const1u -> sp = push(sp, cursor.u8());
                case DW_OP_const1s -> sp = push(sp, (byte) cursor.u8());
                case DW_OP_const2u -> sp = push(sp, cursor.u16());
                case DW_OP_const2s -> sp = push(sp, (short) cursor.u16());
                case DW_OP_const4u -> sp = push(sp, cursor.u32());
                case DW_OP_const4s -> sp = push(sp, (int) cursor.u32());
                case DW_OP_constu -> sp = push(sp, cursor.uleb128());
                case DW_OP_consts -> sp = push(sp, cursor.sleb128());
                case DW_OP_bregx -> {
                    int r = cursor.register();
                    long base = register(r, registers, validMask);
                    sp = push(sp, base + cursor.sleb128());
                }
                case DW_OP_regx -> throw cursor.error("DW_OP_regx names a location, not a value, in CFI");
                case DW_OP_deref -> {
                    need(sp, 1);
                    stack[sp - 1] = memory.read(stack[sp - 1], 8);
                }
                case DW_OP_deref_size -> {
                    int size = cursor.u8();
                    if (size < 1 || size > 8) {
                        throw cursor.error("DW_OP_deref_size " + size);
                    }
                    need(sp, 1);
                    stack[sp - 1] = memory.read(stack[sp - 1], size);
                }
                case DW_OP_dup -> {
                    need(sp, 1);
                    sp = push(sp, stack[sp - 1]);
                }
                case DW_OP_drop -> {
                    need(sp, 1);
                    sp--;
                }
                case DW_OP_over -> {
                    need(sp, 2);
                    sp = push(sp, stack[sp - 2]);
                }
                case DW_OP_pick -> {
                    int index = cursor.u8();
                    need(sp, index + 1);
                    sp = push(sp, stack[sp - 1 - index]);
                }
                case DW_OP_swap -> {
                    need(sp, 2);
                    long t = stack[sp - 1];
                    stack[sp - 1] = stack[sp - 2];
                    stack[sp - 2] = t;
                }
                case DW_OP_rot -> {
                    need(sp, 3);
                    long top = stack[sp - 1];
                    stack[sp - 1] = stack[sp - 2];
                    stack[sp - 2] = stack[sp - 3];
                    stack[sp - 3] = top;
                }
                case DW_OP_abs -> {
                    need(sp, 1);
                    stack[sp - 1] = Math.abs(stack[sp - 1]);
                }
                case DW_OP_neg -> {
                    need(sp, 1);
                    stack[sp - 1] = -stack[sp - 1];
                }
                case DW_OP_not -> {
                    need(sp, 1);
                    stack[sp - 1] = ~stack[sp - 1];
                }
                case DW_OP_plus_uconst -> {
                    need(sp, 1);
                    stack[sp - 1] += cursor.uleb128();
                }
                case DW_OP_and, DW_OP_div, DW_OP_minus, DW_OP_mod, DW_OP_mul, DW_OP_or, DW_OP_plus, DW_OP_shl,
                     DW_OP_shr, DW_OP_shra, DW_OP_xor, DW_OP_eq, DW_OP_ge, DW_OP_gt, DW_OP_le, DW_OP_lt, DW_OP_ne -> {
                    need(sp, 2);
                    long b = stack[--sp];
                    long a = stack[sp - 1];
                    stack[sp - 1] = binary(op, a, b);
                }
                case DW_OP_skip -> jump(cursor.u16(), start, end);
                case DW_OP_bra -> {
                    int offset = cursor.u16();
                    need(sp, 1);
                    if (stack[--sp] != 0) {
                        jump(offset, start, end);
                    }
                }
                case DW_OP_nop -> {}
                default -> throw cursor.error("unsupported expression operation 0x" + Integer.toHexString(op)
                        + " at offset 0x" + Integer.toHexString(cursor.position() - 1));
            }
        }
        if (sp == 0) {
            throw cursor.error("expression leaves an empty stack");
        }
        return stack[sp - 1];
    }

    private long binary(int op, long a, long b) {
        return switch (op) {
            case DW_OP_and -> a & b;
            case DW_OP_or -> a | b;
            case DW_OP_xor -> a ^ b;
            case DW_OP_plus -> a + b;
            case DW_OP_minus -> a - b;
            case DW_OP_mul -> a * b;
            case DW_OP_div -> {
                if (b == 0) {
                    throw cursor.error("division by zero");
                }
                yield a / b;
            }
            case DW_OP_mod -> {
                if (b == 0) {
                    throw cursor.error("modulo by zero");
                }
                yield Long.remainderUnsigned(a, b);
            }
            case DW_OP_shl -> b >= 64 || b < 0 ? 0 : a << b;
            case DW_OP_shr -> b >= 64 || b < 0 ? 0 : a >>> b;
            case DW_OP_shra -> a >> Math.min(Math.max(b, 0), 63);
            case DW_OP_eq -> a == b ? 1 : 0;
            case DW_OP_ne -> a != b ? 1 : 0;
            case DW_OP_ge -> a >= b ? 1 : 0;
            case DW_OP_gt -> a > b ? 1 : 0;
            case DW_OP_le -> a <= b ? 1 : 0;
            case DW_OP_lt -> a < b ? 1 : 0;
            default -> throw new IllegalStateException("not a binary op: " + op);
        };
    }

    private void jump(int rawOffset, int start, int end) {
        int target = cursor.position() + (short) rawOffset;
        if (target < start || target > end) {
            throw cursor.error("branch to offset 0x" + Integer.toHexString(target) + " outside the expression");
        }
        cursor.position(target);
    }

    private long register(int r, long[] registers, int validMask) {
        if (r >= REGISTER_COUNT || (validMask & (1 << r)) == 0) {
            throw cursor.error("expression reads register " + r + ", whose value is not known in this frame");
        }
        return registers[r];
    }

    private int push(int sp, long v) {
        if (sp == MAX_DEPTH) {
            throw cursor.error("expression stack overflows " + MAX_DEPTH + " entries");
        }
        stack[sp] = v;
        return sp + 1;
    }

    private void need(int sp, int n) {
        if (sp < n) {
            throw cursor.error("expression stack underflow");
        }
    }
}
