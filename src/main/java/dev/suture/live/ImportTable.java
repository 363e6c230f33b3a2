package dev.suture.live;

import static dev.suture.elf.ElfConstants.R_X86_64_DTPMOD64;
import static dev.suture.elf.ElfConstants.R_X86_64_GLOB_DAT;
import static dev.suture.elf.ElfConstants.R_X86_64_IRELATIVE;
import static dev.suture.elf.ElfConstants.R_X86_64_JUMP_SLOT;
import static dev.suture.elf.ElfConstants.R_X86_64_TPOFF64;
import static dev.suture.elf.ElfConstants.SHT_DYNSYM;

import dev.suture.elf.ElfFile;
import dev.suture.elf.Relocation;
import dev.suture.elf.RelocationSection;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The GOT slots a module's dynamic relocations fill, by link-time address: the symbols it imports (JUMP_SLOT,
 * GLOB_DAT), its IRELATIVE slots (IFUNCs resolved at load), and the slots holding its TLS module id (DTPMOD64) and
 * thread-pointer offsets (TPOFF64). Reading a slot in the live process gives what the dynamic linker decided —
 * interposition, versions, IFUNC choice — which the binder reuses rather than guessing.
 */
final class ImportTable {
    /** One GOT slot: its link-time address, the relocation type that fills it, the symbol and addend. */
    record Slot(long address, int type, String symbol, String version, long addend) {}

    private final Map<String, List<Slot>> imports = new HashMap<>();
    private final Map<Long, Slot> irelative = new HashMap<>();
    private final List<Slot> moduleIds = new ArrayList<>();
    private final List<Slot> tpOffsets = new ArrayList<>();

    private ImportTable() {}

    static ImportTable of(ElfFile elf) {
        var t = new ImportTable();
        for (RelocationSection rs : elf.relocationSections()) {
            if (!rs.section().isAlloc() || !isDynamic(elf, rs)) {
                continue;
            }
            for (Relocation r : rs.relocations()) {
                String name = r.symbol() == null ? null : r.symbol().name();
                String version = r.symbol() == null ? null : r.symbol().version();
                var slot = new Slot(r.r_offset(), r.type(), name, version, r.r_addend());
                switch (r.type()) {
                    case R_X86_64_JUMP_SLOT, R_X86_64_GLOB_DAT -> {
                        if (name != null && !name.isEmpty()) {
                            t.imports.computeIfAbsent(name, k -> new ArrayList<>()).add(slot);
                        }
                    }
                    case R_X86_64_IRELATIVE -> t.irelative.put(r.r_addend(), slot);
                    case R_X86_64_DTPMOD64 -> t.moduleIds.add(slot);
                    case R_X86_64_TPOFF64 -> t.tpOffsets.add(slot);
                    default -> { }
                }
            }
        }
        return t;
    }

    /** Dynamic relocations are those whose symbols come from .dynsym (or that have none, e.g. IRELATIVE). */
    private static boolean isDynamic(ElfFile elf, RelocationSection rs) {
        int link = rs.section().sh_link();
        if (link == 0) {
            return true;
        }
        var linked = elf.sections().stream().filter(s -> s.index() == link).findFirst();
        return linked.isPresent() && linked.get().sh_type() == SHT_DYNSYM;
    }

    /**
     * The slot through which the module reaches {@code name}: version must match when both sides name one. A
     * GLOB_DAT slot is preferred for data, a JUMP_SLOT for calls (both hold the same final address).
     */
    Optional<Slot> imported(String name, String version, boolean forCall) {
        var slots = imports.get(name);
        if (slots == null) {
            return Optional.empty();
        }
        Slot best = null;
        for (Slot s : slots) {
            if (version != null && s.version() != null && !version.equals(s.version())) {
                continue;
            }
            boolean preferred = forCall ? s.type() == R_X86_64_JUMP_SLOT : s.type() == R_X86_64_GLOB_DAT;
            if (best == null || preferred) {
                best = s;
            }
        }
        return Optional.ofNullable(best);
    }

    /** The IRELATIVE slot whose resolver is at link-time address {@code resolver}. */
    Optional<Slot> irelative(long resolver) {
        return Optional.ofNullable(irelative.get(resolver));
    }

    /** A slot holding this module's own TLS module id (a DTPMOD64 for a local or the module's own symbol). */
    List<Slot> moduleIdSlots() {
        return moduleIds;
    }

    List<Slot> tpOffsetSlots() {
        return tpOffsets;
    }
}
