/*
 * suture-client: the fast path of suture's launchers (docs/agent.md, "The fast path").
 *
 * When an agent runs, `suture apply|revert|info ...` is sent over the agent's socket and runs in the agent's warm
 * JVM; this program sends the request and prints the reply, so such a command starts no JVM at all. It is run by
 * the launchers (./suture, the package's /usr/bin/suture) with the command line, and exits with the command's exit
 * code; it exits with NOT_SERVED (100) when the command is to run in a JVM after all: no agent, an agent that
 * declined it (another $SUTURE_TRUST_DIR, another protocol version), an agent that did not take it within 5 s
 * (stopped or wedged: said on stderr), or a run directory or socket that is not in trusted hands (the JVM then says
 * what is wrong with it).
 *
 * Trust (DESIGN.md principle 9), the same rules as sys.TrustedFiles: the run directory must be a real directory
 * owned by root or this user and not writable by group or others, every directory above it (as named and as
 * resolved) owned by root or this user and not writable by others unless sticky; the socket must be a socket owned
 * by root or this user; and the process answering it (SO_PEERCRED) must run as root or as this user.
 *
 * The exchange is cli.ViaAgent's (both ends ship together). The request: big-endian int32 version 3, int32
 * argument count, each argument, the working directory, a byte 1 + $SUTURE_TRUST_DIR or a byte 0; a string is an
 * int32 byte count and UTF-8 bytes. The agent answers one byte: 1 taken, 0 declined. When taken within TAKE_WAIT_MS,
 * the client sends a byte 1 (go) and only then does the command run; an agent that does not answer in time (stopped,
 * wedged) gets no go, so the command never runs there, and it runs in a JVM instead. The reply: int32 version 3,
 * int32 exit code, stdout, stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define NOT_SERVED 100
#define VERSION 3
#define TAKEN 1
#define GO 1
#define TAKE_WAIT_MS 5000
#define REPLY_LIMIT (64u << 20)

struct buffer {
    unsigned char *data;
    size_t size, capacity;
};

static void not_served(void) {
    exit(NOT_SERVED);
}

/* snprintf that gives up (not served) rather than cut a path short. */
static void format(char *out, size_t size, const char *fmt, const char *a, const char *b) {
    int n = snprintf(out, size, fmt, a, b);
    if (n < 0 || (size_t) n >= size) {
        not_served();
    }
}

static void put(struct buffer *b, const void *bytes, size_t n) {
    if (b->size + n > b->capacity) {
        size_t capacity = b->capacity ? b->capacity : 4096;
        while (capacity < b->size + n) {
            capacity *= 2;
        }
        b->data = realloc(b->data, capacity);
        if (!b->data) {
            not_served();
        }
        b->capacity = capacity;
    }
    memcpy(b->data + b->size, bytes, n);
    b->size += n;
}

static void put_int(struct buffer *b, uint32_t v) {
    unsigned char be[4] = {v >> 24, v >> 16, v >> 8, v};
    put(b, be, 4);
}

static void put_string(struct buffer *b, const char *s) {
    size_t n = strlen(s);
    put_int(b, (uint32_t) n);
    put(b, s, n);
}

/* Whether a file of this owner may hold what suture trusts: root's or this user's. */
static int trusted_owner(uid_t uid) {
    return uid == 0 || uid == geteuid();
}

/* Every directory above `path` (a copy is cut in place) is in trusted hands. */
static int trusted_ancestors(char *path) {
    for (char *slash = strrchr(path, '/'); slash; slash = strrchr(path, '/')) {
        if (slash == path) {
            slash[1] = '\0';
        } else {
            *slash = '\0';
        }
        struct stat st;
        if (lstat(path, &st) != 0 || !trusted_owner(st.st_uid)
                || (S_ISDIR(st.st_mode) && (st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))) {
            return 0;
        }
        if (slash == path) {
            return 1;
        }
    }
    return 1;
}

static int trusted_directory(const char *dir) {
    struct stat st;
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || !trusted_owner(st.st_uid) || (st.st_mode & 022)) {
        return 0;
    }
    char named[PATH_MAX], resolved[PATH_MAX];
    format(named, sizeof named, "%s%s", dir, "");
    if (!trusted_ancestors(named) || !realpath(dir, resolved)) {
        return 0;
    }
    /* the directory itself was checked above; its resolved ancestors are checked here */
    return trusted_ancestors(resolved);
}

/* The run directory, as live.RunDirectory.path() names it. */
static void run_directory(char *out, size_t size) {
    const char *env = getenv("SUTURE_RUN_DIR");
    struct stat st;
    if (env && env[strspn(env, " \t")]) {
        if (env[0] == '/') {
            format(out, size, "%s%s", env, "");
        } else {
            char cwd[PATH_MAX];
            if (!getcwd(cwd, sizeof cwd)) {
                not_served();
            }
            format(out, size, "%s/%s", cwd, env);
        }
    } else if (lstat("/run/suture", &st) == 0 && S_ISDIR(st.st_mode) ? access("/run/suture", W_OK) == 0
                                                                      : access("/run", W_OK) == 0) {
        format(out, size, "%s%s", "/run/suture", "");
    } else if ((env = getenv("XDG_RUNTIME_DIR")) && env[strspn(env, " \t")] && stat(env, &st) == 0
               && S_ISDIR(st.st_mode)) {
        format(out, size, "%s%s", env, "/suture");
    } else {
        struct passwd *pw = getpwuid(geteuid());
        if (!pw) {
            not_served();
        }
        format(out, size, "%s%s", "/tmp/suture-", pw->pw_name);
    }
}

