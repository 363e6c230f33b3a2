#include <stdio.h>
#include <unistd.h>

int square(int a);
void greet(const char *name);

__attribute__((noinline)) void report(int i) {
    printf("square(%d) = %d\n", i, square(i));
    fflush(stdout);
}

int main(int argc, char **argv) {
    greet(argc > 1 ? argv[1] : NULL);
    for (int i = 0;; i++) {
        report(i);
        sleep(1);
    }
}
