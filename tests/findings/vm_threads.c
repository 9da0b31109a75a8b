// Threads that each touch every size class once (one block, freed at once)
// and then wait: how much address space does each keep? Under an address-
// space limit (ulimit -v), malloc fails once a few hundred such threads live.
// gcc -O2 -pthread vm_threads.c -o vm_threads
// (ulimit -v 4000000; LD_PRELOAD=/tmp/hunt20b_libhakmem.so ./vm_threads 400)
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static pthread_barrier_t barrier;
static int failures;
static long vm_kib(void) {
  long pages = 0, rss = 0;
  FILE* f = fopen("/proc/self/statm", "r");
  if (fscanf(f, "%ld %ld", &pages, &rss) != 2) pages = 0;
  fclose(f);
  return pages * 4;
}
static void* worker(void* arg) {
  for (size_t size = 16; size <= 262144; size = size * 9 / 8 + 16) {
    void* volatile p = malloc(size);
    if (p == NULL) { __atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED); continue; }
    free(p);
  }
  pthread_barrier_wait(&barrier);  // all alive at once
  pthread_barrier_wait(&barrier);
  return arg;
}
int main(int argc, char** argv) {
  int n = argc > 1 ? atoi(argv[1]) : 400;
  pthread_t* t = malloc(n * sizeof(pthread_t));
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setstacksize(&a, 64 * 1024);
  pthread_barrier_init(&barrier, NULL, n + 1);
  long before = vm_kib();
  int created = 0;
  for (; created < n; created++) {
    if (pthread_create(&t[created], &a, worker, NULL) != 0) break;
  }
  if (created < n) {  // no address space left for a thread: release those waiting
    printf("pthread_create failed after %d threads\n", created);
    fflush(stdout);
    _exit(2);  // the threads created wait at the barrier for good
  }
  pthread_barrier_wait(&barrier);
  long live = vm_kib();
  pthread_barrier_wait(&barrier);
  for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
  printf("%d threads alive: virtual size +%ld MiB (%ld KiB per thread), failed mallocs: %d\n", n,
         (live - before) >> 10, (live - before) / n, failures);
  return failures != 0;
}
