// Helpers shared by the whole-allocator tests (tests/*_test.cc).
//
// Every test binary is built twice (see defs.bzl): linked with
// //hakmem:malloc, and as a plain glibc binary run under
// LD_PRELOAD=libhakmem.so. test_util.cc registers a global GoogleTest
// environment that fails the whole binary unless hakmem is the allocator
// actually serving malloc and operator new in this process.
#ifndef HAKMEM_TESTS_TEST_UTIL_H_
#define HAKMEM_TESTS_TEST_UTIL_H_

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <string>

#include "tests/residency.h"  // ResidentPages, HugePagesAlways

namespace hakmem_test {

// Hides a pointer from the optimizer, so that malloc/free pairs and misuse
// the compiler can see through are really executed.
inline void* Opaque(void* p) {
  asm volatile("" : "+r"(p) : : "memory");
  return p;
}
inline size_t OpaqueSize(size_t n) {
  asm volatile("" : "+r"(n));
  return n;
}

// Empty when hakmem is the active allocator of this process (in the way the
// build variant says it should be), else why not.
std::string WhyHakmemIsNotActive();

// "0x7f..." exactly as hakmem prints a pointer in its misuse reports.
std::string HexPtr(const void* p);
// A POSIX extended regex matching `s` literally.
std::string RegexEscape(const std::string& s);

// Resident set size and virtual size of this process (/proc/self/statm).
size_t RssBytes();
size_t VmBytes();

// Deterministic byte pattern derived from (seed, offset).
void Fill(void* p, size_t n, uint64_t seed);
// Offset of the first byte differing from Fill's pattern, or SIZE_MAX.
size_t FirstMismatch(const void* p, size_t n, uint64_t seed);
inline bool Check(const void* p, size_t n, uint64_t seed) {
  return FirstMismatch(p, n, seed) == SIZE_MAX;
}
// For big blocks: the pattern on the first and last 64 bytes and on 16 bytes
// of every 4 KiB page only (cheap, and still touches every page).
void FillSparse(void* p, size_t n, uint64_t seed);
bool CheckSparse(const void* p, size_t n, uint64_t seed);
// After a realloc that kept `keep` bytes of a block filled by FillSparse(p,
// n, seed): checks the filled bytes that lie below `keep`.
bool CheckSparsePrefix(const void* p, size_t n, size_t keep, uint64_t seed);

// waitpid with a deadline. Returns true and sets *status when the child ended
// in time; on a timeout kills it (SIGKILL), reaps it and returns false.
bool WaitWithTimeout(pid_t pid, int timeout_sec, int* status);
// "exited 3", "killed by signal 6" ...
std::string DescribeStatus(int status);

// HAKMEM_LONG=1 (bazel test --config=long): run the long versions.
bool LongMode();

// Small, fast, seedable PRNG (splitmix64).
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t Next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n).
  uint64_t Below(uint64_t n) { return n == 0 ? 0 : Next() % n; }
  // Uniform in [lo, hi].
  uint64_t Range(uint64_t lo, uint64_t hi) { return lo + Below(hi - lo + 1); }

 private:
  uint64_t s_;
};

}  // namespace hakmem_test

#endif  // HAKMEM_TESTS_TEST_UTIL_H_
