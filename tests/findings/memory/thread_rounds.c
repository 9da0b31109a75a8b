// gcc -O2 -pthread thread_rounds.c -o thread_rounds && ./run5.sh ./thread_rounds 50 4 8
// Short-lived threads walking the size classes (F42): ROUNDS rounds of T threads, each
// allocating K blocks of every size from 16 B to 256 KiB (x1.25 steps), touching them,
// freeing them, exiting. Prints peak RSS.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static int K = 8;
static void* worker(void* arg) {
  unsigned seed = (unsigned)(size_t)arg;
  void* blocks[4096]; int n = 0;
  for (size_t s = 16; s <= 262144; s = s * 5 / 4 + 1) {
    for (int k = 0; k < K && n < 4096; k++) {
      size_t sz = s + (rand_r(&seed) % (s / 8 + 1));
      char* p = malloc(sz); memset(p, 1, sz); blocks[n++] = p;
    }
  }
  for (int i = 0; i < n; i++) free(blocks[i]);
  return NULL;
}
int main(int argc, char** argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 50, threads = argc > 2 ? atoi(argv[2]) : 4;
  K = argc > 3 ? atoi(argv[3]) : 8;
  for (int r = 0; r < rounds; r++) {
    pthread_t t[64];
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, (void*)(size_t)(r * 64 + i + 1));
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
  }
  char line[256]; FILE* f = fopen("/proc/self/status", "r");
  while (fgets(line, sizeof line, f)) if (!strncmp(line, "VmHWM", 5) || !strncmp(line, "VmRSS", 5)) { line[strlen(line)-1] = ' '; fputs(line, stdout); }
  printf("\n");
  return 0;
}
