// gcc -O2 -pthread oommt.c -o oommt ; under ulimit -v: threads allocate until NULL, free crosswise, rounds must recover
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define NT 4
static void** blocks[NT]; static size_t nb[NT];
static pthread_barrier_t bar;
static void* thr(void* a) {
  long id = (long)a; unsigned s = id + 1;
  blocks[id] = malloc(2000000 * sizeof(void*));
  for (int round = 0; round < 4; round++) {
    size_t n = 0;
    for (;;) { s = s * 1103515245 + 12345; size_t len = (s >> 8) % 10 < 8 ? (s >> 12) % 2000 + 1 : (s >> 12) % 400000 + 1; void* p = malloc(len); if (!p) break; memset(p, 1, len < 64 ? len : 64); blocks[id][n++] = p; if (n == 2000000) break; }
    nb[id] = n;
    pthread_barrier_wait(&bar);
    long other = (id + round + 1) % NT;  // free another thread's blocks
    for (size_t i = 0; i < nb[other]; i++) free(blocks[other][i]);
    if (id == 0) { size_t tot = 0; for (int i = 0; i < NT; i++) tot += nb[i]; printf("round %d: %zu blocks\n", round, tot); fflush(stdout); }
    pthread_barrier_wait(&bar);
  }
  return 0;
}
int main(void) {
  pthread_barrier_init(&bar, 0, NT);
  pthread_t t[NT]; for (long i = 0; i < NT; i++) pthread_create(&t[i], 0, thr, (void*)i);
  for (int i = 0; i < NT; i++) pthread_join(t[i], 0);
  void* p = malloc(1 << 20); printf("end: %s\n", p ? "ok" : "NULL");
}
