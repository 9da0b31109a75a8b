// Build: gcc -O1 -g -o /tmp/stale_key_copy tests/findings/stale_key_copy.c
// Run:   /tmp/stale_key_copy [realloc|usable|free]                                       (glibc: "ok")
//        LD_PRELOAD=bazel-bin/hakmem/libhakmem.so /tmp/stale_key_copy   (hakmem before session 22: abort)
//
// A legal C program: a table of fixed-size name records is malloc'ed and
// each name strcpy'd in (the bytes after the NUL stay indeterminate), then
// each record is copied by struct assignment into a block of its own, and
// those copies are realloc'ed / freed. With hakmem, the table's
// uninitialized bytes hold the free keys of the 16-byte blocks its slab
// held before (a freed slab carved again for another class); struct
// assignment carries one into the copy's second word, and hakmem takes
// the live copy for a freed block.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>

struct rec { char name[16]; };

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "realloc";
  // Earlier phase of the program: many small objects, all freed.
  enum { kSmall = 16384 };
  static void* small[kSmall];
  for (int i = 0; i < kSmall; i++) small[i] = malloc(16);
  for (int i = 0; i < kSmall; i++) free(small[i]);
  // Later phase: tables of records, names copied in.
  int checked = 0;
  static struct rec* tables[64];
  for (int t = 0; t < 64; t++) {
    struct rec* table = tables[t] = malloc(128 * sizeof(struct rec));  // tables kept
    for (int k = 0; k < 128; k++) strcpy(table[k].name, "n");
    struct rec* copies[128];
    for (int k = 0; k < 128; k++) {
      copies[k] = malloc(sizeof(struct rec));
      *copies[k] = table[k];               // legal: copies indeterminate bytes too
    }
    for (int k = 0; k < 128; k++) {
      if (strcmp(mode, "usable") == 0) {
        checked += malloc_usable_size(copies[k]) >= 16;
        free(copies[k]);
      } else if (strcmp(mode, "free") == 0) {
        free(copies[k]);
        checked++;
      } else {
        struct rec* r = realloc(copies[k], 2 * sizeof(struct rec));  // grow the record
        checked += r != NULL;
        free(r);
      }
    }
  }
  for (int t = 0; t < 64; t++) free(tables[t]);
  printf("ok (%d records)\n", checked);
  return 0;
}
