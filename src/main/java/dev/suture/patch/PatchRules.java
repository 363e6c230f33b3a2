package dev.suture.patch;

import static dev.suture.elf.ElfConstants.STT_FUNC;
import static dev.suture.elf.ElfConstants.STT_NOTYPE;
import static dev.suture.elf.ElfConstants.STT_TLS;

import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Pattern;

/**
 * The rules of docs/patch-format.md section 6 that a patch's structure alone does not guarantee: every patch,
 * read from a file or built in memory, passes them before anyone sees it.
 */
final class PatchRules {
    /** No section of a patch may claim more (NOBITS included): the binder's region is far smaller anyway. */
    static final long MAX_SECTION_SIZE = 1L << 30;
    /** Replaced functions larger than this are not plausible; their hash is checked by reading them whole. */
    static final long MAX_FUNCTION_SIZE = 16L << 20;
    /** The end of the x86-64 user address space (47 bits): link-time addresses of a target lie below it. */
    static final long USER_SPACE_END = 1L << 47;
    /** Names go into the region header as NUL-terminated strings: no white space, no control characters. */
    static final Pattern NAME = Pattern.compile("[^\\s\\p{Cntrl}]{1,4096}");
    private static final Pattern ID = Pattern.compile("[A-Za-z0-9._+-]{1,128}");
    private static final Pattern BUILD_ID = Pattern.compile("[0-9a-f]{2,128}");
    private static final Pattern SHA256 = Pattern.compile("[0-9a-f]{64}");

    private final PatchFile patch;
    /** The patch's sections by their ELF index. */
    private final Map<Integer, PatchSection> sectionIndexes = new HashMap<>();

    private PatchRules(PatchFile patch) {
        this.patch = patch;
        patch.sections().forEach(s -> sectionIndexes.put(s.index(), s));
    }

    /** A value from the file for a message: quoted, and cut short (a hostile file's fields can be megabytes). */
    static String quote(String value) {
        return "\"" + (value.length() <= 80 ? value : value.substring(0, 60) + "...") + "\"";
    }

    /**
     * Checks every rule of docs/patch-format.md section 6 that the structure alone does not guarantee; the first
     * broken rule is a {@link PatchFormatException}.
     */
    static void check(PatchFile patch) {
        new PatchRules(patch).check();
    }

    /** The first broken rule, in this order, is the one reported. */
    private void check() {
        checkIdentity();
        checkSections();
        checkSymbols();
        checkReplaced();
        checkAdded();
    }

    private void checkIdentity() {
        var info = patch.info();
        if (!ID.matcher(info.id()).matches()) {
            fail("patch id " + quote(info.id()) + " is not 1-128 characters of A-Z a-z 0-9 . _ + -");
        }
        if (!BUILD_ID.matcher(info.targetBuildId()).matches() || info.targetBuildId().length() % 2 != 0) {
            fail("target build-id " + quote(info.targetBuildId()) + " is not lowercase hex bytes");
        }
        if (!NAME.matcher(info.targetName()).matches()) {
            fail("target name " + quote(info.targetName()) + " is empty or contains white space");
        }
    }

    /** Sizes, alignment and permissions; each relocation's type and place, then what it refers to. */
    private void checkSections() {
        for (var s : patch.sections()) {
            if (s.size() < 0 || s.size() > MAX_SECTION_SIZE) {
                fail("section " + s.name() + " claims 0x" + Long.toHexString(s.size()) + " bytes");
            }
            if (!s.isNobits() && s.bytes().length != s.size()) {
                fail("section " + s.name() + " holds " + s.bytes().length + " bytes but its size is " + s.size());
            }
            if (s.align() < 1 || Long.bitCount(s.align()) != 1) {
                fail("section " + s.name() + " has alignment " + s.align() + ", not a power of two");
            }
            // The binder maps writable sections without execute permission, and NOBITS is zeroes: code in either
            // would crash the target at its first call.
            if (s.isExecutable() && (s.isWritable() || s.isNobits())) {
                fail("section " + s.name() + " is executable and " + (s.isNobits() ? "NOBITS" : "writable")
                        + "; code goes in a read-only PROGBITS section");
            }
            for (var r : s.relocations()) {
                checkRelocation(s, r);
            }
        }
        for (var s : patch.sections()) {
            for (var r : s.relocations()) {
                checkTarget(s, r);
            }
        }
    }

    private void checkSymbols() {
        for (var sym : patch.symbols()) {
            if (sym instanceof PatchSymbol.Defined d) {
                var s = sectionIndexes.get(d.section());
                if (s == null) {
                    fail("symbol " + d.name() + " is defined in section " + d.section() + ", not a patch section");
                } else if (d.value() < 0 || d.size() < 0 || d.value() > s.size() || d.size() > s.size() - d.value()) {
                    fail("symbol " + d.name() + " lies outside its section " + s.name());
                }
            }
        }
    }

