package dev.suture.testing;

import java.io.IOException;
import java.nio.file.Path;

/**
 * A multi-threaded C program for backtrace tests, whose threads sit in known places: nanosleep, pthread_cond_wait,
 * read on a pipe, a busy loop, a signal handler that blocks (interrupting nanosleep), and a function of a shared
 * library built alongside. Every function on those paths is noinline, so gdb's view has no inline frames.
 * It prints "ready" when every thread is in place.
 */
public final class StackTargets {
    private StackTargets() {}

    public static final String LIBRARY = """
            #include <time.h>
            volatile int lib_sink;
            __attribute__((noinline)) static void lib_hidden_sleep(void) {
                struct timespec ts = {1000, 0};
                nanosleep(&ts, 0);
                lib_sink++;
            }
            __attribute__((noinline)) void lib_sleep_in_lib(void) {
                lib_hidden_sleep();
                lib_sink++;
            }
            """;

    public static final String PROGRAM = """
            #define _GNU_SOURCE
            #include <pthread.h>
            #include <signal.h>
            #include <stdio.h>
            #include <string.h>
            #include <time.h>
            #include <unistd.h>

            void lib_sleep_in_lib(void);
            volatile int sink;
            static int pipefd[2];
            static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
            static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
            static volatile int in_handler;

            __attribute__((noinline)) void sleeper_inner(void) { struct timespec ts = {1000, 0}; nanosleep(&ts, 0); sink++; }
            __attribute__((noinline)) void *sleeper(void *a) { sleeper_inner(); sink++; return a; }
            __attribute__((noinline)) void waiter_inner(void) {
                pthread_mutex_lock(&mu); pthread_cond_wait(&cv, &mu); sink++; pthread_mutex_unlock(&mu); sink++;
            }
            __attribute__((noinline)) void *waiter(void *a) { waiter_inner(); sink++; return a; }
            __attribute__((noinline)) void reader_inner(void) { char c; sink += (int) read(pipefd[0], &c, 1); }
            __attribute__((noinline)) void *reader(void *a) { reader_inner(); sink++; return a; }
            __attribute__((noinline)) void spin_inner(void) { for (;;) { sink++; } }
            __attribute__((noinline)) void *spinner(void *a) { spin_inner(); sink++; return a; }
            __attribute__((noinline)) void handler_inner(void) {
                in_handler = 1; struct timespec ts = {1000, 0}; nanosleep(&ts, 0); sink++;
            }
            __attribute__((noinline)) void on_signal(int sig) { handler_inner(); sink += sig; }
            __attribute__((noinline)) void signalled_inner(void) {
                for (;;) { struct timespec ts = {1000, 0}; nanosleep(&ts, 0); sink++; }
            }
            __attribute__((noinline)) void *signalled(void *a) { signalled_inner(); sink++; return a; }
            __attribute__((noinline)) void *in_library(void *a) { lib_sleep_in_lib(); sink++; return a; }

            int main(void) {
                alarm(120); /* ends by itself even if the test that started it dies */
                pthread_t t[6];
                if (pipe(pipefd)) return 1;
                struct sigaction sa;
                memset(&sa, 0, sizeof sa);
                sa.sa_handler = on_signal;
                sigaction(SIGUSR1, &sa, 0);
                void *(*fn[6])(void *) = {sleeper, waiter, reader, spinner, signalled, in_library};
                const char *names[6] = {"sleeper", "waiter", "reader", "spinner", "signalled", "library"};
                for (int i = 0; i < 6; i++) {
                    pthread_create(&t[i], 0, fn[i], 0);
                    pthread_setname_np(t[i], names[i]);
                }
                usleep(100000);
                pthread_kill(t[4], SIGUSR1);
                while (!in_handler) usleep(1000);
                usleep(100000);
                printf("ready\\n");
                fflush(stdout);
                for (;;) pause();
            }
            """;

    /**
     * Strips the library built in {@code dir} of its .symtab, keeping it in libstk.so.debug next to it, found
     * through .gnu_debuglink (as distributions ship debug files).
     */
    public static void stripLibrary(Path dir) throws IOException {
        Gcc.run(dir, "objcopy", "--only-keep-debug", "libstk.so", "libstk.so.debug");
        Gcc.run(dir, "strip", "--strip-all", "libstk.so");
        Gcc.run(dir, "objcopy", "--add-gnu-debuglink=libstk.so.debug", "libstk.so");
    }

    /** Builds libstk.so in {@code dir} with {@code flags} (and -fPIC -shared). */
    public static Path buildLibrary(Path dir, String... flags) throws IOException {
        var all = new java.util.ArrayList<>(java.util.List.of(flags));
        all.addAll(java.util.List.of("-fPIC", "-shared"));
        return Gcc.compile(dir, "libstk.so", LIBRARY, all.toArray(String[]::new));
    }

    /** Builds the library once in {@code dir} (as libstk.so) and the program with {@code flags}; returns the program. */
    public static Path build(Path dir, String name, String... flags) throws IOException {
        Path lib = dir.resolve("libstk.so");
        if (!lib.toFile().exists()) {
            buildLibrary(dir, "-O2");
        }
        // the library must come after the source on the command line (the linker resolves left to right)
        Path src = dir.resolve(name + ".c");
        java.nio.file.Files.writeString(src, PROGRAM);
        Path out = dir.resolve(name);
        var cmd = new java.util.ArrayList<>(java.util.List.of("gcc", "-g"));
        cmd.addAll(java.util.List.of(flags));
        cmd.addAll(java.util.List.of("-pthread", "-o", out.toString(), src.toString(), lib.toString(),
                "-Wl,-rpath," + dir));
        Gcc.run(dir, cmd);
        return out;
    }
}
