/*
 * suture's demo target, the seed's scenario: three threads print forever. thread3_say reads a global counter
 * and writes and prints a thread-local variable; the demo patches it while the program runs (fix.diff: the value
 * becomes counter - 1 and the thread-local 666666).
 */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

int counter = 100;
__thread int tls_value;

static void pause_a_little(void)
{
    usleep(150 * 1000);
}

void thread1_say(void)
{
    counter++;
    printf("thread1: counter is now %d\n", counter);
}

void thread2_say(void)
{
    printf("thread2: still here\n");
}

void thread3_say(void)
{
    int value = counter + 1;
    printf("thread3: value = %d", value);
    putchar('\n');
    tls_value = 666;
    printf("thread3: tls_value = %d\n", tls_value);
}

static void *thread1(void *arg)
{
    for (;;) {
        thread1_say();
        pause_a_little();
    }
    return arg;
}

static void *thread2(void *arg)
{
    for (;;) {
        thread2_say();
        pause_a_little();
    }
    return arg;
}

static void *thread3(void *arg)
{
    for (;;) {
        thread3_say();
        pause_a_little();
    }
    return arg;
}

int main(void)
{
    pthread_t t1, t2, t3;
    setvbuf(stdout, NULL, _IOLBF, 0);
    pthread_create(&t1, NULL, thread1, NULL);
    usleep(50 * 1000);
    pthread_create(&t2, NULL, thread2, NULL);
    usleep(50 * 1000);
    pthread_create(&t3, NULL, thread3, NULL);
    pthread_join(t1, NULL);
    return 0;
}
