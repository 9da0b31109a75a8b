// gcc -O1 -o stale_bin_copy_other_class stale_bin_copy_other_class.c
// LD_PRELOAD=bazel-bin/hakmem/libhakmem.so ./stale_bin_copy_other_class
// Expected (hakmem): "malloc(64) returned 0x...500 = a 32 B block ...; live neighbour's first byte is now 0xaa":
// a 64 B block handed out over a live 32 B block, no report until the next malloc(32).
// glibc: aborts earlier ("malloc_consolidate(): unaligned fastbin chunk detected").
// One thread frees a 64 B block twice, not immediately (glibc reports it before any
// block is reused). The first copy reaches the slab's list, the slab empties and is
// carved again for 32 B blocks by the same heap; the second copy, still in the
// 64 B bin, then carries that heap's bin key again and malloc(64) hands it out
// overlapping a live 32 B block.
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N 2200
static void* a[N];
static void* x[200];
static void* b[400];

int main(void) {
  for (int i = 0; i < N; i++) a[i] = malloc(64);
  // p: the lowest address of the first 64 KiB slab.
  uintptr_t slab = (uintptr_t)a[0] & ~(uintptr_t)0xffff;
  void* p = NULL;
  for (int i = 0; i < N; i++)
    if (((uintptr_t)a[i] & ~(uintptr_t)0xffff) == slab && (p == NULL || a[i] < p)) p = a[i];
  int nx = 0;
  for (int i = 0; i < N; i++) {  // free every other block of that slab; keep 127+ others
    if (a[i] == p) continue;
    if (((uintptr_t)a[i] & ~(uintptr_t)0xffff) == slab) free(a[i]);
    else if (nx < 200) x[nx++] = a[i];
  }
  malloc_trim(0);          // all of them onto the slab's list; p is its last live block
  usleep(150000);
  { void* volatile m = malloc(3000); free(m); }  // a slow path: the upkeep runs now, not in the next 100 ms
  fprintf(stderr,"step first free\n"); free(p);                 // first free
  for (int i = 0; i < 70; i++) free(x[i]);
  fprintf(stderr,"step second free\n"); free(p);                 // second free: glibc aborts here
  for (int i = 70; i < 127; i++) free(x[i]);  // overflow: the bin's oldest half, p's first copy with it, goes to the slab; the slab empties
  fprintf(stderr,"step carve\n"); int nb = 0, j20 = -1;
  for (nb = 0; nb < 400; nb++) {  // the same heap carves the slab again for 32 B blocks
    b[nb] = malloc(32);
    if (b[nb] == p) j20 = nb;
    if (j20 >= 0 && nb == j20 + 1) { nb++; break; }
  }
  if (j20 < 0) { printf("slab not reused for 32 B blocks; p=%p b0=%p\n", p, b[0]); return 2; }
  void* neighbour = b[j20 + 1];
  memset(neighbour, 0x11, 32);     // a live 32 B block right after p
  fprintf(stderr,"step free32\n"); free(p);                          // p, as a 32 B block, freed once (legitimately)
  void* got[100];
  int hit = -1;
  for (int i = 0; i < 100; i++) {
    got[i] = malloc(64);
    if (got[i] == p) { hit = i; break; }
  }
  if (hit < 0) { printf("no 64 B malloc returned p\n"); return 3; }
  printf("malloc(64) returned %p = a 32 B block the slab now holds; live 32 B block %p follows it\n", p, neighbour);
  memset(got[hit], 0xAA, 64);       // the program uses its 64 bytes
  printf("live neighbour's first byte is now 0x%02x (was 0x11): silently overwritten\n",
         ((unsigned char*)neighbour)[0]);
  fflush(stdout);
  printf("now one more malloc(32)...\n"); fflush(stdout);
  void* q = malloc(32);
  printf("malloc(32) = %p, no report\n", q);
  return 0;
}
