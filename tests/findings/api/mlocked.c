// gcc -O2 -pthread mlocked.c -o mlocked
// mlockall(MCL_CURRENT | MCL_FUTURE) under RLIMIT_MEMLOCK (8 MiB here, the usual default), then
// threads that each use a few blocks of many sizes.
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
static long fails;
static long rss_kb(void) { long a, b; FILE* f = fopen("/proc/self/statm", "r"); if (fscanf(f, "%ld %ld", &a, &b) != 2) b = 0; fclose(f); return b * 4; }
static void* work(void* arg) {
  void* v[64]; int n = 0;
  for (size_t s = 16; s <= (size_t)arg; s *= 2) {
    void* p = malloc(s);
    if (!p) { __sync_fetch_and_add(&fails, 1); continue; }
    memset(p, 1, s); v[n++] = p;
  }
  for (int i = 0; i < n; i++) free(v[i]);
  return NULL;
}
int main(int argc, char** argv) {
  size_t max = argc > 1 ? strtoul(argv[1], 0, 0) : 262144;
  int threads = argc > 2 ? atoi(argv[2]) : 4;
  struct rlimit rl; getrlimit(RLIMIT_MEMLOCK, &rl);
  if (mlockall(MCL_CURRENT | MCL_FUTURE)) { perror("mlockall"); return 1; }
  long before = rss_kb();
  work((void*)max);
  pthread_attr_t a; pthread_attr_init(&a); pthread_attr_setstacksize(&a, 64 << 10);
  pthread_t t[64]; int started = 0;
  for (int i = 0; i < threads; i++) if (pthread_create(&t[started], &a, work, (void*)max) == 0) started++; else fails += 1000;
  for (int i = 0; i < started; i++) pthread_join(t[i], 0);
  errno = 0;
  void* big = malloc(1 << 20);
  { char l[256]; FILE* f = fopen("/proc/self/status", "r"); while (fgets(l, sizeof l, f)) if (!strncmp(l, "VmLck", 5) || !strncmp(l, "VmRSS", 5)) fputs(l, stdout); fclose(f); }
  printf("memlock limit %lu KiB: blocks 16 B..%zu B in main + %d threads: %ld mallocs failed, malloc(1 MiB) %s; RSS +%ld KiB\n",
         (unsigned long)rl.rlim_cur >> 10, max, started, fails, big ? "ok" : strerror(errno), rss_kb() - before);
  free(big);
  return 0;
}
