// Allocation in the *last* round of pthread key destructors.
//
// glibc runs pthread key destructors for up to PTHREAD_DESTRUCTOR_ITERATIONS
// (4) rounds, in key order. hakmem hands a thread's heap back to its pool from
// a key destructor of its own; a destructor that runs after it and allocates
// gets a heap attached again, and if that happens in the last round, nothing
// ever detaches it. These tests run thousands of such threads and bound the
// growth of resident and virtual memory.
//
// See FINDINGS.md ("F1"): this test is tagged manual until hakmem handles it.
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace {

using hakmem_test::Check;
using hakmem_test::Fill;
using hakmem_test::RssBytes;
using hakmem_test::VmBytes;

constexpr double kMiB = 1024.0 * 1024.0;

// pthread_create, not std::thread: a std::thread frees its state in the
// new thread, before its destructors run, so its first allocator call
// would never come in the last destructor round.
void RunThreads(int n, void (*body)()) {
  for (int i = 0; i < n; i += 4) {
    pthread_t batch[4];
    for (pthread_t& t : batch) {
      ASSERT_EQ(pthread_create(
                    &t, nullptr,
                    [](void* fn) -> void* {
                      reinterpret_cast<void (*)()>(fn)();
                      return nullptr;
                    },
                    reinterpret_cast<void*>(body)),
                0);
    }
    for (pthread_t t : batch) pthread_join(t, nullptr);
  }
}

// Allocates blocks of a spread of sizes, checks and frees them.
bool AllocateSome() {
  bool ok = true;
  for (size_t size = 16; size <= 32768; size = size * 3 / 2 + 16) {
    void* p = malloc(size);
    if (p == nullptr) return false;
    Fill(p, size, size);
    ok &= Check(p, size, size);
    free(p);
  }
  return ok;
}

pthread_key_t g_key;
std::atomic<int> g_last_round_ok{0};

void Destructor(void* v) {
  const uintptr_t round = reinterpret_cast<uintptr_t>(v);
  if (round < PTHREAD_DESTRUCTOR_ITERATIONS) {
    pthread_setspecific(g_key, reinterpret_cast<void*>(round + 1));
    return;
  }
  if (AllocateSome()) g_last_round_ok++;
}

void MeasureThreads(void (*body)(), const char* what) {
  constexpr int kThreads = 3000;
  g_last_round_ok = 0;
  RunThreads(100, body);
  const size_t rss_before = RssBytes();
  const size_t vm_before = VmBytes();
  RunThreads(kThreads, body);
  const double rss_growth = (static_cast<double>(RssBytes()) - rss_before) / kMiB;
  const double vm_growth = (static_cast<double>(VmBytes()) - vm_before) / kMiB;
  printf("%s: %d threads, RSS growth %.1f MiB, virtual size growth %.1f MiB\n", what,
         kThreads, rss_growth, vm_growth);
  EXPECT_EQ(g_last_round_ok.load(), kThreads + 100);
  EXPECT_LT(rss_growth, 64.0) << "heaps attached in the last destructor round leak";
  EXPECT_LT(vm_growth, 512.0) << "SuperSlabs of heaps attached in the last destructor "
                                 "round are never unmapped";
}

TEST(TlsTeardown, FirstAllocationInTheLastPthreadKeyDestructorRound) {
  ASSERT_EQ(pthread_key_create(&g_key, &Destructor), 0);
  // No malloc in the thread before its destructors (see RunThreads; this
  // key's slot needs no allocation).
  MeasureThreads([] { pthread_setspecific(g_key, reinterpret_cast<void*>(1)); },
                 "first allocation in the last round");
  pthread_key_delete(g_key);
}

TEST(TlsTeardown, AllocationInTheLastPthreadKeyDestructorRound) {
  ASSERT_EQ(pthread_key_create(&g_key, &Destructor), 0);
  // The thread allocates normally, then again in the last round.
  MeasureThreads(
      [] {
        EXPECT_TRUE(AllocateSome());
        pthread_setspecific(g_key, reinterpret_cast<void*>(1));
      },
      "allocation while running and in the last round");
  pthread_key_delete(g_key);
}

// Threads whose first allocator call comes in their last destructor round
// take pooled heaps: here the heaps of exited workers whose 64 MiB of
// blocks the main thread still holds. Once main frees them and trims, that
// memory must go back: the late threads are dead, and their heaps with
// them. (Before session 22 it all stayed, waiting on the dead threads'
// queues: a helper's hunt, 325 MiB kept where glibc kept 12.)
TEST(TlsTeardown, HeapsTakenInTheLastRoundAreReclaimedOnceTheirThreadsDied) {
  ASSERT_EQ(pthread_key_create(&g_key, &Destructor), 0);
  constexpr int kWorkers = 4;
  constexpr size_t kBlocks = 64 * 1024;  // 16 MiB of 256 B blocks each
  malloc_trim(0);
  const size_t rss_before = RssBytes();
  std::vector<std::vector<void*>> held(kWorkers);
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; w++) {
    workers.emplace_back([&held, w] {
      held[w].reserve(kBlocks);  // (allocated here: freed by main below)
      for (size_t i = 0; i < kBlocks; i++) held[w].push_back(malloc(256));
    });
  }
  for (std::thread& t : workers) t.join();  // their heaps pooled
  pthread_t late[kWorkers];  // (not std::thread: see RunThreads)
  for (pthread_t& t : late) {
    ASSERT_EQ(pthread_create(
                  &t, nullptr,
                  [](void*) -> void* {
                    pthread_setspecific(g_key, reinterpret_cast<void*>(1));
                    return nullptr;
                  },
                  nullptr),
              0);
  }
  for (pthread_t t : late) pthread_join(t, nullptr);
  for (std::vector<void*>& blocks : held) {
    for (void* p : blocks) free(p);
    std::vector<void*>().swap(blocks);
  }
  malloc_trim(0);
  const double kept = (static_cast<double>(RssBytes()) - rss_before) / kMiB;
  printf("after freeing 64 MiB and a trim: %.1f MiB more than before\n", kept);
  EXPECT_LT(kept, 16.0) << "blocks of heaps whose threads died wait on their queues";
  pthread_key_delete(g_key);
}

}  // namespace
