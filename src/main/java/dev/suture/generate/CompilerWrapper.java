package dev.suture.generate;

import dev.suture.SutureException.Kind;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * The compiler and archiver wrapper of one {@code suture build}: a directory with one generated bash script
 * ({@code wrapper.sh}) linked under every compiler and archiver name found on PATH (cc, gcc, c++, g++, ar, and
 * their target-prefixed and versioned names such as x86_64-linux-gnu-gcc-12), and the environment that puts it
 * first in PATH. The script adds the section flags to compilations and records links and archives (read back by
 * {@link BuildRecord}).
 */
final class CompilerWrapper {
    private static final String WRAPPER_NAME = "suture-wrapper";
    static final List<String> TOOLS = List.of("cc", "gcc", "c++", "g++", "ar");
    /**
     * A name the wrapper stands in for: a tool of {@link #TOOLS}, after an optional target triplet and before an
     * optional version (x86_64-linux-gnu-g++-12). gcc-ar and its kin are gcc's LTO helpers, not compilers.
     */
    private static final Pattern TOOL_NAME = Pattern.compile(
            "(?:(?<triplet>[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+){1,3})-)?(?<tool>cc|gcc|c\\+\\+|g\\+\\+|ar)(?:-\\d+(?:\\.\\d+)*)?");

    private final Path bin;
    private final Map<String, Path> realTools;

    private CompilerWrapper(Path bin, Map<String, Path> realTools) {
        this.bin = bin;
        this.realTools = realTools;
    }

