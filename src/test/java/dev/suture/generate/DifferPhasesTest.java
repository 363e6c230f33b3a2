package dev.suture.generate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.suture.generate.DiffRequest.ObjectInput;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collection;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The diff engine's phases one by one, each on what the earlier ones returned (Differ.patch runs them in a row). */
class DifferPhasesTest {
    @TempDir
    Path dir;

    private static final String GREET = """
            #include <stdio.h>
            __attribute__((noinline)) void greet(const char *who) { printf("hello %s\\n", who); }
            __attribute__((noinline)) int untouched(int x) { return x * 7; }
            int main(void) { greet("world"); return untouched(1) == 0; }
            """;

    @Test
    void eachPhaseTakesWhatTheEarlierReturned() throws Exception {
        var b = new TwoBuilds(dir).file("greet.c", GREET, "hello %s", "goodbye %s");
        b.build();
        var originals = open(b.originals);
        var pairs = Differ.pairObjects(originals, open(b.patched));
        assertEquals(1, pairs.size());

        var changes = Differ.compare(pairs);
        assertEquals(List.of("greet"), names(changes.changedFunctions()));
        assertEquals(List.of(), changes.refusals());

        var resolver = new Resolver(TargetBinary.open(b.target), originals, pairs, changes);
        var replacement = Differ.verify(changes, resolver, List.of());
        assertEquals(List.of("greet"), names(replacement.replaced()));
        assertEquals(List.of(), Differ.checkDeployedMatchesOriginal(replacement.replaced(), resolver, false));

        var inclusion = Inclusion.of(changes, replacement.replaced(), pairs, resolver);
        var sections = inclusion.sections().stream().map(k -> k.object().section(k.index()).name()).toList();
        assertTrue(sections.contains(".text.greet"), sections.toString());
        assertTrue(sections.stream().anyMatch(s -> s.startsWith(".rodata")), "the new string: " + sections);
        assertTrue(sections.stream().noneMatch(s -> s.contains("untouched")), sections.toString());
        assertEquals(List.of(), names(inclusion.added()));

        var patch = PatchAssembly.assemble("phases", pairs, resolver, replacement.replaced(), inclusion);
        assertEquals("phases", patch.id());
        assertEquals(List.of("greet"), patch.replaced().stream().map(r -> r.symbol()).toList());
    }

    @Test
    void verifySaysWhenNothingChanged() throws Exception {
        var b = new TwoBuilds(dir).file("greet.c", GREET);
        b.build();
        var originals = open(b.originals);
        var pairs = Differ.pairObjects(originals, open(b.patched));
        var changes = Differ.compare(pairs);
        var resolver = new Resolver(TargetBinary.open(b.target), originals, pairs, changes);
        var e = assertThrows(DiffRefusedException.class, () -> Differ.verify(changes, resolver, List.of()));
        assertEquals(DiffRefusedException.Reason.NOTHING_CHANGED, e.reason());
    }

    @Test
    void objectsPairByKeyWhateverTheirPaths() throws Exception {
        var b = new TwoBuilds(dir).file("a.c", "int a(void) { return 1; }\n", "return 1", "return 2")
                .file("b.c", "int b(void) { return 1; }\nint main(void) { return b(); }\n");
        b.build();
        // keys swapped on purpose: each patched object pairs with the original of the same key, not path
        var originals = Differ.openObjects(List.of(new ObjectInput(b.originals.get(0), "x/one.o", null),
                new ObjectInput(b.originals.get(1), "x/two.o", null)));
        var patched = Differ.openObjects(List.of(new ObjectInput(b.patched.get(1), "x/two.o", null),
                new ObjectInput(b.patched.get(0), "x/one.o", null)));
        var pairs = Differ.pairObjects(originals, patched);
        assertEquals(2, pairs.size());
        for (var pair : pairs) {
            assertEquals(pair.original().path.getFileName(), pair.patched().path.getFileName());
        }
    }

    @Test
    void anObjectHeldInMemoryIsDiffedLikeItsFile() throws Exception {
        var b = new TwoBuilds(dir).file("greet.c", GREET, "hello %s", "goodbye %s");
        b.build();
        Path file = b.patched.getFirst();
        var inMemory = new ObjectInput(Path.of("libgreet.a(greet.o)"), "greet.o", Files.readAllBytes(file));
        var pairs = Differ.pairObjects(open(b.originals), Differ.openObjects(List.of(inMemory)));
        assertEquals(List.of("greet"), names(Differ.compare(pairs).changedFunctions()));
    }

    private static List<ObjectFile> open(List<Path> files) {
        return Differ.openObjects(files.stream().map(ObjectInput::file).toList());
    }

    private static List<String> names(Collection<Differ.Definition> definitions) {
        return definitions.stream().map(Differ.Definition::name).toList();
    }
}
