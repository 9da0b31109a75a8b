// gcc -O1 -pthread -o /tmp/repro_tc tests/findings/stale_transfer_copy.c
// LD_PRELOAD=bazel-bin/hakmem/libhakmem.so /tmp/repro_tc        (optionally under taskset -c 0)
//
// A 64 B block X freed twice: first by another thread F while the transfer
// cache is engaged (F's flush puts X into the class-64 transfer cache, key
// TransferKey), then by its owner M (M's bin, then home to its slab). X's slab
// empties, goes back to the slab pool, and M carves it again for 32 B blocks.
// The address X, now a 32 B block, is freed (legitimately) by F and goes into
// the class-32 transfer cache: its key is TransferKey again. A third thread's
// malloc(64) refills from the class-64 cache, claims the stale batch (the key
// matches, the slab is in use), and hands out X as a 64 B block, over the live
// 32 B block at X+32. Nothing is reported.
//
// Three "beater" threads run a slow path every millisecond, so that the census
// counts more running threads than CPUs (the transfer cache's gate) on a
// machine with 2 CPUs (or any, under taskset -c 0).
// The program reads the key word of freed blocks only for its diagnostics.
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NA 4096
static void* a[NA];          // M's 64 B blocks
static void* b32[2200];      // M's 32 B blocks
static int nb32;
static void* volatile X;
static void* volatile N;     // the live 32 B block at X + 32
static void* f_list[1000];   // what F frees next
static int f_count;
static sem_t to_f, from_f;
static volatile int stop_beaters;

// A free block's key as hakmem stores it (since session 22: its second
// word XOR the block's address, times an odd constant; see KeyOf).
static uint64_t key_of(void* p) {
  return (((volatile uint64_t*)p)[1] ^ (uintptr_t)p) * 0x9e3779b97f4a7c15ull;
}

static void* beater(void* arg) {
  (void)arg;
  void* v[40];
  while (!stop_beaters) {
    for (int i = 0; i < 40; i++) v[i] = malloc(1000);
    for (int i = 0; i < 40; i++) free(v[i]);
    usleep(1000);
  }
  return NULL;
}

static void* f_thread(void* arg) {
  (void)arg;
  for (;;) {
    sem_wait(&to_f);
    if (f_count < 0) return NULL;
    for (int i = 0; i < f_count; i++) free(f_list[i]);
    sem_post(&from_f);
  }
}

static void run_f(void) {
  sem_post(&to_f);
  sem_wait(&from_f);
}

