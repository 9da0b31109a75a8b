// gcc -O2 -pthread minfo2.c -o minfo2
// Leak check by mallinfo2 (as test harnesses do): blocks allocated by main, freed by a worker thread.
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static void** v; static int n;
static void* freer(void* a) { for (int i = 0; i < n; i++) free(v[i]); return a; }
static void* volatile sink;
int main(int argc, char** argv) {
  n = argc > 1 ? atoi(argv[1]) : 100000;
  v = malloc(n * sizeof(void*));
  size_t before = mallinfo2().uordblks;
  for (int i = 0; i < n; i++) v[i] = malloc(100);
  pthread_t t; pthread_create(&t, 0, freer, 0); pthread_join(t, 0);
  size_t after_join = mallinfo2().uordblks;
  for (int i = 0; i < 100; i++) { sink = malloc(100); free(sink); }
  size_t after_calls = mallinfo2().uordblks;
  sleep(1);
  for (int i = 0; i < 100; i++) { sink = malloc(100); free(sink); }
  sink = malloc(1 << 20); free(sink);
  size_t after_sleep = mallinfo2().uordblks;
  malloc_trim(0);
  size_t after_trim = mallinfo2().uordblks;
  printf("%d x 100 B freed by a joined thread: uordblks grew by %zd KiB (after join), %zd (100 more calls), %zd (1 s later), %zd (after malloc_trim)\n",
         n, ((ssize_t)after_join - (ssize_t)before) / 1024, ((ssize_t)after_calls - (ssize_t)before) / 1024,
         ((ssize_t)after_sleep - (ssize_t)before) / 1024, ((ssize_t)after_trim - (ssize_t)before) / 1024);
  return 0;
}
