// gcc -O1 -pthread -o stale_copy_retained stale_copy_retained.c
// LD_PRELOAD=bazel-bin/hakmem/libhakmem.so ./stale_copy_retained
// The F12 scenario with default settings: a 64 B block freed by two threads.
// The owner's copy goes home, the slab and its SuperSlab empty, malloc_trim
// evicts it (its address space retained). The other thread's copy waits in its
// bin. That thread then needs a SuperSlab for 32 B blocks and gets the retained
// one back; a 32 B block it frees at the copy's address carries its bin key
// again, so malloc(64) hands the stale copy out over a live 32 B block.
#include <malloc.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static sem_t to_u, to_main;
static void* volatile p;
static void* volatile sink;

static void* u_thread(void* arg) {
  (void)arg;
  sink = malloc(1000); free(sink);  // a slow path: U's upkeep runs now, then not for 100 ms
  sem_wait(&to_u);
  free(p);                          // first free of p (another thread's block)
  sem_post(&to_main);
  sem_wait(&to_u);                  // main freed p too, trimmed: p's SuperSlab is evicted
  void* b[64];
  int j = -1, n;
  for (n = 0; n < 64; n++) {        // U's first 32 B blocks: a new SuperSlab, the retained one
    b[n] = malloc(32);
    if (b[n] == p) j = n;
    if (j >= 0 && n == j + 1) { n++; break; }
  }
  if (j < 0) { printf("the retained SuperSlab was not reused here (p=%p, b[0]=%p)\n", p, b[0]); exit(2); }
  void* neighbour = b[j + 1];
  memset(neighbour, 0x11, 32);
  free(b[j]);                       // frees the 32 B block at p's address (legitimately)
  unsigned char* q = malloc(64);    // U's 64 B bin: the stale copy
  printf("malloc(64) = %p (the 32 B block at %p was just freed; 32 B block %p is live)\n", (void*)q,
         (void*)b[j], neighbour);
  memset(q, 0xAA, 64);
  printf("live neighbour's first byte: 0x%02x (was 0x11)\n", ((unsigned char*)neighbour)[0]);
  fflush(stdout);
  return NULL;
}

int main(void) {
  sem_init(&to_u, 0, 0);
  sem_init(&to_main, 0, 0);
  pthread_t u;
  pthread_create(&u, NULL, u_thread, NULL);
  p = malloc(64);
  usleep(20000);
  sem_post(&to_u);
  sem_wait(&to_main);
  free(p);          // second free of p, by its owner
  malloc_trim(0);   // p's slab, then its SuperSlab, empty: evicted, address space retained
  sem_post(&to_u);
  pthread_join(u, NULL);
  printf("no report\n");
  return 0;
}
