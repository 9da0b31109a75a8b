// A burst of many concurrent threads, each touching every size class once,
// all exit; then malloc_trim(0). What stays resident? (hakmem: the pooled
// heaps' bin rows, about 73 KiB per thread of the burst; glibc: ~8 MiB total.)
// gcc -O2 -pthread many_heaps.c -o many_heaps
// ./many_heaps 1000; LD_PRELOAD=/tmp/hunt20b_libhakmem.so ./many_heaps 1000
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static pthread_barrier_t barrier;
static long rss_kib(void) {
  long pages = 0, rss = 0;
  FILE* f = fopen("/proc/self/statm", "r");
  if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
  fclose(f);
  return rss * 4;
}
static void* worker(void* arg) {
  for (size_t size = 16; size <= 262144; size = size * 9 / 8 + 16) {
    void* volatile p = malloc(size);
    ((char*)p)[0] = 1;
    free(p);
  }
  pthread_barrier_wait(&barrier);
  return arg;
}
int main(int argc, char** argv) {
  int n = argc > 1 ? atoi(argv[1]) : 1000;
  pthread_t* t = malloc(n * sizeof(pthread_t));
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setstacksize(&a, 64 * 1024);
  pthread_barrier_init(&barrier, NULL, n);
  long before = rss_kib();
  for (int i = 0; i < n; i++) pthread_create(&t[i], &a, worker, NULL);
  for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
  long after = rss_kib();
  malloc_trim(0);
  { char line[256]; FILE* f = fopen("/proc/self/status", "r"); while (fgets(line, sizeof line, f)) if (!strncmp(line, "VmPeak", 6) || !strncmp(line, "VmHWM", 5)) fputs(line, stdout); fclose(f); }
  printf("%d concurrent threads: RSS before %ld KiB, after exit %ld KiB, after trim %ld KiB\n", n, before, after, rss_kib());
  return 0;
}
