package dev.suture.patch;

/**
 * A symbol of the patch's {@code .symtab}, one of the four kinds of docs/patch-format.md section 3; {@code index}
 * is its index in the table.
 */
public sealed interface PatchSymbol {
    int index();

    String name();

    /** The STT_SECTION symbol of a patch section. */
    record SectionSymbol(int index, String name, int section) implements PatchSymbol {}

    /** Code or data carried by the patch: {@code value} is the offset in patch section {@code section}. */
    record Defined(int index, String name, int type, int section, long value, long size) implements PatchSymbol {}

    /**
     * A symbol of the target module itself: {@code value} is its link-time address (add the load bias), or for
     * STT_TLS its offset in the target's TLS template.
     */
    record TargetRelative(int index, String name, int type, long value, long size) implements PatchSymbol {}

    /** A symbol of another module, resolved at apply time; {@code version} is null when unknown. */
    record External(int index, String name, String version, int type, boolean weak) implements PatchSymbol {
        /** The name as stored in the file: {@code name@VERSION} or the plain name. */
        public String fileName() {
            return version == null ? name : name + "@" + version;
        }
    }
}
