/* http-load PORT PATH EXPECT STOPFILE: GET http://127.0.0.1:PORT/PATH over and over, one connection per request,
 * until STOPFILE exists (at most 100 s); a reply that is not "HTTP/1.1 200" with EXPECT in it, or a failed
 * connect, read or write, is an error. Prints "requests N errors E" (and the first error) at the end.
 * Used by bench/security-patches.sh as the client load while a patch is applied and reverted. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char first_error[256];

static int one_request(int port, const char *path, const char *expect) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) { snprintf(first_error, sizeof first_error, "socket failed"); return -1; }
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *) &a, sizeof a) < 0) {
        snprintf(first_error, sizeof first_error, "connect failed");
        close(fd);
        return -1;
    }
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", path);
    if (write(fd, req, n) != n) {
        snprintf(first_error, sizeof first_error, "write failed");
        close(fd);
        return -1;
    }
    static char buf[1 << 16];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof buf - 1 && (r = read(fd, buf + got, sizeof buf - 1 - got)) > 0) {
        got += r;
    }
    buf[got] = 0;
    close(fd);
    if (strncmp(buf, "HTTP/1.1 200", 12) != 0 || strstr(buf, expect) == NULL) {
        snprintf(first_error, sizeof first_error, "bad reply (%zu bytes): %.80s", got, buf);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    alarm(120);
    if (argc != 5) {
        fprintf(stderr, "usage: http-load PORT PATH EXPECT STOPFILE\n");
        return 2;
    }
    int port = atoi(argv[1]);
    long requests = 0, errors = 0;
    time_t end = time(NULL) + 100;
    while (access(argv[4], F_OK) != 0 && time(NULL) < end) {
        if (one_request(port, argv[2], argv[3]) != 0) {
            errors++;
        }
        requests++;
    }
    printf("requests %ld errors %ld%s%s\n", requests, errors, errors ? " first: " : "", errors ? first_error : "");
    return 0;
}