    private void checkReplaced() {
        var names = new HashSet<String>();
        var ranges = new TreeMap<Long, ReplacedFunction>();
        for (var r : patch.replaced()) {
            if (!NAME.matcher(r.symbol()).matches()) {
                fail("replaced function name " + quote(r.symbol()) + " is empty or contains white space");
            }
            if (!names.add(r.symbol())) {
                fail("replaced function " + r.symbol() + " is listed twice");
            }
            if (!SHA256.matcher(r.sha256()).matches()) {
                fail("hash of " + r.symbol() + " is not 64 lowercase hex digits");
            }
            if (!r.part() && r.size() < 5) {
                fail("replaced function " + r.symbol() + " is " + r.size() + " bytes, shorter than a jmp rel32");
            }
            if (r.size() < 1 || r.size() > MAX_FUNCTION_SIZE) {
                fail("replaced function " + r.symbol() + " claims 0x" + Long.toHexString(r.size())
                        + " bytes (at most 0x" + Long.toHexString(MAX_FUNCTION_SIZE) + ")");
            }
            if (r.targetAddress() <= 0 || r.targetAddress() > USER_SPACE_END - r.size()) {
                fail("replaced function " + r.symbol() + " at 0x" + Long.toHexString(r.targetAddress())
                        + " is not in the user address space");
            }
            // No two replaced functions may share a byte: each jump and each hash covers its own code.
            var below = ranges.floorEntry(r.targetAddress());
            var above = ranges.ceilingEntry(r.targetAddress());
            var clash = below != null && below.getKey() + below.getValue().size() > r.targetAddress() ? below
                    : above != null && above.getKey() < r.targetAddress() + r.size() ? above : null;
            if (clash != null) {
                fail("replaced functions " + clash.getValue().symbol() + " and " + r.symbol() + " overlap at 0x"
                        + Long.toHexString(Math.max(clash.getKey(), r.targetAddress())));
            }
            ranges.put(r.targetAddress(), r);
            if (r.patchSymbol().type() != STT_FUNC) {
                fail("the replacement of " + r.symbol() + " (symbol " + r.patchSymbol().index() + ") is not STT_FUNC");
            }
            var s = sectionIndexes.get(r.patchSymbol().section());
            if (s == null || !s.isExecutable() || !s.isAlloc()) {
                fail("the replacement of " + r.symbol() + " is not in an allocated executable section");
            }
            if (r.patchSymbol().value() >= s.size()) {
                fail("the replacement of " + r.symbol() + " starts at the end of " + s.name() + ", past its code");
            }
        }
    }

    private void checkAdded() {
        for (var a : patch.added()) {
            var s = sectionIndexes.get(a.symbol().section());
            if (s == null || !s.isAlloc()) {
                fail("new symbol " + a.symbol().name() + " is not in an allocated section");
            }
            if (a.kind() == NewSymbol.Kind.FUNCTION && !s.isExecutable()) {
                fail("new function " + a.symbol().name() + " is not in an executable section");
            }
        }
    }

    /** A relocation's type, and its place within its section. */
    private void checkRelocation(PatchSection s, PatchRelocation r) {
        if (!PatchRelocation.isSupported(r.type())) {
            fail(s.name() + ": relocation " + r.typeName() + " at 0x" + Long.toHexString(r.offset())
                    + " is not a type patches may carry");
        }
        if (s.isNobits()) {
            fail(s.name() + ": a NOBITS section cannot have relocations");
        }
        int width = PatchRelocation.width(r.type());
        if (r.offset() < 0 || r.offset() > s.size() - width) {
            fail(s.name() + ": relocation at 0x" + Long.toHexString(r.offset()) + " lies outside the section");
        }
    }

    /**
     * What a relocation refers to: a patch section that is loaded (when the relocated section is), and a symbol of
     * the kind its type needs — the TLS types a thread-local variable of the target or another module, the others
     * anything with an address.
     */
    private void checkTarget(PatchSection s, PatchRelocation r) {
        String where = s.name() + ": relocation " + r.typeName() + " at 0x" + Long.toHexString(r.offset());
        int section = switch (r.symbol()) {
            case PatchSymbol.Defined d -> d.section();
            case PatchSymbol.SectionSymbol ss -> ss.section();
            default -> -1;
        };
        if (section >= 0 && s.isAlloc()) {
            var to = sectionIndexes.get(section);
            if (to == null || !to.isAlloc()) {
                fail(where + " refers to a section that is not loaded");
            }
        }
        boolean tlsType = PatchRelocation.isTls(r.type());
        boolean tlsSymbol = switch (r.symbol()) {
            case PatchSymbol.TargetRelative t -> t.type() == STT_TLS;
            case PatchSymbol.External e -> e.type() == STT_TLS;
            default -> false;
        };
        if (tlsType && !(tlsSymbol || r.symbol() instanceof PatchSymbol.External e && e.type() == STT_NOTYPE)) {
            fail(where + " is a TLS relocation against " + r.symbol().name() + ", which is not a thread-local"
                    + " variable of the target or of another module");
        }
        if (!tlsType && tlsSymbol) {
            fail(where + " takes the address of the thread-local variable " + r.symbol().name()
                    + ", which has none");
        }
    }

    private void fail(String problem) {
        throw new PatchFormatException(patch.file(), problem);
    }
}
