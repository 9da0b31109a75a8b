// N malloc+free pairs of one tiny size: the program that
// fastpath_instructions_test.sh runs under callgrind to count the
// instructions of one pair.
#include <stdlib.h>

int main(int argc, char** argv) {
  const long pairs = argc > 1 ? atol(argv[1]) : 100000;
  const size_t size = argc > 2 ? static_cast<size_t>(atol(argv[2])) : 32;
  for (long i = 0; i < pairs; i++) {
    void* volatile p = malloc(size);
    free(p);
  }
  return 0;
}
