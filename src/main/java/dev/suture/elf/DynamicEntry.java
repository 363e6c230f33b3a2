package dev.suture.elf;

import static dev.suture.elf.ElfConstants.*;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/** One entry of the dynamic section. */
public record DynamicEntry(long d_tag, long d_val) {
    /** Decodes the dynamic section (or, without section headers, the PT_DYNAMIC segment) up to DT_NULL. */
    static List<DynamicEntry> readAll(ElfFile elf) {
        int off;
        long len;
        var sec = elf.sectionOfType(SHT_DYNAMIC);
        if (sec.isPresent()) {
            off = elf.checkRange(sec.get().sh_offset(), sec.get().sh_size(), elf.describe(sec.get()));
            len = sec.get().sh_size();
        } else {
            var seg = elf.segment(PT_DYNAMIC);
            if (seg.isEmpty()) {
                return List.of();
            }
            off = elf.checkRange(seg.get().p_offset(), seg.get().p_filesz(), "the PT_DYNAMIC segment");
            len = seg.get().p_filesz();
        }
        var out = new ArrayList<DynamicEntry>();
        for (long p = 0; p + DYN_SIZE <= len; p += DYN_SIZE) {
            var e = new DynamicEntry(elf.data().getLong(off + (int) p), elf.data().getLong(off + (int) p + 8));
            out.add(e);
            if (e.d_tag() == DT_NULL) {
                break;
            }
        }
        return Collections.unmodifiableList(out);
    }

}
