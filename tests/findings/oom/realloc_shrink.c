// gcc -O2 realloc_shrink.c -o realloc_shrink
// ./realloc_shrink            (glibc)
// LD_PRELOAD=bazel-bin/hakmem/libhakmem.so ./realloc_shrink
// With the address space exhausted (RLIMIT_AS), realloc that SHRINKS a block
// (1 MiB -> 100 KB, 1 MiB -> 16 B, 300 KB -> 200 KB, 4 KiB -> 16 B, 1000 B -> 100 B)
// and realloc that grows past the limit. glibc never fails a shrink.
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static long vm_kib(void) {
  FILE* f = fopen("/proc/self/statm", "r");
  unsigned long vm = 0, rss = 0;
  if (fscanf(f, "%lu %lu", &vm, &rss) != 2) vm = 0;
  fclose(f);
  return (long)vm * 4;
}

typedef struct Node { struct Node* next; } Node;
static Node* head;
static size_t filled;
static void fill_everything(void) {
  static const size_t sizes[] = {64 << 20, 8 << 20, 1 << 20, 300000, 100000, 32768, 4096, 1024, 256, 64, 16};
  for (int s = 0; s < 11; s++) {
    for (;;) {
      Node* n = malloc(sizes[s]);
      if (!n) break;
      n->next = head;
      head = n;
      filled += sizes[s];
    }
  }
}
static void free_everything(void) {
  while (head) { Node* n = head->next; free(head); head = n; }
  filled = 0;
}

int main(void) {
  static const size_t from[] = {1 << 20, 1 << 20, 300000, 4096, 1000, 1 << 20, 100};
  static const size_t to[] = {100000, 16, 200000, 16, 100, 512u << 20, 200};
  printf("start\n");
  struct rlimit rl;
  rl.rlim_cur = rl.rlim_max = (rlim_t)(vm_kib() + 128 * 1024) * 1024;
  setrlimit(RLIMIT_AS, &rl);
  int bad = 0;
  for (int t = 0; t < 7; t++) {
    unsigned char* p = malloc(from[t]);
    memset(p, 0xab, from[t]);
    fill_everything();
    errno = 0;
    unsigned char* q = realloc(p, to[t]);
    int e = errno;
    size_t keep = from[t] < to[t] ? from[t] : to[t];
    int intact = 1;
    unsigned char* check = q ? q : p;
    for (size_t i = 0; i < keep; i++) if (check[i] != 0xab) { intact = 0; break; }
    printf("address space full (%zu MiB): realloc(%zu B -> %zu B) = %s errno=%d, data %s\n",
           filled >> 20, from[t], to[t], q ? (q == p ? "same block" : "moved") : "NULL", e,
           intact ? "intact" : "CORRUPT");
    if (!intact) bad++;
    if (!q && to[t] < from[t]) bad++;   // a shrink that fails
    if (!q && e != ENOMEM) bad++;
    free(q ? q : p);
    free_everything();
  }
  printf("bad=%d\n", bad);
  return bad != 0;
}
