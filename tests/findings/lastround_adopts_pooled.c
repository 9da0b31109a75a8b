// gcc -O2 -pthread tests/findings/lastround_adopts_pooled.c -o /tmp/lastround_adopts_pooled
// LD_PRELOAD=bazel-bin/hakmem/libhakmem.so HAKMEM_STATS=1 /tmp/lastround_adopts_pooled
// 1. 8 workers each allocate 40 MiB of 256 B blocks, hand them to main and exit: 8 pooled heaps.
// 2. 8 threads on stacks of their own (pthread_attr_setstack) make their first allocator call in
//    the last pthread-key destructor round (F1's pattern): each takes a pooled heap, which stays
//    marked active for a dead thread whose pthread_t no later thread has.
// 3. main frees all 320 MiB and calls malloc_trim(0).
// Args: own_stacks (1) concurrent_late_threads (0) later_threads (1). With default stacks
// (own_stacks 0) the heap is taken back by the next thread that gets the same pthread_t: run
// "0 1 0" (8 late threads at once, no thread afterwards) to see it stay with default stacks.
#define _GNU_SOURCE
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

enum { kWorkers = 8, kPer = 160000 };  // 8 x 160000 x 256 B = 320 MiB
static void** blocks[kWorkers];
static pthread_key_t key;

static long rss_mib(void) {
  long vm = 0, rss = 0;
  FILE* f = fopen("/proc/self/statm", "r");
  if (fscanf(f, "%ld %ld", &vm, &rss) != 2) rss = 0;
  fclose(f);
  return rss * 4096 >> 20;
}
static void* worker(void* arg) {
  void** b = arg;
  for (int i = 0; i < kPer; i++) { b[i] = malloc(256); memset(b[i], 1, 256); }
  return NULL;
}
static void destructor(void* v) {
  uintptr_t round = (uintptr_t)v;
  if (round < PTHREAD_DESTRUCTOR_ITERATIONS) { pthread_setspecific(key, (void*)(round + 1)); return; }
  void* volatile p = malloc(100);  // the thread's first allocation
  free(p);
}
static void* late(void* arg) { pthread_setspecific(key, (void*)1); return arg; }

int main(int argc, char** argv) {
  int own_stacks = argc > 1 ? atoi(argv[1]) : 1;
  int concurrent = argc > 2 ? atoi(argv[2]) : 0;
  int later = argc > 3 ? atoi(argv[3]) : 1;
  pthread_key_create(&key, destructor);
  for (int t = 0; t < kWorkers; t++) blocks[t] = malloc(kPer * sizeof(void*));
  pthread_t th[kWorkers];
  for (int t = 0; t < kWorkers; t++) pthread_create(&th[t], NULL, worker, blocks[t]);
  for (int t = 0; t < kWorkers; t++) pthread_join(th[t], NULL);
  long peak = rss_mib();
  const size_t kStack = 256 * 1024;
  char* stacks = mmap(NULL, kWorkers * kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  pthread_t l[kWorkers];
  for (int t = 0; t < kWorkers; t++) {
    pthread_attr_t a;
    pthread_attr_init(&a);
    if (own_stacks) pthread_attr_setstack(&a, stacks + t * kStack, kStack);
    pthread_create(&l[t], &a, late, NULL);
    if (!concurrent) pthread_join(l[t], NULL);
    pthread_attr_destroy(&a);
  }
  if (concurrent) for (int t = 0; t < kWorkers; t++) pthread_join(l[t], NULL);
  for (int t = 0; t < kWorkers; t++)
    for (int i = 0; i < kPer; i++) free(blocks[t][i]);
  malloc_trim(0);
  // later threads (default stacks) allocate and exit as usual
  for (int t = 0; t < kWorkers && later; t++) pthread_create(&th[t], NULL, late, NULL);
  for (int t = 0; t < kWorkers && later; t++) pthread_join(th[t], NULL);
  void* volatile p = malloc(1000);
  free(p);
  malloc_trim(0);
  printf("peak %ld MiB; after freeing everything and malloc_trim(0): %ld MiB\n", peak, rss_mib());
  return 0;
}
