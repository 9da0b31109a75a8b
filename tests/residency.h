// Residency of pages, for tests that check what memory a program keeps
// (mincore: the tests may probe; the allocator never does). Header-only:
// component tests (hakmem/*) use it too, without the whole-allocator
// test environment of test_util.
#ifndef HAKMEM_TESTS_RESIDENCY_H_
#define HAKMEM_TESTS_RESIDENCY_H_

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

namespace hakmem_test {

// Resident pages of [p, p + n), `p` page-aligned, or -1.
inline int ResidentPages(const void* p, size_t n) {
  constexpr size_t kPage = 4096, kChunkPages = 1024;
  unsigned char in_core[kChunkPages];
  int resident = 0;
  for (size_t done = 0; done < n; done += kChunkPages * kPage) {
    const size_t bytes = n - done < kChunkPages * kPage ? n - done : kChunkPages * kPage;
    if (mincore(const_cast<char*>(static_cast<const char*>(p) + done), bytes, in_core) != 0) {
      return -1;
    }
    for (size_t i = 0; i < (bytes + kPage - 1) / kPage; i++) resident += in_core[i] & 1;
  }
  return resident;
}

// True if transparent huge pages are "always": touching one page of a
// 2 MiB aligned region may then bring in all of it, so residency checks of
// single pages say nothing.
inline bool HugePagesAlways() {
  FILE* f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  if (f == nullptr) return false;
  char line[128] = {};
  const bool always = fgets(line, sizeof(line), f) != nullptr && strstr(line, "[always]") != nullptr;
  fclose(f);
  return always;
}

}  // namespace hakmem_test

#endif  // HAKMEM_TESTS_RESIDENCY_H_
