package dev.suture.unwind;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.elf.ElfFile;
import dev.suture.testing.Commands;
import dev.suture.testing.Gcc;
import java.time.Duration;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Our CFI parser and CFA evaluation against binutils: every FDE range and every row of
 * {@code readelf --debug-dump=frames-interp}, for glibc and for programs gcc builds here.
 */
class ReadelfAgreementTest {
    private static final String[] NAMES = {"rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10",
            "r11", "r12", "r13", "r14", "r15", "ra"};
    private static final Pattern FDE = Pattern.compile(
            "^([0-9a-f]+) [0-9a-f]+ [0-9a-f]+ FDE cie=[0-9a-f]+ pc=([0-9a-f]+)\\.\\.([0-9a-f]+)");

    @TempDir
    Path dir;

    @Test
    void glibc() throws Exception {
        int rows = compare(Path.of("/lib/x86_64-linux-gnu/libc.so.6"));
        assertTrue(rows > 5000, "rows compared: " + rows);
    }

    @Test
    void programsBuiltHere() throws Exception {
        String source = """
                #include <stdio.h>
                #include <stdlib.h>
                #include <string.h>
                #include <alloca.h>
                static int deep(int n, char *buf) { if (n == 0) return buf[0]; char *b = alloca(n * 16); memset(b, n, n * 16); return deep(n - 1, b) + b[3]; }
                int main(int argc, char **argv) { char x[64]; strcpy(x, argv[0]); printf("%d\\n", deep(argc * 5, x)); return 0; }
                """;
        for (String opt : List.of("-O0", "-O2")) {
            Path exe = Gcc.compile(dir, "prog" + opt.substring(1), source, opt);
            assertTrue(compare(exe) > 5);
        }
    }

    private int compare(Path file) throws Exception {
        ElfFile elf = ElfFile.open(file);
        CallFrameSection s = CodeModules.ehFrame(file.toString(), elf);
        assertNotNull(s);
        assertTrue(s.indexedByHeader(), "lookups go through .eh_frame_hdr");
        assertEquals(null, s.problem());
        String dump = Commands.run(dir, Duration.ofMinutes(1), "readelf", "--debug-dump=frames-interp", file.toString()).output();
        var context = new UnwindContext();
        int rows = 0;
        int fdes = 0;
        var lines = dump.lines().toList();
        for (int i = 0; i < lines.size(); i++) {
            var m = FDE.matcher(lines.get(i));
            if (!m.find()) {
                continue;
            }
            fdes++;
            long begin = Long.parseUnsignedLong(m.group(2), 16);
            long end = Long.parseUnsignedLong(m.group(3), 16);
            if (begin == end) {
                continue;
            }
            FrameDescriptionEntry fde = s.find(begin);
            assertNotNull(fde, "FDE at 0x" + m.group(1));
            assertEquals(begin, fde.pcBegin());
            assertEquals(end, fde.pcEnd());
            assertEquals(end - 1, s.find(end - 1).pcEnd() - 1);
            if (i + 1 >= lines.size() || !lines.get(i + 1).trim().startsWith("LOC")) {
                continue;
            }
            String[] columns = lines.get(i + 1).trim().split("\\s+");
            Map<Long, String[]> lastRowAt = new LinkedHashMap<>();
            for (int j = i + 2; j < lines.size() && !lines.get(j).isBlank(); j++) {
                String[] cells = lines.get(j).trim().replaceAll(" \\(", "_(").split("\\s+");
                lastRowAt.put(Long.parseUnsignedLong(cells[0], 16), cells);
            }
            for (var row : lastRowAt.entrySet()) {
                context.evaluate(s, fde, row.getKey());
                String where = file.getFileName() + " FDE 0x" + m.group(1) + " loc 0x" + Long.toHexString(row.getKey());
                assertEquals(row.getValue()[1], cfa(context), where + " CFA");
                for (int c = 2; c < columns.length && c < row.getValue().length; c++) {
                    int reg = List.of(NAMES).indexOf(columns[c]);
                    if (reg >= 0) {
                        String ours = rule(context, reg);
                        String theirs = row.getValue()[c];
                        assertTrue(ours.equals(theirs) || (theirs.equals("u") && ours.equals("s")),
                                where + " " + columns[c] + ": readelf " + theirs + ", ours " + ours);
                    }
                }
                rows++;
            }
        }
        assertEquals(fdes, s.size() + zeroLength(dump), "every FDE indexed");
        return rows;
    }

    private static int zeroLength(String dump) {
        int n = 0;
        for (String l : dump.lines().toList()) {
            var m = FDE.matcher(l);
            if (m.find() && m.group(2).equals(m.group(3))) {
                n++;
            }
        }
        return n;
    }

    private static String cfa(UnwindContext c) {
        return switch (c.cfa()) {
            case CfaRule.RegisterAndOffset(int r, long off) -> NAMES[r] + (off >= 0 ? "+" : "") + off;
            case CfaRule.Expression _ -> "exp";
        };
    }

    private static String rule(UnwindContext c, int reg) {
        return switch (c.rule(reg)) {
            case RegisterRule.Undefined _ -> "u";
            case RegisterRule.SameValue _ -> "s";
            case RegisterRule.Offset(long n) -> "c" + (n >= 0 ? "+" : "") + n;
            case RegisterRule.ValOffset(long n) -> "v" + (n >= 0 ? "+" : "") + n;
            case RegisterRule.Register(int r) -> "r" + r + "_(" + (r < NAMES.length ? NAMES[r] : "?") + ")";
            case RegisterRule.Expression _ -> "exp";
            case RegisterRule.ValExpression _ -> "vexp";
        };
    }

}