static uint32_t get_int(const unsigned char **p, const unsigned char *end) {
    if (end - *p < 4) {
        return UINT32_MAX;
    }
    uint32_t v = (uint32_t) (*p)[0] << 24 | (uint32_t) (*p)[1] << 16 | (uint32_t) (*p)[2] << 8 | (*p)[3];
    *p += 4;
    return v;
}

/* Writes all of it; to the socket (`sock`) with MSG_NOSIGNAL: an agent that closed it (it refused us, or died) is an
 * error here, not a SIGPIPE that would kill the client and make its exit code 141, as if the command had failed. */
static int write_all(int fd, const unsigned char *data, size_t n, int sock) {
    while (n > 0) {
        ssize_t w = sock ? send(fd, data, n, MSG_NOSIGNAL) : write(fd, data, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return 0;
        }
        data += w;
        n -= (size_t) w;
    }
    return 1;
}

/* The agent's one-byte answer to the request: TAKEN, another byte (declined), 0x100 for a close without a word, or
 * -1 when none came within TAKE_WAIT_MS. */
static int take_answer(int fd) {
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long waited = (now.tv_sec - start.tv_sec) * 1000L + (now.tv_nsec - start.tv_nsec) / 1000000L;
        if (waited >= TAKE_WAIT_MS) {
            return -1;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, (int) (TAKE_WAIT_MS - waited));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            return 0x100;
        }
        if (r == 0) {
            return -1;
        }
        unsigned char b;
        ssize_t n = read(fd, &b, 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        return n == 1 ? b : 0x100;
    }
}

int main(int argc, char **argv) {
    char dir[PATH_MAX], sock_path[sizeof ((struct sockaddr_un *) 0)->sun_path], cwd[PATH_MAX];
    run_directory(dir, sizeof dir);
    if (!trusted_directory(dir) || !getcwd(cwd, sizeof cwd)) {
        not_served();
    }
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    format(sock_path, sizeof addr.sun_path, "%s%s", dir, "/agent.sock");
    size_t n = strlen(sock_path);
    struct stat st;
    if (lstat(sock_path, &st) != 0 || !S_ISSOCK(st.st_mode)
            || !trusted_owner(st.st_uid)) {
        not_served();
    }
    memcpy(addr.sun_path, sock_path, n + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct ucred peer;
    socklen_t peer_size = sizeof peer;
    if (fd < 0 || connect(fd, (struct sockaddr *) &addr, sizeof addr) != 0
            || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &peer_size) != 0 || !trusted_owner(peer.uid)) {
        not_served();
    }

    struct buffer request = {0};
    put_int(&request, VERSION);
    put_int(&request, (uint32_t) (argc - 1));
    for (int i = 1; i < argc; i++) {
        put_string(&request, argv[i]);
    }
    put_string(&request, cwd);
    const char *trust = getenv("SUTURE_TRUST_DIR");
    put(&request, trust ? "\1" : "\0", 1);
    if (trust) {
        put_string(&request, trust);
    }
    if (!write_all(fd, request.data, request.size, 1)) {
        not_served();
    }
    int answer = take_answer(fd);
    if (answer < 0) {
        fprintf(stderr, "suture: the agent at %s did not take the request within %d s (is it stopped?); running %s"
                        " without it\n", sock_path, TAKE_WAIT_MS / 1000, argc > 1 ? argv[1] : "the command");
        not_served();
    }
    unsigned char go = GO;
    if (answer != TAKEN || !write_all(fd, &go, 1, 1) || shutdown(fd, SHUT_WR) != 0) {
        not_served(); /* declined, or closed without a word: the command did not run there */
    }

    struct buffer reply = {0};
    unsigned char chunk[65536];
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0 || reply.size + (size_t) r > REPLY_LIMIT) {
            break;
        }
        if (r == 0) {
            break;
        }
        put(&reply, chunk, (size_t) r);
    }
    const unsigned char *p = reply.data, *end = reply.data + reply.size;
    if (get_int(&p, end) != VERSION) {
        goto cut;
    }
    uint32_t code = get_int(&p, end);
    uint32_t out_size = get_int(&p, end);
    if (out_size > (size_t) (end - p)) {
        goto cut;
    }
    const unsigned char *out = p;
    p += out_size;
    uint32_t err_size = get_int(&p, end);
    if (err_size != (size_t) (end - p) || code > 255) {
        goto cut;
    }
    write_all(STDOUT_FILENO, out, out_size, 0);
    write_all(STDERR_FILENO, p, err_size, 0);
    return (int) code;
cut:
    /* The agent was told to go and its reply was cut short: the command may have run, so it is not run again. */
    fprintf(stderr, "suture: the agent's reply to %s was cut short; whether it ran is not known: see suture info"
                    " and the agent's log\n", argc > 1 ? argv[1] : "the command");
    return 1;
}
