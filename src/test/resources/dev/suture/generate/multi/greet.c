#include <stdio.h>

const char *fmt_name(const char *name);

void greet(const char *name) {
    printf("hello, %s\n", fmt_name(name));
}
