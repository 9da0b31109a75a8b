// A double free whose first free is remote (another thread's) and whose
// second is the owner's own. hakmem's contract: a double free is reported
// with the pointer and aborts, at the latest when malloc would pop the
// duplicate, so that no block is ever handed out twice.
//
// See FINDINGS.md ("F5"): hakmem used to hand out live blocks twice here.
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace {

using hakmem_test::HexPtr;
using hakmem_test::Opaque;
using hakmem_test::RegexEscape;

// A size class nothing else in the test binary uses, so the slab's history
// is just this test's.
constexpr size_t kSize = 2900;

void* FreeInThread(void* p) {
  free(Opaque(p));
  return nullptr;
}

// Frees p from another thread, then from this (the owning) thread. Plain
// pthreads: std::thread would allocate and remotely free its own state,
// which changes when the remote queue is drained.
void RemoteThenOwnerFree(void* p) {
  pthread_t t;
  if (pthread_create(&t, nullptr, &FreeInThread, p) != 0) abort();
  pthread_join(t, nullptr);
  free(Opaque(p));
}

constexpr int kCount = 2000;
void* g_blocks[kCount];

// After the double free, the next 2000 blocks of the class must all be
// distinct, or hakmem must have aborted with its report first. Nothing
// between the double free and these mallocs allocates.
TEST(RemoteDoubleFreeDeathTest, NoBlockIsHandedOutTwice) {
  void* keep = malloc(kSize);  // keeps the slab in use
  void* p = malloc(kSize);
  EXPECT_DEATH(
      {
        RemoteThenOwnerFree(p);
        for (void*& b : g_blocks) b = malloc(kSize);
        std::sort(std::begin(g_blocks), std::end(g_blocks));
        if (std::adjacent_find(std::begin(g_blocks), std::end(g_blocks)) !=
            std::end(g_blocks)) {
          fprintf(stderr, "malloc handed out a live block twice, with no report\n");
        }
        _exit(0);  // "failed to die": the double free went unnoticed
      },
      "hakmem: [^\n]*double free");
  free(p);
  free(keep);
}

// And the report names the block that was freed twice.
TEST(RemoteDoubleFreeDeathTest, TheReportNamesTheBlock) {
  void* keep = malloc(kSize);
  void* p = malloc(kSize);
  const std::string ptr = RegexEscape(HexPtr(p));
  EXPECT_DEATH(
      {
        RemoteThenOwnerFree(p);
        for (void*& b : g_blocks) b = malloc(kSize);
        for (void* b : g_blocks) free(b);
      },
      "hakmem: [^\n]*(double free[^\n]* " + ptr + ": |" + ptr + ": [^\n]*double free)");
  free(p);
  free(keep);
}

}  // namespace
