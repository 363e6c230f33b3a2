package dev.suture.x86;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.testing.Gcc;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The length decoder against objdump, over code gcc made with and without SSE, AVX2, BMI2 and AVX-512. */
class DecoderTest {
    @TempDir
    Path dir;

    static final String SOURCE = """
            #include <stdio.h>
            #include <string.h>
            #include <math.h>
            #include <stdint.h>
            extern int ext; extern double extd; extern char **environ;
            struct s { long a; short b; char c; double d; float f[8]; };
            static struct s table[64];
            int f1(int x) { switch (x) { case 0: return 3; case 1: return 7; case 2: return 11; case 3: return 19;
                            case 4: return 23; default: return x * 17; } }
            double f2(double *v, int n) { double s = 0; for (int i = 0; i < n; i++) s += v[i] * v[i] + sqrt(v[i]);
                                           return s; }
            float f3(float *a, float *b, int n) { float s = 0; for (int i = 0; i < n; i++) s += a[i] * b[i];
                                                  return s; }
            long f4(struct s *p, int i) { p[i].b = (short) i; p[i].c = (char) i; table[i & 63] = p[i];
                                          return p[i].a + p[i].b + table[(i + 1) & 63].c; }
            uint64_t f5(uint64_t a, uint64_t b, unsigned c) { return (a << (c & 63)) ^ (b >> 3) ^ __builtin_popcountll(a)
                     ^ __builtin_ctzll(b | 1) ^ __builtin_bswap64(a) ^ ((__uint128_t) a * b >> 64); }
            int f6(void) { ext += 5; extd *= 3.5; if (ext == 77) return 1; return environ[0][0] + (int) extd; }
            void f7(char *d, const char *s, size_t n) { memcpy(d, s, n); memset(d + n, 0x5a, 100); }
            int f8(int8_t a, int16_t b, int32_t c) { return a * b / (c | 1) % 7 + (a < b) - (b >= c); }
            long double f9(long double x, long double y) { return x * y + 1.5L; }
            """;

    @Test
    void agreesWithObjdumpOnGccOutput() throws Exception {
        Files.writeString(dir.resolve("d.c"), SOURCE);
        String[][] flagSets = {{"-O0"}, {"-O2"}, {"-O3", "-mavx2", "-mbmi2", "-mfma"}, {"-O2", "-fPIC"},
            {"-O3", "-march=x86-64-v4"}, {"-Os", "-fno-pie", "-mcmodel=small"}};
        int checked = 0;
        for (int i = 0; i < flagSets.length; i++) {
            var cmd = new ArrayList<>(List.of("gcc", "-c", "-o", "d" + i + ".o", "d.c"));
            cmd.addAll(List.of(flagSets[i]));
            Gcc.run(dir, cmd);
            Gcc.run(dir, "objcopy", "-O", "binary", "--only-section=.text", "d" + i + ".o", "d" + i + ".bin");
            checked += compare(Files.readAllBytes(dir.resolve("d" + i + ".bin")), "d" + i + ".bin");
        }
        assertTrue(checked > 1000, "instructions compared: " + checked);
    }

    /** Decodes {@code code} from its start and compares every instruction boundary with objdump's. */
    private int compare(byte[] code, String file) throws Exception {
        String text = Gcc.run(dir, "objdump", "-D", "-b", "binary", "-mi386:x86-64", "-w", file);
        var starts = new ArrayList<Integer>();
        var line = Pattern.compile("^\\s*([0-9a-f]+):\\t([0-9a-f ]+)\\t.*$", Pattern.MULTILINE).matcher(text);
        while (line.find()) {
            starts.add(Integer.parseInt(line.group(1), 16));
        }
        int at = 0;
        for (int i = 0; i < starts.size(); i++) {
            assertEquals((int) starts.get(i), at, file + ": instruction " + i);
            at = Decoder.decode(code, at, code.length).end();
        }
        assertEquals(code.length, at, file);
        return starts.size();
    }

    @Test
    void findsTheFieldsOfAnAccess() {
        // addl $1, x(%rip): 83 05 disp32 imm8
        byte[] code = {(byte) 0x83, 0x05, 0, 0, 0, 0, 1};
        var insn = Decoder.decode(code, 0, code.length);
        assertEquals(7, insn.length());
        assertEquals(2, insn.disp());
        assertEquals(6, insn.imm());
        assertTrue(insn.ripRelative(code));
        // mov tbl(,%rax,4),%esi: 8b 34 85 disp32
        byte[] sib = {(byte) 0x8b, 0x34, (byte) 0x85, 0, 0, 0, 0};
        var s = Decoder.decode(sib, 0, sib.length);
        assertTrue(s.absoluteSib(sib));
        assertEquals(3, s.disp());
        // movabs $imm64, %rax
        byte[] movabs = {0x48, (byte) 0xb8, 1, 2, 3, 4, 5, 6, 7, 8};
        assertEquals(10, Decoder.decode(movabs, 0, movabs.length).length());
        // testl $imm32, x(%rip) has an immediate, notl x(%rip) none
        assertEquals(10, Decoder.decode(new byte[] {(byte) 0xf7, 0x05, 0, 0, 0, 0, 1, 0, 0, 0}, 0, 10).length());
        assertEquals(6, Decoder.decode(new byte[] {(byte) 0xf7, 0x15, 0, 0, 0, 0}, 0, 6).length());
    }

    @Test
    void refusesWhatItCannotDecode() {
        assertThrows(UndecodableException.class, () -> Decoder.decode(new byte[] {0x06}, 0, 1)); // push es
        assertThrows(UndecodableException.class, () -> Decoder.decode(new byte[] {(byte) 0x8b, 0x05, 0, 0}, 0, 4));
        assertThrows(UndecodableException.class, () -> Decoder.decode(new byte[] {0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
            0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, (byte) 0x90}, 0, 16)); // longer than 15 bytes
    }
}
