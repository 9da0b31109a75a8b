// gcc -O2 -pthread cache_starves_others.c -o cache_starves_others
// ./cache_starves_others SIZE          (glibc)
// LD_PRELOAD=bazel-bin/hakmem/libhakmem.so ./cache_starves_others SIZE
// Under RLIMIT_AS = VmSize + 256 MiB: allocate blocks of SIZE until NULL (at
// most 200 MiB with a second argument), free them all, then ask for address space from something other than
// malloc: a thread (8 MiB stack), an anonymous mmap of 64 MiB, and then
// malloc again after that mmap. Under glibc freed memory goes back to the
// kernel; under hakmem it stays in its caches and the others fail.
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

static long vm_kib(void) {
  FILE* f = fopen("/proc/self/statm", "r");
  unsigned long vm = 0, rss = 0;
  if (fscanf(f, "%lu %lu", &vm, &rss) != 2) vm = 0;
  fclose(f);
  return (long)vm * 4;
}
static void* nop(void* v) { return v; }

int main(int argc, char** argv) {
  size_t size = argc > 1 ? strtoul(argv[1], 0, 0) : (1 << 20);
  int fill = argc <= 2;
  size_t n = (fill ? (300u << 20) : (200u << 20)) / size;
  void** v = calloc(n, sizeof(void*));
  printf("start VmSize %ld KiB\n", vm_kib());
  struct rlimit rl;
  rl.rlim_cur = rl.rlim_max = (rlim_t)(vm_kib() + 256 * 1024) * 1024;
  setrlimit(RLIMIT_AS, &rl);
  for (size_t i = 0; i < n; i++) {
    v[i] = malloc(size);
    if (!v[i]) {
      if (!fill) { printf("malloc failed at %zu\n", i); return 2; }
      n = i;
      break;
    }
    memset(v[i], 1, size < 4096 ? size : 4096);
  }
  for (size_t i = 0; i < n; i++) free(v[i]);
  printf("allocated and freed %zu x %zu B; VmSize now %ld KiB\n", n, size, vm_kib());
  pthread_t t;
  int rc = pthread_create(&t, NULL, nop, NULL);
  printf("pthread_create: %s\n", rc ? strerror(rc) : "ok");
  if (rc == 0) pthread_join(t, NULL);
  void* m = mmap(NULL, 64 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  printf("mmap(64 MiB): %s\n", m == MAP_FAILED ? strerror(errno) : "ok");
  return (rc != 0 || m == MAP_FAILED) ? 1 : 0;
}
