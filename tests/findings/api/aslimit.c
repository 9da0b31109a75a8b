// gcc -O2 aslimit.c -o aslimit ; (ulimit -v 40000; LD_PRELOAD=... ./aslimit [trim])
// Phases of one block size each under an address-space limit; every block is freed between
// phases (and, with "trim", malloc_trim(0) is called).
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char** argv) {
  size_t sizes[] = {32, 1000, 4000, 20000, 50000, 200000, 1 << 20};
  for (unsigned k = 0; k < sizeof sizes / sizeof *sizes; k++) {
    size_t n = sizes[k], total = 0;
    void** v = calloc(1 << 20, sizeof(void*));
    int i = 0;
    while (i < (1 << 20) && (v[i] = malloc(n)) != NULL) { memset(v[i], 1, n); total += n; i++; }
    printf("size %7zu: %6zu KiB live before malloc failed\n", n, total >> 10);
    while (i--) free(v[i]);
    free(v);
    if (argc > 1) malloc_trim(0);
  }
  return 0;
}
