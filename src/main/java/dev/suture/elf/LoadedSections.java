package dev.suture.elf;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Whether two linked files load the same image: every allocated section (the ones a process maps) present in both
 * under the same name, type, flags, address and size, with the same bytes. The build-id note is excepted, and so is
 * everything not loaded ({@code .gnu_debuglink}, {@code .symtab}, {@code .comment}, debug sections): a stripped
 * file and the unstripped output it was made from compare equal, and then the unstripped file's symbols describe
 * the stripped one exactly (docs/debian.md, "Symbols for stripped binaries").
 */
public final class LoadedSections {
    /** The note whose bytes naturally differ between two builds of the same sources. */
    static final String BUILD_ID_NOTE = ".note.gnu.build-id";

    /** One way the two images differ, for a person: the section and what about it. */
    public record Difference(String section, String what) {
        @Override
        public String toString() {
            return section + ": " + what;
        }
    }

    private LoadedSections() {}

    /**
     * The differences between the loaded images of {@code a} and {@code b} (each told as "a's vs b's"); empty when
     * they load the same bytes.
     */
    public static List<Difference> compare(ElfFile a, ElfFile b) {
        var out = new ArrayList<Difference>();
        if (a.header().e_machine() != b.header().e_machine() || a.header().e_type() != b.header().e_type()
                || a.header().e_entry() != b.header().e_entry()) {
            out.add(new Difference("ELF header", "machine, type or entry point differ"));
        }
        List<Section> left = loaded(a);
        List<Section> right = loaded(b);
        for (int i = 0; i < Math.max(left.size(), right.size()); i++) {
            if (i >= left.size() || i >= right.size()) {
                Section only = i < left.size() ? left.get(i) : right.get(i);
                out.add(new Difference(only.name(), "only in " + (i < left.size() ? a : b).name()));
                continue;
            }
            Section x = left.get(i);
            Section y = right.get(i);
            if (!x.name().equals(y.name()) || x.sh_type() != y.sh_type() || x.sh_flags() != y.sh_flags()
                    || x.sh_addr() != y.sh_addr() || x.sh_size() != y.sh_size()) {
                out.add(new Difference(x.name(), String.format("%sat 0x%x, %d bytes vs %sat 0x%x, %d bytes",
                        x.name().equals(y.name()) ? "" : x.name() + " ", x.sh_addr(), x.sh_size(),
                        x.name().equals(y.name()) ? "" : y.name() + " ", y.sh_addr(), y.sh_size())));
            } else if (!x.isNobits() && !x.name().equals(BUILD_ID_NOTE)) {
                long at = Arrays.mismatch(a.bytes(x), b.bytes(y));
                if (at >= 0) {
                    out.add(new Difference(x.name(), String.format("bytes differ from 0x%x", x.sh_addr() + at)));
                }
            }
        }
        return out;
    }

    /** The allocated sections, in the order of the section header table. */
    private static List<Section> loaded(ElfFile f) {
        return f.sections().stream().filter(Section::isAlloc).toList();
    }
}
