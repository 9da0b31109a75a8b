// Build: gcc -O1 -g -o /tmp/calloc_stale_mark tests/findings/calloc_stale_mark.c
// Run:   /tmp/calloc_stale_mark                                          (glibc: "calloc ok")
//        LD_PRELOAD=bazel-bin/hakmem/libhakmem.so /tmp/calloc_stale_mark  (hakmem before session 22: non-zero bytes)
//
// calloc(1, 40000) returns a block whose bytes from 4096 on still hold the
// data of the block freed before. The program copied 32 bytes from a part
// of a fresh (uninitialized) 48 KiB buffer into the start of a 40 KB block
// (legal: memcpy of indeterminate bytes); those bytes held hakmem's
// "pages given back" mark of a big block that occupied that address
// before (the upkeep / a trim writes it 16 bytes into each free big block
// whose pages it discards). Freed and listed again with that mark, the
// block is taken for one whose pages read zero, and calloc clears only its
// first page.
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <malloc.h>
#include <unistd.h>

int main(void) {
  // Phase 1: a batch of 40 KB buffers, all freed; the process trims.
  static void* big[64];
  for (int i = 0; i < 51; i++) { big[i] = malloc(40000); memset(big[i], 0x77, 40000); }
  for (int i = 0; i < 50; i++) free(big[i]);
  malloc_trim(0);
  free(big[50]);
  for (int k = 0; k < 3; k++) { usleep(120000); free(malloc(100)); }  // idle a while
  // Phase 2: a 48 KiB buffer, filled only partly; a 40 KB record whose
  // 32-byte header is copied from the buffer's (unfilled) second half.
  char* buf = malloc(49152);
  memset(buf, 'b', 1000);
  char* keep = malloc(40000);                 // another record, kept
  memset(keep, 1, 40000);
  char* rec = malloc(40000);
  memset(rec, 0x55, 40000);
  memcpy(rec, buf + 32768, 32);               // header from the buffer
  unsigned sum = 0;                           // the record is used
  for (int i = 0; i < 40000; i++) sum += (unsigned char)rec[i];
  printf("record checksum %u\n", sum);
  free(rec);
  malloc_trim(0);
  // Phase 3: zeroed tables of the same size.
  size_t bad = 0;
  unsigned char* z[4];
  for (int t = 0; t < 4; t++) {
    z[t] = calloc(1, 40000);
    size_t n = 0, first = 0;
    for (size_t i = 0; i < 40000; i++) if (z[t][i]) { if (!n) first = i; n++; }
    if (n) printf("calloc(1, 40000) #%d = %p: %zu non-zero bytes, the first at offset %zu (0x%02x); the record freed was %p\n", t, (void*)z[t], n, first, z[t][first], (void*)rec);
    bad += n;
  }
  if (!bad) printf("calloc ok\n");
  for (int t = 0; t < 4; t++) free(z[t]);
  free(keep); free(buf);
  return bad != 0;
}
