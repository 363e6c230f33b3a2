package dev.suture.patch;

import static dev.suture.elf.ElfConstants.*;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/** Serialises a {@link PatchFile} as the ET_REL of docs/patch-format.md: contents, RELA, metadata, tables. */
final class PatchWriter {
    private static final int EHDR_SIZE = 64, SHDR_SIZE = 64, SYM_SIZE = 24, RELA_SIZE = 24;

    private PatchWriter() {}

    private record Out(String name, int type, long flags, long align, long entsize, int link, int info,
                       byte[] bytes, long size) {}

    static byte[] write(PatchFile patch) {
        var sections = new ArrayList<Out>();
        var shstrtab = new StringTable();
        var strtab = new StringTable();
        for (var s : patch.sections()) {
            sections.add(new Out(s.name(), s.type(), s.flags(), s.align(), s.entsize(), 0, 0, s.bytes(), s.size()));
        }
        int symtabIndex = 1 + sections.size() + (int) patch.sections().stream()
                .filter(s -> !s.relocations().isEmpty()).count() + 1;
        for (var s : patch.sections()) {
            if (s.relocations().isEmpty()) {
                continue;
            }
            var buf = le(RELA_SIZE * s.relocations().size());
            for (var r : s.relocations()) {
                buf.putLong(r.offset());
                buf.putLong(((long) r.symbol().index() << 32) | (r.type() & 0xffffffffL));
                buf.putLong(r.addend());
            }
            sections.add(new Out(".rela" + s.name(), SHT_RELA, SHF_INFO_LINK, 8, RELA_SIZE, symtabIndex, s.index(),
                    buf.array(), buf.capacity()));
        }
        byte[] info = patch.infoText().getBytes(StandardCharsets.UTF_8);
        sections.add(new Out(PatchFile.INFO_SECTION, SHT_PROGBITS, 0, 1, 0, 0, 0, info, info.length));

        List<PatchSymbol> symbols = patch.symbols();
        var sym = le(SYM_SIZE * (symbols.size() + 1));
        sym.position(SYM_SIZE);
        int firstGlobal = symbols.size() + 1;
        for (var s : symbols) {
            int nameOffset = 0, bind = STB_LOCAL, type, shndx;
            long value = 0, size = 0;
            switch (s) {
                case PatchSymbol.SectionSymbol ss -> { type = STT_SECTION; shndx = ss.section(); }
                case PatchSymbol.Defined d -> {
                    nameOffset = strtab.add(d.name()); type = d.type(); shndx = d.section();
                    value = d.value(); size = d.size();
                }
                case PatchSymbol.TargetRelative t -> {
                    nameOffset = strtab.add(t.name()); type = t.type(); shndx = SHN_ABS;
                    value = t.value(); size = t.size();
                }
                case PatchSymbol.External e -> {
                    nameOffset = strtab.add(e.fileName()); type = e.type(); shndx = SHN_UNDEF;
                    bind = e.weak() ? STB_WEAK : STB_GLOBAL;
                    firstGlobal = Math.min(firstGlobal, e.index());
                }
            }
            sym.putInt(nameOffset);
            sym.put((byte) ((bind << 4) | (type & 0xf)));
            sym.put((byte) 0);
            sym.putShort((short) shndx);
            sym.putLong(value);
            sym.putLong(size);
        }
        sections.add(new Out(".symtab", SHT_SYMTAB, 0, 8, SYM_SIZE, symtabIndex + 1, firstGlobal, sym.array(),
                sym.capacity()));
        byte[] str = strtab.bytes();
        sections.add(new Out(".strtab", SHT_STRTAB, 0, 1, 0, 0, 0, str, str.length));
        int shstrtabIndex = sections.size() + 1;
        int[] nameOffsets = new int[sections.size() + 1];
        for (int i = 0; i < sections.size(); i++) {
            nameOffsets[i] = shstrtab.add(sections.get(i).name());
        }
        nameOffsets[sections.size()] = shstrtab.add(".shstrtab");
        byte[] shstr = shstrtab.bytes();
        sections.add(new Out(".shstrtab", SHT_STRTAB, 0, 1, 0, 0, 0, shstr, shstr.length));

        var body = new ByteArrayOutputStream();
        body.writeBytes(new byte[EHDR_SIZE]);
        long[] offsets = new long[sections.size()];
        for (int i = 0; i < sections.size(); i++) {
            var s = sections.get(i);
            pad(body, s.align());
            offsets[i] = body.size();
            if (s.type() != SHT_NOBITS) {
                body.writeBytes(s.bytes());
            }
        }
        pad(body, 8);
        long shoff = body.size();
        var shdrs = le(SHDR_SIZE * (sections.size() + 1));
        shdrs.position(SHDR_SIZE);
        for (int i = 0; i < sections.size(); i++) {
            var s = sections.get(i);
            shdrs.putInt(nameOffsets[i]);
            shdrs.putInt(s.type());
            shdrs.putLong(s.flags());
            shdrs.putLong(0);
            shdrs.putLong(offsets[i]);
            shdrs.putLong(s.size());
            shdrs.putInt(s.link());
            shdrs.putInt(s.info());
            shdrs.putLong(s.align());
            shdrs.putLong(s.entsize());
        }
        body.writeBytes(shdrs.array());
        byte[] file = body.toByteArray();
        var h = ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN);
        h.put(new byte[] {0x7f, 'E', 'L', 'F', 2 /* ELFCLASS64 */, 1 /* LSB */, 1 /* EV_CURRENT */, 0});
        h.position(16);
        h.putShort((short) ET_REL);
        h.putShort((short) EM_X86_64);
        h.putInt(1);
        h.putLong(0);            // e_entry
        h.putLong(0);            // e_phoff
        h.putLong(shoff);
        h.putInt(0);             // e_flags
        h.putShort((short) EHDR_SIZE);
        h.putShort((short) 0);   // e_phentsize
        h.putShort((short) 0);   // e_phnum
        h.putShort((short) SHDR_SIZE);
        h.putShort((short) (sections.size() + 1));
        h.putShort((short) shstrtabIndex);
        return file;
    }

    private static ByteBuffer le(int size) {
        return ByteBuffer.allocate(size).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static void pad(ByteArrayOutputStream out, long align) {
        while (align > 1 && out.size() % align != 0) {
            out.write(0);
        }
    }

    /** An ELF string table: offset 0 is the empty string; equal names share one entry. */
    private static final class StringTable {
        private final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        private final java.util.Map<String, Integer> offsets = new java.util.HashMap<>();

        StringTable() {
            bytes.write(0);
            offsets.put("", 0);
        }

        int add(String s) {
            return offsets.computeIfAbsent(s, k -> {
                int at = bytes.size();
                bytes.writeBytes(k.getBytes(StandardCharsets.UTF_8));
                bytes.write(0);
                return at;
            });
        }

        byte[] bytes() {
            return bytes.toByteArray();
        }
    }
}
