package dev.suture.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.suture.elf.ElfConstants;
import dev.suture.elf.ElfFile;
import dev.suture.elf.Note;
import dev.suture.elf.ProgramHeader;
import dev.suture.elf.RelocationSection;
import dev.suture.elf.Section;
import dev.suture.elf.Symbol;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.StringJoiner;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code suture inspect FILE}: what an ELF file is and holds (type, build-id, interpreter, needed libraries,
 * segments, sections, TLS, symbol counts), optionally every symbol and relocation, as text or JSON. Files with
 * more to say (patch files) add an {@link InspectPart}.
 */
@Command(name = "inspect", header = "Shows an ELF file or a patch file.", mixinStandardHelpOptions = true,
        description = "Shows what an ELF file (executable, shared library, object, patch file) is and holds.")
public final class InspectCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Parameters(paramLabel = "FILE", description = "The ELF file to inspect.")
    Path file;

    @Option(names = "--symbols", description = "List every symbol (name, value, size, type, binding, section, version).")
    boolean symbols;

    @Option(names = "--relocs", description = "List every relocation (offset, type, symbol, addend).")
    boolean relocs;

    @Option(names = "--trust", paramLabel = "DIR",
            description = {"A directory of trusted public keys (*.pub), or one .pub file; repeatable. A signed",
                    "patch's signer is named as its key's .pub file there; otherwise the name is shown as the",
                    "file's claim. Default: $SUTURE_TRUST_DIR, else " + TrustSources.SYSTEM_TRUST_DIR + " if it",
                    "exists. Like apply, refuses (exit 5) one that is not owned by root or writable by others."})
    List<Path> trust;

    @Mixin
    JsonOutput json;

    /** The extra parts, in output order; a new kind of file adds its part here. */
    List<InspectPart> parts() {
        return List.of(new PatchInspectPart(() -> TrustSources.load(trust)));
    }

    @Override
    public Integer call() throws Exception {
        var out = spec.commandLine().getOut();
        try (var elf = ElfFile.open(file)) {
            if (json.enabled()) {
                JsonOutput.print(out, document(elf));
            } else {
                // the whole text first: a file that fails halfway (a truncated patch) prints nothing but the error
                var text = new StringWriter();
                printText(elf, new PrintWriter(text));
                out.print(text);
            }
        }
        out.flush();
        return ExitCodes.OK;
    }

    // ---- the facts both renderings share ----

    static String kind(ElfFile elf) {
        return switch (elf.header().e_type()) {
            case ElfConstants.ET_REL -> "relocatable object";
            case ElfConstants.ET_EXEC -> "executable";
            case ElfConstants.ET_DYN -> elf.isPie() ? "position-independent executable" : "shared library";
            case ElfConstants.ET_CORE -> "core dump";
            default -> "ELF type " + elf.header().e_type();
        };
    }

    static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }

    /** The GNU properties (x86 features, ISA levels), as the elf layer describes them. */
    static List<String> properties(ElfFile elf) {
        return elf.gnuProperties().stream().map(Note.GnuProperty::describe).toList();
    }

    /** The section name a symbol is defined in, or UND/ABS/COM. */
    static String sectionName(ElfFile elf, Symbol s) {
        return elf.sectionOf(s).map(Section::name).orElse(s.sectionIndexName());
    }

    /** How a relocation names its symbol: versioned name, the section for a section symbol, or "-". */
    static String symbolName(ElfFile elf, Symbol s) {
        if (s == null) {
            return "-";
        }
        if (s.isSection() && s.name().isEmpty()) {
            return elf.sectionOf(s).map(Section::name).orElse("-");
        }
        return s.versionedName();
    }

    // ---- text ----

    private void printText(ElfFile elf, PrintWriter out) {
        var h = elf.header();
        out.println(elf.name() + ": ELF64 " + kind(elf) + ", " + h.machineName());
        var facts = new TextTable("", "");
        facts.row("build-id", elf.buildId().orElse("none"));
        elf.interpreter().ifPresent(i -> facts.row("interpreter", i));
        elf.soname().ifPresent(s -> facts.row("soname", s));
        var needed = elf.needed();
        if (!needed.isEmpty()) {
            facts.row("needed", String.join(", ", needed));
        }
        elf.runpath().ifPresent(r -> facts.row("runpath", r));
        if (h.e_type() != ElfConstants.ET_REL) {
            facts.row("entry", hex(h.e_entry()));
        }
        elf.debugLink().ifPresent(d -> facts.row("debuglink", d.file() + " (crc " + hex(Integer.toUnsignedLong(d.crc())) + ")"));
        for (String p : properties(elf)) {
            facts.row("property", p);
        }
        elf.tls().ifPresentOrElse(
                t -> facts.row("TLS", "template at " + hex(t.p_vaddr()) + ", " + t.p_filesz() + " bytes initialized, "
                        + t.p_memsz() + " bytes total, align " + t.p_align()),
                () -> facts.row("TLS", "none"));
        var defined = new StringJoiner(", ");
        for (var v : elf.versionDefinitions()) {
            defined.add(v.isBase() ? v.name() + " (base)" : v.name());
        }
        if (defined.length() > 0) {
            facts.row("versions", "defines " + defined);
        }
        var byFile = new LinkedHashMap<String, StringJoiner>();
        for (var r : elf.versionRequirements()) {
            byFile.computeIfAbsent(r.file(), f -> new StringJoiner(", ", f + ": ", "")).add(r.name());
        }
        byFile.values().forEach(v -> facts.row("versions", "needs " + v));
        facts.row("symbols", symbolCount(elf.symbols(), ".symtab") + ", " + symbolCount(elf.dynamicSymbols(), ".dynsym"));
        var relocCounts = new StringJoiner(", ");
        for (var rs : elf.relocationSections()) {
            relocCounts.add(rs.section().name() + " " + rs.relocations().size());
        }
        facts.row("relocations", relocCounts.length() == 0 ? "none" : relocCounts.toString());
        printFacts(facts, out);

        for (var part : parts()) {
            if (part.appliesTo(elf)) {
                out.println();
                part.text(elf, out);
            }
        }

        if (!elf.programHeaders().isEmpty()) {
            out.println();
            out.println("Segments (" + elf.programHeaders().size() + "):");
            var t = new TextTable(">#", "type", "flags", ">offset", ">vaddr", ">filesz", ">memsz", ">align");
            for (ProgramHeader p : elf.programHeaders()) {
                t.row(p.index(), p.typeName(), p.flagString().replace(' ', '-'), hex(p.p_offset()), hex(p.p_vaddr()),
                        hex(p.p_filesz()), hex(p.p_memsz()), hex(p.p_align()));
            }
            t.print(out, "  ");
        }
        if (!elf.sections().isEmpty()) {
            out.println();
            out.println("Sections (" + elf.sections().size() + "):");
            var t = new TextTable(">#", "name", "type", "flags", ">addr", ">offset", ">size", ">align", ">link",
                    ">info", ">entsize");
            for (Section s : elf.sections()) {
                t.row(s.index(), s.name(), s.typeName(), s.flagString(), hex(s.sh_addr()), hex(s.sh_offset()),
                        hex(s.sh_size()), s.sh_addralign(), s.sh_link(), s.sh_info(), s.sh_entsize());
            }
            t.print(out, "  ");
        }
        if (symbols) {
            printSymbols(elf, ".symtab", elf.symbols(), out);
            printSymbols(elf, ".dynsym", elf.dynamicSymbols(), out);
        }
        if (relocs) {
            for (var rs : elf.relocationSections()) {
                printRelocations(elf, rs, out);
            }
        }
    }

    private static void printFacts(TextTable facts, PrintWriter out) {
        var buffer = new StringWriter();
        var pw = new PrintWriter(buffer);
        facts.print(pw, "  ");
        pw.flush();
        // Skip the (empty) header line of the two-column table.
        buffer.toString().lines().skip(1).forEach(out::println);
    }

    private static String symbolCount(List<Symbol> syms, String table) {
        if (syms.isEmpty()) {
            return "no " + table;
        }
        long undefined = syms.stream().filter(s -> s.index() > 0 && s.isUndefined()).count();
        return table + " " + (syms.size() - 1) + " (" + undefined + " undefined)";
    }

    private static void printSymbols(ElfFile elf, String table, List<Symbol> syms, PrintWriter out) {
        if (syms.isEmpty()) {
            return;
        }
        out.println();
        out.println("Symbols in " + table + " (" + syms.size() + "):");
        var t = new TextTable(">#", ">value", ">size", "type", "bind", "vis", "section", "name", "version");
        for (Symbol s : syms) {
            String version = s.version() == null ? "" : (s.versionNeeded() ? "needs " : s.versionHidden() ? "hidden " : "")
                    + s.version();
            t.row(s.index(), hex(s.st_value()), s.st_size(), s.typeName(), s.bindName(), s.visibilityName(),
                    sectionName(elf, s), s.name(), version);
        }
        t.print(out, "  ");
    }

    private static void printRelocations(ElfFile elf, RelocationSection rs, PrintWriter out) {
        out.println();
        out.println("Relocations in " + rs.section().name() + (rs.target() == null ? "" : " for " + rs.target().name())
                + " (" + rs.relocations().size() + "):");
        var t = new TextTable(">offset", "type", "symbol", ">addend");
        for (var r : rs.relocations()) {
            t.row(hex(r.r_offset()), r.typeName(), symbolName(elf, r.symbol()),
                    rs.isRela() ? Long.toString(r.r_addend()) : "in place");
        }
        t.print(out, "  ");
    }

    // ---- JSON ----

    private ObjectNode document(ElfFile elf) {
        var mapper = new ObjectMapper();
        var d = mapper.createObjectNode();
        var h = elf.header();
        d.put("file", elf.name());
        d.put("type", h.typeName());
        d.put("kind", kind(elf));
        d.put("machine", h.machineName());
        d.put("entry", hex(h.e_entry()));
        d.put("buildId", elf.buildId().orElse(null));
        d.put("interpreter", elf.interpreter().orElse(null));
        d.put("soname", elf.soname().orElse(null));
        var needed = d.putArray("needed");
        elf.needed().forEach(needed::add);
        elf.debugLink().ifPresentOrElse(link -> {
            var l = d.putObject("debugLink");
            l.put("file", link.file());
            l.put("crc", hex(Integer.toUnsignedLong(link.crc())));
        }, () -> d.putNull("debugLink"));
        var props = d.putArray("properties");
        properties(elf).forEach(props::add);
        elf.tls().ifPresentOrElse(t -> {
            var o = d.putObject("tls");
            o.put("vaddr", hex(t.p_vaddr()));
            o.put("filesz", t.p_filesz());
            o.put("memsz", t.p_memsz());
            o.put("align", t.p_align());
        }, () -> d.putNull("tls"));
        var defs = d.putArray("versionDefinitions");
        for (var v : elf.versionDefinitions()) {
            var o = defs.addObject();
            o.put("index", v.index());
            o.put("name", v.name());
            o.put("base", v.isBase());
            var parents = o.putArray("parents");
            v.parents().forEach(parents::add);
        }
        var reqs = d.putArray("versionRequirements");
        for (var r : elf.versionRequirements()) {
            var o = reqs.addObject();
            o.put("file", r.file());
            o.put("name", r.name());
            o.put("index", r.index());
        }
        var counts = d.putObject("symbolCounts");
        counts.put("symtab", Math.max(0, elf.symbols().size() - 1));
        counts.put("dynsym", Math.max(0, elf.dynamicSymbols().size() - 1));

        var segs = d.putArray("segments");
        for (ProgramHeader p : elf.programHeaders()) {
            var o = segs.addObject();
            o.put("index", p.index());
            o.put("type", p.typeName());
            o.put("flags", p.flagString().replace(" ", ""));
            o.put("offset", hex(p.p_offset()));
            o.put("vaddr", hex(p.p_vaddr()));
            o.put("paddr", hex(p.p_paddr()));
            o.put("filesz", p.p_filesz());
            o.put("memsz", p.p_memsz());
            o.put("align", p.p_align());
        }
        var secs = d.putArray("sections");
        for (Section s : elf.sections()) {
            var o = secs.addObject();
            o.put("index", s.index());
            o.put("name", s.name());
            o.put("type", s.typeName());
            o.put("flags", s.flagString());
            o.put("addr", hex(s.sh_addr()));
            o.put("offset", hex(s.sh_offset()));
            o.put("size", s.sh_size());
            o.put("link", s.sh_link());
            o.put("info", s.sh_info());
            o.put("align", s.sh_addralign());
            o.put("entsize", s.sh_entsize());
        }
        var relocCounts = d.putObject("relocationCounts");
        for (var rs : elf.relocationSections()) {
            relocCounts.put(rs.section().name(), rs.relocations().size());
        }
        for (var part : parts()) {
            if (part.appliesTo(elf)) {
                part.json(elf, d);
            }
        }
        if (symbols) {
            var st = d.putObject("symbols");
            symbolsJson(elf, elf.symbols(), st.putArray("symtab"));
            symbolsJson(elf, elf.dynamicSymbols(), st.putArray("dynsym"));
        }
        if (relocs) {
            var all = d.putArray("relocations");
            for (var rs : elf.relocationSections()) {
                var o = all.addObject();
                o.put("section", rs.section().name());
                o.put("target", rs.target() == null ? null : rs.target().name());
                var list = o.putArray("entries");
                for (var r : rs.relocations()) {
                    var e = list.addObject();
                    e.put("offset", hex(r.r_offset()));
                    e.put("type", r.typeName());
                    e.put("symbol", r.symbol() == null ? null : symbolName(elf, r.symbol()));
                    if (rs.isRela()) {
                        e.put("addend", r.r_addend());
                    } else {
                        e.putNull("addend");
                    }
                }
            }
        }
        return d;
    }

    private static void symbolsJson(ElfFile elf, List<Symbol> syms, ArrayNode out) {
        for (Symbol s : syms) {
            var o = out.addObject();
            o.put("index", s.index());
            o.put("name", s.name());
            o.put("value", hex(s.st_value()));
            o.put("size", s.st_size());
            o.put("type", s.typeName());
            o.put("bind", s.bindName());
            o.put("visibility", s.visibilityName());
            o.put("section", sectionName(elf, s));
            o.put("version", s.version());
            if (s.version() != null) {
                o.put("versionHidden", s.versionHidden());
                o.put("versionNeeded", s.versionNeeded());
            }
        }
    }
}
