// gcc -O2 large_varsizes.c -o large_varsizes && ./run5.sh ./large_varsizes 40
// One buffer at a time (at most 100 MiB live), each of a different size (10-100 MiB, sizes
// more than 25% apart), filled and freed, N times. Prints peak RSS. (F41: hakmem 371 MB,
// glibc 132, tcmalloc 109, jemalloc 106, mimalloc 116; `sort -S 100M` shows the same.)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char** argv) {
  int n = argc > 1 ? atoi(argv[1]) : 20;
  size_t sizes[] = {100, 35, 60, 12, 80, 22, 45, 17, 70, 28, 90, 50};
  unsigned long sum = 0;
  for (int i = 0; i < n; i++) {
    size_t s = sizes[i % 12] << 20;
    unsigned char* p = malloc(s);
    memset(p, i, s);
    sum += p[s / 2];
    free(p);
  }
  char line[256];
  FILE* f = fopen("/proc/self/status", "r");
  while (fgets(line, sizeof line, f)) {
    if (!strncmp(line, "VmHWM", 5) || !strncmp(line, "VmRSS", 5)) fputs(line, stdout);
  }
  printf("sum %lu\n", sum);
  return 0;
}