    /**
     * Writes the wrapper into {@code dir} (created, private to the user). The real tools are looked up now on
     * {@code searchPath}, so the wrapper never finds itself.
     */
    static CompilerWrapper create(Path dir, String searchPath) throws IOException {
        var real = new LinkedHashMap<String, Path>();
        for (String tool : TOOLS) {
            which(tool, searchPath).ifPresent(p -> real.put(tool, p));
        }
        for (String name : toolNames(searchPath)) {
            if (!real.containsKey(name)) {
                which(name, searchPath).ifPresent(p -> real.put(name, p));
            }
        }
        if (!real.containsKey("cc") && !real.containsKey("gcc")) {
            throw new SourceBuildException(Kind.BAD_INPUT,
                    "no C compiler (cc or gcc) on PATH; install gcc, or put it on PATH, and run suture build again");
        }
        if (!real.containsKey("ar")) {
            throw new SourceBuildException(Kind.BAD_INPUT, "no ar on PATH; install binutils and run suture build again");
        }
        real.putIfAbsent("cc", real.get("gcc"));
        real.putIfAbsent("gcc", real.get("cc"));
        Path bash = which("bash", searchPath).orElseThrow(() -> new SourceBuildException(Kind.BAD_INPUT,
                "no bash on PATH: the compiler wrapper is a bash script; install bash"));

        Path bin = dir.resolve("bin");
        Files.createDirectories(bin, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        var cases = new StringBuilder();
        real.forEach((tool, path) -> cases.append("  ").append(shellQuote(tool)).append(") real=")
                .append(shellQuote(path.toString())).append(" ;;\n"));
        String script = template().replace("@BASH@", bash.toString()).replace("@REAL_TOOLS@\n", cases.toString());
        Path main = bin.resolve(WRAPPER_NAME);
        Files.writeString(main, script);
        Files.setPosixFilePermissions(main, PosixFilePermissions.fromString("rwx------"));
        for (String tool : real.keySet()) {
            Files.createSymbolicLink(bin.resolve(tool), main.getFileName());
        }
        return new CompilerWrapper(bin, Map.copyOf(real));
    }

    /** Whether the wrapper stands in for a program of this name (a compiler or archiver name, see TOOL_NAME). */
    static boolean isToolName(String name) {
        Matcher m = TOOL_NAME.matcher(name);
        if (!m.matches()) {
            return false;
        }
        String triplet = m.group("triplet");
        return triplet == null || !(triplet.equals("gcc") || triplet.endsWith("-gcc"));
    }

    /** Every compiler and archiver name in the directories of {@code searchPath}, sorted. */
    private static List<String> toolNames(String searchPath) throws IOException {
        var names = new TreeSet<String>();
        for (String dir : searchPath.split(":")) {
            Path d = dir.isEmpty() ? null : Path.of(dir);
            if (d == null || !Files.isDirectory(d)) {
                continue;
            }
            try (Stream<Path> entries = Files.list(d)) {
                entries.map(p -> p.getFileName().toString()).filter(CompilerWrapper::isToolName).forEach(names::add);
            } catch (IOException e) {
                // an unreadable PATH directory holds no tool we can run either
            }
        }
        return List.copyOf(names);
    }

    /** The directory to put first in PATH. */
    Path bin() {
        return bin;
    }

    /** The real tools the wrapper runs, by the name it is invoked as. */
    Map<String, Path> realTools() {
        return realTools;
    }

    /**
     * The environment for building {@code tree}: the wrapper first in PATH and as CC/CXX/AR, records going to
     * {@code recordDir}, and source paths in the objects rewritten from {@code tree} to {@code shownAs} (so both
     * scratch copies compile to the same bytes, and {@code __FILE__} says what the deployed build says).
     */
    Map<String, String> environment(Map<String, String> base, Path tree, Path recordDir, Path shownAs) {
        var env = new HashMap<>(base);
        env.put("PATH", bin + ":" + base.getOrDefault("PATH", "/usr/bin:/bin"));
        env.put("CC", bin.resolve(standIn(base.get("CC"), "cc")).toString());
        if (realTools.containsKey("c++")) {
            env.put("CXX", bin.resolve(standIn(base.get("CXX"), "c++")).toString());
        }
        env.put("AR", bin.resolve("ar").toString());
        env.put("SUTURE_RECORD_DIR", recordDir.toString());
        env.put("SUTURE_PREFIX_MAP", tree + "=" + shownAs);
        // A make that runs suture must not hand its jobserver to the scratch builds.
        for (String inherited : List.of("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")) {
            env.remove(inherited);
        }
        return env;
    }

    /**
     * The wrapper's name for the compiler a build was told to use ({@code CC=gcc-12}, {@code CC=/usr/bin/gcc-12}):
     * that name when the wrapper stands in for it and runs the same program, else {@code fallback}.
     */
    private String standIn(String given, String fallback) {
        if (given == null || given.isBlank() || given.strip().contains(" ")) {
            return fallback;
        }
        Path named = Path.of(given.strip());
        String name = named.getFileName().toString();
        Path real = realTools.get(name);
        if (real == null) {
            return fallback;
        }
        if (!named.isAbsolute()) {
            return name;
        }
        try {
            return named.toRealPath().equals(real.toRealPath()) ? name : fallback;
        } catch (IOException e) {
            return fallback;
        }
    }

    static Optional<Path> which(String tool, String searchPath) {
        for (String dir : searchPath.split(":")) {
            if (dir.isEmpty()) {
                continue;
            }
            Path candidate = Path.of(dir, tool);
            if (Files.isRegularFile(candidate) && Files.isExecutable(candidate) && !isWrapper(candidate)) {
                return Optional.of(candidate);
            }
        }
        return Optional.empty();
    }

    private static boolean isWrapper(Path candidate) {
        try {
            return candidate.toRealPath().getFileName().toString().equals(WRAPPER_NAME);
        } catch (IOException e) {
            return true;
        }
    }

    private static String shellQuote(String s) {
        return "'" + s.replace("'", "'\\''") + "'";
    }

    private static String template() {
        try (InputStream in = CompilerWrapper.class.getResourceAsStream("wrapper.sh")) {
            if (in == null) {
                throw new IllegalStateException("wrapper.sh missing from the suture jar");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