static void* r_thread(void* arg) {
  (void)arg;
  unsigned char before = ((unsigned char*)N)[0];
  for (int i = 0; i < 1000; i++) {
    unsigned char* q = malloc(64);
    if (q == X) {
      printf("R: malloc(64) #%d returned X=%p; malloc_usable_size=%zu; live 32 B block N=%p "
             "lies inside [X, X+64)\n",
             i, (void*)q, malloc_usable_size(q), N);
      memset(q, 0xAA, 64);
      printf("R: N's first byte was 0x%02x, now 0x%02x: a live block overwritten, no report\n",
             before, ((unsigned char*)N)[0]);
      fflush(stdout);
      return (void*)1;
    }
  }
  printf("R: X never handed out as a 64 B block\n");
  return NULL;
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IONBF, 0);
  int finish = argc > 1;  // go on afterwards, to see when (if) hakmem reports
  sem_init(&to_f, 0, 0);
  sem_init(&from_f, 0, 0);
  pthread_t g[3], f, r;
  for (int i = 0; i < 3; i++) pthread_create(&g[i], NULL, beater, NULL);
  pthread_create(&f, NULL, f_thread, NULL);
  usleep(60000);  // a few censuses: more running threads than CPUs

  // Phase 1 (M): 4096 blocks of 64 B, four 64 KiB slabs.
  for (int i = 0; i < NA; i++) a[i] = malloc(64);
  uintptr_t s_lo = (uintptr_t)a[NA / 4 + 10] & ~(uintptr_t)0xffff;  // slab S: the second
  uintptr_t cur = (uintptr_t)a[NA - 1] & ~(uintptr_t)0xffff;
  uintptr_t first = (uintptr_t)a[0] & ~(uintptr_t)0xffff;
  if (s_lo == cur || s_lo == first) { printf("unexpected layout\n"); return 2; }
  // X: the 100th lowest 64 B block of S.
  void* xs = NULL;
  {
    uintptr_t lowest = UINTPTR_MAX;
    for (int i = 0; i < NA; i++)
      if (((uintptr_t)a[i] & ~(uintptr_t)0xffff) == s_lo && (uintptr_t)a[i] < lowest) lowest = (uintptr_t)a[i];
    xs = (void*)(lowest + 100 * 64);
  }
  X = xs;
  // Phase 2 (F): frees 600 blocks of other slabs (neither S, nor the first, nor
  // the current one), X at position 450: its flush goes to the transfer cache.
  int nf = 0;
  void* filler[600];
  for (int i = 0; i < NA && nf < 600; i++) {
    uintptr_t sl = (uintptr_t)a[i] & ~(uintptr_t)0xffff;
    if (sl != s_lo && sl != cur && sl != first) { filler[nf++] = a[i]; a[i] = NULL; }
  }
  if (nf < 600) { printf("not enough filler: %d\n", nf); return 2; }
  f_count = 0;
  for (int i = 0; i < 600; i++) {
    if (i == 450) f_list[f_count++] = X;
    f_list[f_count++] = filler[i];
  }
  run_f();
  uint64_t k_first = key_of(filler[0]), k_x = key_of(X), k_near = key_of(filler[449]);
  printf("phase 2: X's key %s the keys of its flush neighbours; %s the first filler's (%s)\n",
         k_x == k_near ? "equals" : "differs from", k_x == k_first ? "equals" : "differs from",
         (k_x ^ k_first) == 6 ? "they differ in bits 1-2: remote vs transfer key" : "?");
  // Phase 3 (M): the double free of X, then every other block of S, then 200
  // blocks of the first slab to push them all out of M's bin: S empties.
  free(X);  // second free
  for (int i = 0; i < NA; i++)
    if (a[i] != NULL && a[i] != X && ((uintptr_t)a[i] & ~(uintptr_t)0xffff) == s_lo) { free(a[i]); a[i] = NULL; }
  int pushed = 0;
  for (int i = 0; i < NA && pushed < 200; i++)
    if (a[i] != NULL && ((uintptr_t)a[i] & ~(uintptr_t)0xffff) == first) { free(a[i]); a[i] = NULL; pushed++; }
  printf("phase 3: X's key now %s the transfer key (it went home)\n",
         key_of(X) == k_x ? "still equals" : "differs from");
  // Phase 4 (M): 32 B blocks; S is carved again for them.
  int jx = -1;
  for (nb32 = 0; nb32 < 2200; nb32++) {
    b32[nb32] = malloc(32);
    if (b32[nb32] == X) jx = nb32;
    if (jx >= 0 && nb32 >= jx + 400) { nb32++; break; }
  }
  if (jx < 0) { printf("S was not carved again for 32 B blocks (b32[0]=%p, X=%p)\n", b32[0], X); return 3; }
  if (b32[jx + 1] != (char*)X + 32) { printf("X+32 is not the next 32 B block\n"); return 3; }
  N = b32[jx + 1];
  memset(N, 0x11, 32);
  printf("phase 4: S carved again for 32 B blocks: X=%p is b32[%d], N=X+32 live\n", X, jx);
  // Phase 5 (F): frees 600 of M's 32 B blocks (not N), X at position 450.
  f_count = 0;
  int taken = 0;
  for (int i = 0; i < nb32 && f_count < 601; i++) {
    if (b32[i] == N || b32[i] == X) continue;
    if (f_count == 450) { f_list[f_count++] = X; }
    f_list[f_count++] = b32[i];
    b32[i] = NULL;
    taken++;
  }
  run_f();
  printf("phase 5: X's key %s the transfer key of phase 2\n", key_of(X) == k_x ? "equals" : "differs from");
  // Phase 6 (R, a new thread): malloc(64) until the refills reach the stale batch.
  void* res;
  pthread_create(&r, NULL, r_thread, NULL);
  pthread_join(r, &res);
  if (!finish) {
    printf("%s\n", res ? "REPRODUCED: overlapping hand-out, no report" : "not reproduced");
    fflush(stdout);
    _exit(res ? 0 : 1);
  }
  printf("going on: a trim sends the transfer cache home...\n");
  fflush(stdout);
  malloc_trim(0);
  printf("no report after the trim either\n");
  stop_beaters = 1;
  f_count = -1;
  sem_post(&to_f);
  pthread_join(f, NULL);
  for (int i = 0; i < 3; i++) pthread_join(g[i], NULL);
  return 0;
}
