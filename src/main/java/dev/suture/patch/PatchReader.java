package dev.suture.patch;

import static dev.suture.elf.ElfConstants.*;

import dev.suture.SutureException;
import dev.suture.elf.ElfFile;
import dev.suture.elf.Section;
import dev.suture.elf.Symbol;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Decodes a patch file (docs/patch-format.md) into a {@link PatchFile}: the ELF structure here, the text of
 * {@code .suture.info} in {@link InfoSection}, the rules of section 6 in {@link PatchRules}.
 */
final class PatchReader {
    /** Patch files are small; a larger file is refused before it is read into memory. */
    static final long MAX_FILE_SIZE = 64L << 20;
    private static final Set<Integer> SYMBOL_TYPES = Set.of(STT_NOTYPE, STT_OBJECT, STT_FUNC,
            STT_SECTION, STT_TLS);

    private PatchReader() {}

    static PatchFile read(Path path) {
        byte[] bytes;
        try {
            // a FIFO or /dev/zero would be read forever, a huge file into memory
            if (Files.exists(path) && !Files.isRegularFile(path)) {
                throw new SutureException(SutureException.Kind.BAD_INPUT, path + ": not a regular file");
            }
            long size = Files.exists(path) ? Files.size(path) : 0;
            if (size > MAX_FILE_SIZE) {
                throw new SutureException(SutureException.Kind.BAD_INPUT, path + ": " + size
                        + " bytes, more than a patch file may have (" + MAX_FILE_SIZE + ")");
            }
            bytes = Files.readAllBytes(path);
        } catch (NoSuchFileException e) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, path + ": no such patch file");
        } catch (IOException e) {
            throw new SutureException(SutureException.Kind.BAD_INPUT, path + ": cannot read it: " + e.getMessage());
        }
        return parse(path.toString(), bytes);
    }

    static PatchFile parse(String name, byte[] bytes) {
        ElfFile elf = ElfFile.parse(name, bytes);
        // The signature is checked first: when a signed file no longer reads as a patch, the change after
        // signing is the story to tell, not the symptom it caused.
        var signature = SignatureSection.read(name, bytes, elf);
        try {
            return parse(name, elf, signature);
        } catch (SutureException e) {
            if (signature.isPresent() && !signature.get().valid()) {
                throw new PatchTrustException(name + ": carries a signature by " + signature.get() + " that does not"
                        + " verify: the file was changed after it was signed (and no longer reads as a patch: "
                        + e.getMessage() + "). Do not use this copy; get the original file, or rebuild and sign the"
                        + " patch again.");
            }
            throw e;
        }
    }

    private static PatchFile parse(String name, ElfFile elf, Optional<PatchSignature> signature) {
        var h = elf.header();
        if (h.e_type() != ET_REL || h.e_machine() != EM_X86_64) {
            throw new PatchFormatException(name, "not an x86-64 relocatable ELF object (ET_REL, EM_X86_64)");
        }
        var infoSection = elf.section(PatchFile.INFO_SECTION)
                .orElseThrow(() -> new PatchFormatException(name, "no " + PatchFile.INFO_SECTION + " section"));
        String infoText = infoText(name, elf, infoSection);
        var content = contentSections(name, elf, infoSection);
        var symbols = symbols(name, elf, content);
        var relocations = relocations(name, elf, content, symbols.byIndex());
        var sections = new ArrayList<PatchSection>();
        for (var s : content.byIndex().values().stream().sorted((a, b) -> a.index() - b.index()).toList()) {
            sections.add(new PatchSection(s.index(), s.name(), s.sh_type(), s.sh_flags(), s.sh_addralign(),
                    s.sh_entsize(), s.sh_size(), s.isNobits() ? new byte[0] : elf.bytes(s),
                    relocations.getOrDefault(s.index(), List.of())));
        }
        var decoded = InfoSection.decode(name, infoText, symbols.byIndex());
        var patch = new PatchFile(name, decoded.info(), sections, symbols.list(), decoded.replaced(),
                decoded.added(), signature.orElse(null));
        PatchRules.check(patch);
        return patch;
    }

    private static String infoText(String name, ElfFile elf, Section infoSection) {
        if (infoSection.sh_type() != SHT_PROGBITS) {
            throw new PatchFormatException(name, PatchFile.INFO_SECTION + " is " + infoSection.typeName()
                    + ", not PROGBITS");
        }
        try {
            return StandardCharsets.UTF_8.newDecoder().decode(ByteBuffer.wrap(elf.bytes(infoSection))).toString();
        } catch (CharacterCodingException e) {
            throw new PatchFormatException(name, PatchFile.INFO_SECTION + " is not valid UTF-8");
        }
    }

    /** The sections a patch carries, by ELF index, and the index of the one symbol table. */
    private record Content(Map<Integer, Section> byIndex, int symtabIndex) {}

    /** Content sections keep their ELF index; RELA, the tables and the metadata are not content. */
    private static Content contentSections(String name, ElfFile elf, Section infoSection) {
        var sectionByIndex = new HashMap<Integer, Section>();
        int symtabIndex = -1;
        long contentBytes = 0;
        for (var s : elf.sections()) {
            if (s.sh_type() == SHT_SYMTAB) {
                if (symtabIndex >= 0) {
                    throw new PatchFormatException(name, "more than one symbol table (sections " + symtabIndex
                            + " and " + s.index() + ")");
                }
                symtabIndex = s.index();
            }
            boolean content = s.index() != 0 && s.sh_type() != SHT_RELA && s.sh_type() != SHT_SYMTAB
                    && s.sh_type() != SHT_STRTAB && s.index() != infoSection.index()
                    && !s.name().equals(PatchFile.SIGNATURE_SECTION);
            if (content) {
                if (s.sh_type() == SHT_REL || s.sh_type() == SHT_GROUP || s.sh_type() == SHT_DYNSYM) {
                    throw new PatchFormatException(name, "section " + s.name() + " has a type a patch cannot have ("
                            + s.typeName() + ")");
                }
                if (s.sh_size() < 0 || s.sh_size() > PatchRules.MAX_SECTION_SIZE) {
                    throw new PatchFormatException(name, "section " + s.name() + " claims 0x"
                            + Long.toHexString(s.sh_size()) + " bytes, more than a patch section may have (0x"
                            + Long.toHexString(PatchRules.MAX_SECTION_SIZE) + ")");
                }
                // Overlapping sections would each be copied: together they may not claim more than the file holds.
                contentBytes += s.isNobits() ? 0 : s.sh_size();
                if (contentBytes > elf.size()) {
                    throw new PatchFormatException(name, "the content sections together claim more bytes than the"
                            + " file has (they overlap)");
                }
                sectionByIndex.put(s.index(), s);
            }
        }
        return new Content(sectionByIndex, symtabIndex);
    }

    /** Every symbol but the null one, in .symtab order, and by index. */
    private record Symbols(List<PatchSymbol> list, Map<Integer, PatchSymbol> byIndex) {}

    private static Symbols symbols(String name, ElfFile elf, Content content) {
        var sectionByIndex = content.byIndex();
        var elfSymbols = elf.symbols();
        var symbols = new ArrayList<PatchSymbol>();
        var byIndex = new HashMap<Integer, PatchSymbol>();
        for (Symbol s : elfSymbols) {
            if (s.index() == 0) {
                continue;
            }
            PatchSymbol ps;
            if (!SYMBOL_TYPES.contains(s.type())) {
                throw new PatchFormatException(name, "symbol " + s.name() + " (index " + s.index() + ") has type "
                        + s.typeName() + "; patch symbols are NOTYPE, OBJECT, FUNC, TLS or SECTION");
            }
            if (s.type() == STT_SECTION) {
                if (!sectionByIndex.containsKey(s.st_shndx())) {
                    throw new PatchFormatException(name, "section symbol " + s.index() + " names section "
                            + s.st_shndx() + ", which is not a patch section");
                }
                ps = new PatchSymbol.SectionSymbol(s.index(), sectionByIndex.get(s.st_shndx()).name(), s.st_shndx());
            } else if (s.st_shndx() == SHN_ABS) {
                ps = new PatchSymbol.TargetRelative(s.index(), s.name(), s.type(), s.st_value(), s.st_size());
            } else if (s.st_shndx() == SHN_UNDEF) {
                if (s.isLocal()) {
                    throw new PatchFormatException(name, "undefined symbol " + s.name() + " is local");
                }
                int at = s.name().indexOf('@');
                if (at == 0 || at == s.name().length() - 1 || s.name().indexOf('@', at + 1) >= 0
                        || !PatchRules.NAME.matcher(s.name()).matches()) {
                    throw new PatchFormatException(name, "external symbol " + s.index() + " has the name "
                            + PatchRules.quote(s.name()) + ", not NAME or NAME@VERSION");
                }
                ps = new PatchSymbol.External(s.index(), at < 0 ? s.name() : s.name().substring(0, at),
                        at < 0 ? null : s.name().substring(at + 1), s.type(), s.isWeak());
            } else if (sectionByIndex.containsKey(s.st_shndx())) {
                ps = new PatchSymbol.Defined(s.index(), s.name(), s.type(), s.st_shndx(), s.st_value(), s.st_size());
            } else {
                throw new PatchFormatException(name, "symbol " + s.name() + " (index " + s.index()
                        + ") is in section " + s.st_shndx() + ", which is not a patch section");
            }
            symbols.add(ps);
            byIndex.put(ps.index(), ps);
        }
        return new Symbols(symbols, byIndex);
    }

    /** The relocations of each content section, by its index. */
    private static Map<Integer, List<PatchRelocation>> relocations(String name, ElfFile elf, Content content,
                                                                  Map<Integer, PatchSymbol> byIndex) {
        var sectionByIndex = content.byIndex();
        int symtabIndex = content.symtabIndex();
        var relocationsBySection = new HashMap<Integer, List<PatchRelocation>>();
        for (var rs : elf.relocationSections()) {
            if (!rs.isRela()) {
                throw new PatchFormatException(name, rs.section().name() + " is SHT_REL; patches use SHT_RELA");
            }
            if (rs.target() == null || !sectionByIndex.containsKey(rs.target().index())) {
                throw new PatchFormatException(name, rs.section().name() + " applies to no patch section");
            }
            if (rs.section().sh_link() != symtabIndex) {
                throw new PatchFormatException(name, rs.section().name() + " takes its symbols from section "
                        + rs.section().sh_link() + ", not from .symtab");
            }
            var list = relocationsBySection.computeIfAbsent(rs.target().index(), _ -> new ArrayList<>());
            for (var r : rs.relocations()) {
                PatchSymbol sym = byIndex.get(r.symbolIndex());
                if (sym == null) {
                    throw new PatchFormatException(name, rs.section().name() + ": relocation at 0x"
                            + Long.toHexString(r.r_offset()) + " names symbol " + r.symbolIndex()
                            + ", which is not a patch symbol");
                }
                list.add(new PatchRelocation(r.r_offset(), r.type(), sym, r.r_addend()));
            }
        }
        return relocationsBySection;
    }
}
