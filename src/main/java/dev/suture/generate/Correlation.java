package dev.suture.generate;

import static dev.suture.elf.ElfConstants.*;

import dev.suture.elf.Symbol;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.regex.Pattern;

/**
 * Which function or variable of the original object each one of the patched object is. Globals and unique
 * statics match by name; GCC clones ({@code foo.cold}, {@code foo.part.N}, {@code .isra.N}, {@code .constprop.N})
 * by name, then with their numbers ignored; static locals ({@code count.N}, renumbered whenever another static
 * local appears) by base name and the functions that use them.
 */
final class Correlation {
    private static final Pattern CLONE = Pattern.compile("^(.+?)\\.(cold|part|isra|constprop|lto_priv|localalias)\\b.*$");
    private static final Pattern STATIC_LOCAL = Pattern.compile("^(.+)\\.(\\d+)$");
    private static final Pattern COLD = Pattern.compile(".*\\.cold(\\.\\d+)?$");

    private final Map<Integer, Symbol> patchedToOriginal = new HashMap<>();

    /** The original symbol the patched one corresponds to, or null when it is new. */
    Symbol original(Symbol patched) {
        return patchedToOriginal.get(patched.index());
    }

    /** The function a clone or split part belongs to: {@code foo} for {@code foo.cold} or {@code foo.part.0}. */
    static String parentName(String name) {
        if (name.indexOf('.') < 0) {
            return name;
        }
        var m = CLONE.matcher(name);
        return m.matches() ? m.group(1) : name;
    }

    /** Whether the function is the cold split of another (entered only by jumps from inside its parent). */
    static boolean isColdPart(String name) {
        return name.contains(".cold") && COLD.matcher(name).matches();
    }

    static Correlation of(ObjectFile original, ObjectFile patched) {
        var c = new Correlation();
        if (original == null) {
            return c;
        }
        var origKeys = keys(original);
        var patchedKeys = keys(patched);
        for (var e : patchedKeys.entrySet()) {
            var candidates = origKeys.get(e.getKey());
            if (candidates == null) {
                continue;
            }
            // Several with the same key (rare): pair them in order of appearance.
            var mine = e.getValue();
            for (int i = 0; i < mine.size() && i < candidates.size(); i++) {
                c.patchedToOriginal.put(mine.get(i).index(), candidates.get(i));
            }
        }
        // Clones and static locals whose numbers or users changed: match with the numbers left out, if unambiguous.
        var origLoose = new HashMap<String, List<Symbol>>();
        var matchedOrig = new HashSet<Integer>();
        c.patchedToOriginal.values().forEach(s -> matchedOrig.add(s.index()));
        for (Symbol s : definitions(original)) {
            if (!matchedOrig.contains(s.index()) && renumberable(s)) {
                origLoose.computeIfAbsent(loose(s), _ -> new ArrayList<>()).add(s);
            }
        }
        var patchedLoose = new HashMap<String, List<Symbol>>();
        for (Symbol s : definitions(patched)) {
            if (!c.patchedToOriginal.containsKey(s.index()) && renumberable(s)) {
                patchedLoose.computeIfAbsent(loose(s), _ -> new ArrayList<>()).add(s);
            }
        }
        for (var e : patchedLoose.entrySet()) {
            var o = origLoose.get(e.getKey());
            if (o != null && o.size() == 1 && e.getValue().size() == 1) {
                c.patchedToOriginal.put(e.getValue().getFirst().index(), o.getFirst());
            }
        }
        return c;
    }

    private static boolean renumberable(Symbol s) {
        return CLONE.matcher(s.name()).matches() || (s.isLocal() && STATIC_LOCAL.matcher(s.name()).matches());
    }

    private static String loose(Symbol s) {
        return s.name().replaceAll("\\.\\d+", ".N") + "|" + s.type();
    }

    /** Functions and variables the object defines. */
    static List<Symbol> definitions(ObjectFile o) {
        var out = new ArrayList<Symbol>();
        for (Symbol s : o.symbols()) {
            if (s.inSection() && (s.isFunction() || s.isObject() || s.type() == STT_TLS)) {
                out.add(s);
            }
        }
        return out;
    }

    /** The correlation key of every definition, in order of appearance. */
    private static Map<String, List<Symbol>> keys(ObjectFile o) {
        var users = usersOfStaticLocals(o);
        var keys = new LinkedHashMap<String, List<Symbol>>();
        for (Symbol s : definitions(o)) {
            String key;
            var m = STATIC_LOCAL.matcher(s.name());
            if (s.isLocal() && !s.isFunction() && m.matches()) {
                key = "static-local " + m.group(1) + " used by " + users.getOrDefault(s.index(), new TreeSet<>());
            } else {
                key = (s.isLocal() ? "local " : "global ") + s.name();
            }
            keys.computeIfAbsent(key + "|" + (s.isFunction() ? "F" : "D"), _ -> new ArrayList<>()).add(s);
        }
        return keys;
    }

    /** For each static local variable, the (parent) names of the functions that refer to it. */
    private static Map<Integer, TreeSet<String>> usersOfStaticLocals(ObjectFile o) {
        var users = new HashMap<Integer, TreeSet<String>>();
        for (Symbol f : definitions(o)) {
            if (!f.isFunction()) {
                continue;
            }
            for (var r : o.relocations(f.st_shndx())) {
                if (r.symbol() == null || r.symbol().isUndefined() || !r.symbol().inSection()) {
                    continue;
                }
                Reference ref;
                try {
                    ref = Reference.of(o, r);
                } catch (DiffRefusedException e) {
                    continue;
                }
                if (ref instanceof Reference.ToSymbol t && t.symbol().isLocal() && !t.symbol().isFunction()) {
                    users.computeIfAbsent(t.symbol().index(), _ -> new TreeSet<>()).add(parentName(f.name()));
                }
            }
        }
        return users;
    }
}
