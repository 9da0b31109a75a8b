// gcc -O2 -pthread prewarm_limit.c -o prewarm_limit
// (ulimit -v 400000; HAKMEM_SUPERSLAB_PREWARM=256 LD_PRELOAD=bazel-bin/hakmem/libhakmem.so ./prewarm_limit)
// Pre-warming more SuperSlabs than the address-space limit allows: hakmem maps
// until the kernel refuses, silently, and the program has no address space left
// for a thread stack, an mmap, or dlopen.
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
static void* nop(void* v) { return v; }
int main(void) {
  FILE* f = fopen("/proc/self/statm", "r");
  long vm = 0;
  fscanf(f, "%ld", &vm);
  fclose(f);
  printf("VmSize at main: %ld MiB\n", vm * 4 / 1024);
  pthread_t t;
  int rc = pthread_create(&t, NULL, nop, NULL);
  printf("pthread_create: %s\n", rc ? strerror(rc) : "ok");
  if (!rc) pthread_join(t, NULL);
  void* m = mmap(NULL, 16 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  printf("mmap(16 MiB): %s\n", m == MAP_FAILED ? strerror(errno) : "ok");
  void* h = dlopen("libm.so.6", RTLD_NOW);  // already loaded by some: use another
  void* h2 = dlopen("libz.so.1", RTLD_NOW);
  printf("dlopen(libz.so.1): %s\n", h2 ? "ok" : dlerror());
  (void)h;
  void* p = malloc(1 << 20);
  printf("malloc(1 MiB): %s\n", p ? "ok" : "NULL");
  return 0;
}
