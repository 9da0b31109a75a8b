// Helpers for the out-of-memory tests (oom_test.cc, oom_cache_test.cc). They
// run inside a forked child (a death test) whose address space is limited
// with RLIMIT_AS, so the test runner itself is never limited.
#ifndef HAKMEM_TESTS_OOM_UTIL_H_
#define HAKMEM_TESTS_OOM_UTIL_H_

#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "tests/test_util.h"

namespace hakmem_test {

constexpr size_t kOomMiB = 1024 * 1024;
// Address space the child may still map once limited.
constexpr size_t kOomHeadroom = 256 * kOomMiB;

// Failures inside the child: print why and exit non-zero.
#define CHILD_CHECK(cond)                                                     \
  do {                                                                        \
    if (!(cond)) {                                                            \
      fprintf(stderr, "oom child: check failed at line %d: %s (errno %d)\n", \
              __LINE__, #cond, errno);                                        \
      _exit(1);                                                               \
    }                                                                         \
  } while (0)

inline void LimitAddressSpace() {
  struct rlimit limit;
  limit.rlim_cur = limit.rlim_max = VmBytes() + kOomHeadroom;
  CHILD_CHECK(setrlimit(RLIMIT_AS, &limit) == 0);
}

// Blocks are chained through their first word, so exhausting memory needs
// no side table that could itself fail to grow.
struct Chain {
  void* head = nullptr;
  size_t count = 0;
  void Push(void* p) {
    *static_cast<void**>(p) = head;
    head = p;
    count++;
  }
  void FreeAll() {
    while (head != nullptr) {
      void* next = *static_cast<void**>(head);
      free(head);
      head = next;
    }
    count = 0;
  }
};

// Allocates `size`-byte blocks (touching one byte per page) until malloc
// fails, or until `max_bytes`; checks a failure is NULL + ENOMEM. Returns the
// bytes allocated.
inline size_t Exhaust(Chain* chain, size_t size, size_t max_bytes = SIZE_MAX) {
  size_t bytes = 0;
  while (bytes < max_bytes) {
    errno = 0;
    char* p = static_cast<char*>(malloc(size));
    if (p == nullptr) {
      CHILD_CHECK(errno == ENOMEM);
      return bytes;
    }
    CHILD_CHECK(reinterpret_cast<uintptr_t>(p) % 16 == 0);
    for (size_t off = 0; off < size; off += 4096) p[off] = 1;
    p[size - 1] = 1;
    chain->Push(p);
    bytes += size;
  }
  return bytes;
}

// Many threads (small and large blocks) hitting the limit at once, each
// then freeing everything. After a malloc_trim(0), every thread allocates
// again. (Without the trim, the large-block threads fail: the empty
// SuperSlabs of the small-block threads keep the address space,
// oom_cache_test.cc, FINDINGS.md F2.)
inline void ThreadedOutOfMemoryChild(bool trim) {
  LimitAddressSpace();
  constexpr int kThreads = 4;
  std::vector<std::thread>* threads = new std::vector<std::thread>;
  threads->reserve(kThreads);
  std::atomic<int> bad_errno{0}, never_ran_out{0}, no_recovery{0};
  std::atomic<int> freed{0}, trimmed{0};
  // All threads exist before any allocates: the first ones would otherwise
  // take the address space the later ones' stacks need (pthread_create
  // fails with EAGAIN).
  std::atomic<bool> go{false};
  for (int t = 0; t < kThreads; t++) {
    threads->emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      // Small blocks, a big class's (200000 B) and large blocks (400000 B).
      const size_t size = t % 2 == 0 ? 48 : t == 1 ? 200000 : 400000;
      Chain chain;
      for (size_t i = 0;; i++) {
        errno = 0;
        void* p = malloc(size);
        if (p == nullptr) {
          if (errno != ENOMEM) bad_errno++;
          break;
        }
        chain.Push(p);
        if (i > 100000000) {
          never_ran_out++;
          break;
        }
      }
      chain.FreeAll();
      if (++freed == kThreads) {
        if (trim) malloc_trim(0);
        trimmed = 1;
      }
      while (trimmed.load() == 0) std::this_thread::yield();
      for (int i = 0; i < 100; i++) {
        void* p = malloc(size);
        if (p == nullptr) {
          no_recovery++;
          continue;
        }
        chain.Push(p);
      }
      chain.FreeAll();
    });
  }
  go = true;
  for (std::thread& th : *threads) th.join();
  fprintf(stderr, "oom child: %d of %d allocations failed after everything was freed\n",
          no_recovery.load(), kThreads * 100);
  CHILD_CHECK(bad_errno.load() == 0);
  CHILD_CHECK(never_ran_out.load() == 0);
  CHILD_CHECK(no_recovery.load() == 0);
  fprintf(stderr, "oom child: ok\n");
  _exit(0);
}

}  // namespace hakmem_test

#endif  // HAKMEM_TESTS_OOM_UTIL_H_
