// gcc -O2 vas2.c -o vas2 ; ./vas2 BLOCK_MB : untouched big blocks until malloc fails, then try small ones
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
static int maps(void) { FILE* f = fopen("/proc/self/maps", "r"); int n = 0, c; if (!f) return -1; while ((c = fgetc(f)) != EOF) n += c == '\n'; fclose(f); return n; }
int main(int argc, char** argv) {
  size_t sz = strtoul(argv[1], 0, 0) << 20; long max = argc > 2 ? atol(argv[2]) : 1000000;
  long got = 0; void* last = 0;
  for (; got < max; got++) { char* p = malloc(sz); if (!p) break; p[0] = 1; last = p; }
  int e = errno;
  printf("got %ld blocks of %zu MiB (%.2f TiB), errno %d, last %p, maps %d\n", got, sz >> 20, got * (double)sz / (1ull << 40), e, last, maps());
  void* m = mmap(0, 1 << 30, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  printf("plain mmap of 1 GiB: %s\n", m == MAP_FAILED ? "FAILED" : "ok");
  size_t tries[] = {1, 100, 5000, 100000, 300000, 20 << 20};
  for (int i = 0; i < 6; i++) { errno = 0; void* p = malloc(tries[i]); printf("malloc(%zu) = %p errno %d\n", tries[i], p, errno); }
  return 0;
}
