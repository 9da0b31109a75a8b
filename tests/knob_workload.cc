// A plain program for knobs_test.sh: fills ~300 MiB with small blocks and
// 40 MiB with 1 MiB blocks, frees everything and exits normally, so that
// HAKMEM_STATS=1 prints the cache state the HAKMEM_* knobs led to.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

int main() {
  std::vector<void*> blocks;
  blocks.reserve(1 << 21);
  unsigned seed = 1;
  size_t bytes = 0;
  while (bytes < (size_t{300} << 20)) {
    seed = seed * 1103515245u + 12345u;
    const size_t size = 16 + (seed >> 8) % 1009;
    void* p = malloc(size);
    if (p == nullptr) return 1;
    memset(p, 1, size);
    blocks.push_back(p);
    bytes += size;
  }
  for (void* p : blocks) free(p);
  blocks.clear();
  for (int i = 0; i < 40; i++) {
    void* p = malloc(size_t{1} << 20);
    if (p == nullptr) return 1;
    memset(p, 2, size_t{1} << 20);
    blocks.push_back(p);
  }
  for (void* p : blocks) free(p);
  printf("workload: done\n");
  return 0;
}
