// gcc -O2 munmap_enomem_leak.c -o munmap_enomem_leak
// ./munmap_enomem_leak                      (glibc)
// LD_PRELOAD=bazel-bin/hakmem/libhakmem.so ./munmap_enomem_leak
//   (an RLIMIT_AS of 8 GiB is set, so hakmem retains no SuperSlab and unmaps
//   evicted ones; MAX_CACHED=0 evicts each as it empties. HAKMEM_SUPERSLAB_RETAIN_MB=0
//   instead of the RLIMIT_AS does the same.)
//
// The program's own mappings use vm.max_map_count up (one page each,
// alternating protections so they don't merge). munmap of a range in the
// middle of a mapping must split it and then fails with ENOMEM. hakmem's
// SuperSlabs are placed next to each other (one VMA), and it ignores
// munmap's result: the SuperSlabs it "unmaps" stay mapped, resident, and
// forgotten (unregistered), even after the pressure is gone.
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

static char buf[1 << 23];
static int maps(unsigned long* mapped_kib) {
  int fd = open("/proc/self/maps", O_RDONLY);
  ssize_t n, t = 0;
  while ((n = read(fd, buf + t, sizeof buf - 1 - t)) > 0) t += n;
  close(fd);
  buf[t] = 0;
  int c = 0;
  unsigned long tot = 0;
  for (char* l = buf; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : 0) {
    unsigned long a, b;
    if (sscanf(l, "%lx-%lx", &a, &b) == 2) tot += b - a;
    c++;
  }
  *mapped_kib = tot >> 10;
  return c;
}
static long rss_kib(void) {
  char b[128] = {0};
  int fd = open("/proc/self/statm", O_RDONLY);
  read(fd, b, sizeof b - 1);
  close(fd);
  long vm, rss;
  sscanf(b, "%ld %ld", &vm, &rss);
  return rss * 4;
}

int main(int argc, char** argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 3;
  enum { N = (700 << 20) / 64 };
  void** v = mmap(NULL, N * sizeof(void*), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  free(malloc(16));
  struct rlimit rl = {8ul << 30, 8ul << 30};
  setrlimit(RLIMIT_AS, &rl);
  char b[64] = {0};
  int fd = open("/proc/sys/vm/max_map_count", O_RDONLY);
  read(fd, b, sizeof b - 1);
  close(fd);
  long max = atol(b);
  unsigned long kib;
  long want = max - maps(&kib);
  char* eat = mmap(NULL, want * 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  for (long i = 1; i < want; i += 2) mprotect(eat + i * 4096, 4096, PROT_NONE);
  printf("start: RSS %ld KiB; mappings %d of %ld\n", rss_kib(), maps(&kib), max);
  for (int r = 0; r < rounds; r++) {
    for (int i = 0; i < N; i++) {
      v[i] = malloc(64);
      if (!v[i]) { printf("malloc(64) failed: errno %d, RSS %ld KiB\n", errno, rss_kib()); fflush(stdout); malloc_stats(); return 2; }
      memset(v[i], 1, 64);
    }
    for (int i = 0; i < N; i++) free(v[i]);
    long freed = rss_kib();
    malloc_trim(0);
    long trimmed = rss_kib();
    maps(&kib);
    printf("round %d: 700 MiB of 64 B blocks allocated and freed: RSS %ld KiB; after malloc_trim: RSS %ld KiB, mapped %lu KiB\n", r, freed, trimmed, kib);
  }
  // Step 2 (default knobs): a mapping refused for the map count purges the
  // caches and the retained SuperSlabs: their munmaps fail the same way.
  void* big[64];
  int got = 0;
  for (; got < 64; got++) if (!(big[got] = malloc(1 << 20))) break;
  printf("1 MiB blocks at the map-count limit: %d\n", got);
  for (int i = 0; i < got; i++) free(big[i]);
  munmap(eat, want * 4096);  // the pressure is gone
  malloc_trim(0);
  struct mallinfo2 mi = mallinfo2();
  int m = maps(&kib);
  printf("end (program's mappings gone, malloc_trim): RSS %ld KiB, mapped %lu KiB, mappings %d, "
         "mallinfo2 arena %zu KiB\n", rss_kib(), kib, m, mi.arena >> 10);
  fflush(stdout);
  malloc_stats();
  return 0;
}
