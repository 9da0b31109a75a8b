// g++ -O1 -std=c++17 -o sized_aligned_wrong sized_aligned_wrong.cc
// ./run.sh ./sized_aligned_wrong <size> <wrong size> <alignment>
// Aligned sized delete with a size of another class than the block's.
#include <stdio.h>
#include <stdlib.h>
#include <new>
int main(int argc, char** argv) {
  size_t n = strtoull(argv[1], 0, 0), wrong = strtoull(argv[2], 0, 0), al = strtoull(argv[3], 0, 0);
  void* p = ::operator new(n, std::align_val_t(al));
  ::operator delete(p, wrong, std::align_val_t(al));
  printf("SILENT: aligned(%zu) block of %zu deleted with size %zu\n", al, n, wrong);
  return 0;
}
