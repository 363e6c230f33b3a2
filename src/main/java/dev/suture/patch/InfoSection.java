package dev.suture.patch;

import static dev.suture.elf.ElfConstants.ET_DYN;
import static dev.suture.elf.ElfConstants.ET_EXEC;
import static dev.suture.patch.PatchFile.FORMAT_VERSION;
import static dev.suture.patch.PatchFile.INFO_SECTION;
import static dev.suture.patch.PatchFile.MAGIC;
import static dev.suture.patch.PatchRules.quote;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** The text of {@code .suture.info} (docs/patch-format.md section 4), both ways. */
final class InfoSection {
    private InfoSection() {}

    /** What the text says: the patch's identity and target, what it replaces and what it adds. */
    record Decoded(PatchInfo info, List<ReplacedFunction> replaced, List<NewSymbol> added) {}

    /** The text for {@code patch} (docs/patch-format.md section 4). */
    static String encode(PatchFile patch) {
        var info = patch.info();
        var sb = new StringBuilder();
        sb.append(MAGIC).append(' ').append(FORMAT_VERSION).append('\n');
        sb.append("id ").append(info.id()).append('\n');
        sb.append("target-build-id ").append(info.targetBuildId()).append('\n');
        sb.append("target-name ").append(info.targetName()).append('\n');
        sb.append("target-type ").append(info.targetTypeName()).append('\n');
        for (var r : patch.replaced()) {
            sb.append("replace ").append(r.symbol()).append(" 0x").append(Long.toHexString(r.targetAddress()))
                    .append(" 0x").append(Long.toHexString(r.size())).append(' ').append(r.sha256()).append(' ')
                    .append(r.patchSymbol().index()).append(r.part() ? " part" : "").append('\n');
        }
        for (var a : patch.added()) {
            sb.append(a.kind() == NewSymbol.Kind.FUNCTION ? "new-function " : "new-data ")
                    .append(a.symbol().index()).append('\n');
        }
        return sb.toString();
    }

    /** Decodes the text; symbol indexes name the patch's symbols ({@code byIndex}). */
    static Decoded decode(String name, String text, Map<Integer, PatchSymbol> byIndex) {
        if (!text.endsWith("\n")) {
            throw new PatchFormatException(name, INFO_SECTION + " does not end with a newline");
        }
        var header = new HashMap<String, String>();
        var replaced = new ArrayList<ReplacedFunction>();
        var added = new ArrayList<NewSymbol>();
        // Line by line, and at most 8 fields a line: a hostile text of millions of lines or spaces costs nothing.
        String body = text.substring(0, text.length() - 1);
        for (int i = 0, start = 0; start <= body.length(); i++) {
            int newline = body.indexOf('\n', start);
            int end = newline < 0 ? body.length() : newline;
            String line = body.substring(start, end);
            start = end + 1;
            if (i == 0) {
                if (!line.equals(MAGIC + " " + FORMAT_VERSION)) {
                    throw new PatchFormatException(name, INFO_SECTION + " starts with " + quote(line)
                            + ", expected \"" + MAGIC + " " + FORMAT_VERSION
                            + "\" (a patch of another format version?)");
                }
                continue;
            }
            String where = INFO_SECTION + " line " + (i + 1);
            var f = line.split(" ", 8);
            switch (f[0]) {
                case "id", "target-build-id", "target-name", "target-type" -> {
                    if (f.length != 2) {
                        throw new PatchFormatException(name, where + ": expected \"" + f[0] + " VALUE\"");
                    }
                    if (header.put(f[0], f[1]) != null) {
                        throw new PatchFormatException(name, where + ": " + f[0] + " given twice");
                    }
                }
                case "replace" -> {
                    if (f.length != 6 && !(f.length == 7 && f[6].equals("part"))) {
                        throw new PatchFormatException(name, where
                                + ": expected \"replace SYMBOL ADDRESS SIZE SHA256 PATCH-SYMBOL [part]\"");
                    }
                    var sym = patchSymbol(name, where, f[5], byIndex);
                    replaced.add(new ReplacedFunction(f[1], hex(name, where, f[2]), hex(name, where, f[3]), f[4],
                            sym, f.length == 7));
                }
                case "new-function", "new-data" -> {
                    if (f.length != 2) {
                        throw new PatchFormatException(name, where + ": expected \"" + f[0] + " PATCH-SYMBOL\"");
                    }
                    added.add(new NewSymbol(f[0].equals("new-function") ? NewSymbol.Kind.FUNCTION
                            : NewSymbol.Kind.DATA, patchSymbol(name, where, f[1], byIndex)));
                }
                default -> throw new PatchFormatException(name, where + ": unknown record " + quote(f[0]));
            }
        }
        for (String key : List.of("id", "target-build-id", "target-name", "target-type")) {
            if (!header.containsKey(key)) {
                throw new PatchFormatException(name, INFO_SECTION + " has no \"" + key + "\" record");
            }
        }
        String type = header.get("target-type");
        if (!type.equals("ET_EXEC") && !type.equals("ET_DYN")) {
            throw new PatchFormatException(name, "target-type is " + quote(type) + ", expected ET_EXEC or ET_DYN");
        }
        var info = new PatchInfo(FORMAT_VERSION, header.get("id"), header.get("target-build-id"),
                header.get("target-name"), type.equals("ET_EXEC") ? ET_EXEC : ET_DYN);
        return new Decoded(info, replaced, added);
    }

    private static PatchSymbol.Defined patchSymbol(String name, String where, String field,
                                                   Map<Integer, PatchSymbol> byIndex) {
        int index;
        try {
            index = Integer.parseInt(field);
        } catch (NumberFormatException e) {
            throw new PatchFormatException(name, where + ": patch symbol " + quote(field) + " is not a symbol index");
        }
        if (!(byIndex.get(index) instanceof PatchSymbol.Defined d)) {
            throw new PatchFormatException(name, where + ": symbol " + index + " is not a symbol the patch defines");
        }
        return d;
    }

    private static long hex(String name, String where, String field) {
        if (!field.startsWith("0x") || field.length() < 3 || field.length() > 18) {
            throw new PatchFormatException(name, where + ": " + quote(field) + " is not a 0x-prefixed hex number");
        }
        try {
            return Long.parseUnsignedLong(field.substring(2), 16);
        } catch (NumberFormatException e) {
            throw new PatchFormatException(name, where + ": " + quote(field) + " is not a 0x-prefixed hex number");
        }
    }
}
