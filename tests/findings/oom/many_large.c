// gcc -O2 many_large.c -o many_large
// ./many_large SIZE COUNT   (with and without LD_PRELOAD)
// Holds COUNT live blocks of SIZE (first byte touched) at the default
// vm.max_map_count; reports the first failure and the number of mappings.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
static char buf[1 << 24];
static int map_count(void) {
  int fd = open("/proc/self/maps", O_RDONLY);
  ssize_t n, t = 0;
  while ((n = read(fd, buf + t, sizeof buf - 1 - t)) > 0) t += n;
  close(fd);
  int c = 0;
  for (ssize_t i = 0; i < t; i++) c += buf[i] == '\n';
  return c;
}
int main(int argc, char** argv) {
  size_t size = strtoul(argv[1], 0, 0), count = strtoul(argv[2], 0, 0);
  char** v = mmap(NULL, count * sizeof(char*), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  size_t n = 0;
  for (; n < count; n++) {
    errno = 0;
    v[n] = malloc(size);
    if (!v[n]) break;
    v[n][0] = 1;
  }
  int e = errno;
  printf("%zu of %zu blocks of %zu B (%zu MiB) live; %s errno=%d; mappings: %d\n", n, count, size,
         n * size >> 20, n < count ? "then NULL" : "all ok", e, map_count());
  for (size_t i = 0; i < n; i++) free(v[i]);
  return n < count;
}
