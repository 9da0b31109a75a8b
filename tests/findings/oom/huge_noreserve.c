// gcc -O2 huge_noreserve.c -o huge_noreserve
// ./huge_noreserve ; LD_PRELOAD=bazel-bin/hakmem/libhakmem.so ./huge_noreserve
// vm.overcommit_memory=0 (the default heuristic): requests far beyond RAM + swap.
// glibc's mmap is refused by the heuristic (NULL, ENOMEM); hakmem maps with
// MAP_NORESERVE, which the heuristic does not check, and succeeds: the program
// finds out only when it touches the pages (OOM killer). Nothing is touched here.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
int main(void) {
  struct sysinfo si;
  sysinfo(&si);
  unsigned long long ram = (unsigned long long)si.totalram * si.mem_unit;
  unsigned long long swap = (unsigned long long)si.totalswap * si.mem_unit;
  printf("RAM %llu GiB, swap %llu GiB\n", ram >> 30, swap >> 30);
  size_t sizes[] = {ram + swap + (1ull << 30), 4 * ram, 1ull << 40};
  for (int i = 0; i < 3; i++) {
    errno = 0;
    void* p = malloc(sizes[i]);
    printf("malloc(%zu GiB) = %p errno=%d\n", sizes[i] >> 30, p, errno);
    free(p);
    errno = 0;
    p = calloc(1, sizes[i]);
    printf("calloc(1, %zu GiB) = %p errno=%d\n", sizes[i] >> 30, p, errno);
    free(p);
  }
  return 0;
}
