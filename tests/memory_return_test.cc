// Memory goes back to the kernel: after a program frees hundreds of MiB of
// small blocks, the SuperSlab cache limits (TTL, memory, count) and the
// large-block cache limit decide how much stays resident.
//
// One source, several test targets (see BUILD.bazel): each target sets the
// HAKMEM_* knobs in its environment (hakmem reads them once, at start-up)
// and runs the tests written for that configuration via --gtest_filter.
// Each test first checks that its knob really is set as it expects.
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace {

using hakmem_test::HugePagesAlways;
using hakmem_test::ResidentPages;
using hakmem_test::Rng;
using hakmem_test::RssBytes;

constexpr size_t kMiB = 1024 * 1024;
constexpr size_t kWorkload = 300 * kMiB;

double MiB(double bytes) { return bytes / kMiB; }

void ExpectEnv(const char* name, const char* value) {
  const char* v = getenv(name);
  ASSERT_NE(v, nullptr) << name << " is not set: run this test through its Bazel target";
  ASSERT_STREQ(v, value) << name;
}

// Allocates `total` bytes of small blocks (16..1024 bytes, every byte
// written) into `blocks`.
void AllocateSmall(std::vector<void*>* blocks, size_t total, uint64_t seed) {
  Rng rng(seed);
  size_t bytes = 0;
  while (bytes < total) {
    const size_t size = rng.Range(16, 1024);
    void* p = malloc(size);
    ASSERT_NE(p, nullptr);
    memset(p, 0x5a, size);
    blocks->push_back(p);
    bytes += size;
  }
}

void FreeAll(std::vector<void*>* blocks) {
  for (void* p : *blocks) free(p);
  blocks->clear();
}

// A few ordinary calls after an idle period: small and large, so that
// whatever path applies the cache limits gets its chance. `volatile`: the
// compiler may otherwise drop a malloc/memset/free sequence altogether.
void PokeAllocator() {
  for (size_t size = 16; size <= 4096; size *= 2) {
    void* volatile p = malloc(size);
    memset(p, 1, size);
    free(p);
  }
  void* volatile big = malloc(3 * kMiB);
  memset(big, 1, 3 * kMiB);
  free(big);
}

// Allocates and frees the small-block workload, waits `idle_seconds`, calls
// the allocator again, and returns the RSS growth left (MiB).
double RssLeftAfterFreeingSmallBlocks(uint64_t seed, unsigned idle_seconds) {
  std::vector<void*> blocks;
  blocks.reserve(kWorkload / 256);  // no reallocation during the measurement
  PokeAllocator();
  const size_t rss_start = RssBytes();
  AllocateSmall(&blocks, kWorkload, seed);
  const size_t rss_peak = RssBytes();
  FreeAll(&blocks);
  if (idle_seconds > 0) sleep(idle_seconds);
  PokeAllocator();
  const size_t rss_end = RssBytes();
  printf("RSS start %.1f MiB, peak %.1f MiB, %u s after freeing %.1f MiB\n",
         MiB(rss_start), MiB(rss_peak), idle_seconds, MiB(rss_end));
  EXPECT_GT(rss_peak, rss_start + kWorkload * 3 / 4) << "the workload did not use memory";
  return MiB(rss_end) - MiB(rss_start);
}

// ---- HAKMEM_SUPERSLAB_TTL_SEC=1 ------------------------------------------------
// Each of these runs in a process of its own (configs "ttl" and
// "ttl_threads"), so that the start RSS is not inflated by an earlier test.

TEST(Ttl, FreedSmallBlocksGoBackAfterTheTtl) {
  ExpectEnv("HAKMEM_SUPERSLAB_TTL_SEC", "1");
  EXPECT_LT(RssLeftAfterFreeingSmallBlocks(1, 2), 16.0)  // 6.6 MiB measured
      << "freed memory is still resident 2 s after it was freed (TTL 1 s)";
}

TEST(Ttl, FreedSmallBlocksOfExitedThreadsGoBackAfterTheTtl) {
  ExpectEnv("HAKMEM_SUPERSLAB_TTL_SEC", "1");
  constexpr int kThreads = 4;
  std::vector<std::vector<void*>> blocks(kThreads);
  for (auto& b : blocks) b.reserve(kWorkload / kThreads / 256);
  PokeAllocator();
  const size_t rss_start = RssBytes();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      AllocateSmall(&blocks[t], kWorkload / kThreads, static_cast<uint64_t>(t) + 10);
      // Free two thirds here, leave a third to main (remote frees of the
      // blocks of a thread that has exited).
      for (size_t i = 0; i < blocks[t].size(); i++) {
        if (i % 3 != 0) {
          free(blocks[t][i]);
          blocks[t][i] = nullptr;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const size_t rss_peak = RssBytes();
  for (auto& b : blocks) FreeAll(&b);
  sleep(2);
  PokeAllocator();
  const size_t rss_end = RssBytes();
  printf("RSS start %.1f MiB, peak %.1f MiB, 2 s after freeing %.1f MiB\n",
         MiB(rss_start), MiB(rss_peak), MiB(rss_end));
  // (Blocks of exited threads that main freed wait in main's bins until its
  // next call; the SuperSlabs they pin count as cached since main's last
  // slow path, so they are gone too. Before that, 30-41 MiB stayed; now 6.)
  EXPECT_LT(MiB(rss_end) - MiB(rss_start), 16.0)
      << "memory of exited threads is still resident 2 s after it was freed (TTL 1 s)";
}

// ---- HAKMEM_SUPERSLAB_MAX_MEMORY_MB=16 (TTL 1 hour) ---------------------------

TEST(MaxMemory, CachedEmptySuperSlabsStayWithinTheLimit) {
  ExpectEnv("HAKMEM_SUPERSLAB_MAX_MEMORY_MB", "16");
  ExpectEnv("HAKMEM_SUPERSLAB_TTL_SEC", "3600");
  // 16 MiB of cache, plus slack for what the heap keeps in use.
  EXPECT_LT(RssLeftAfterFreeingSmallBlocks(2, 0), 16.0 + 32.0)
      << "HAKMEM_SUPERSLAB_MAX_MEMORY_MB=16 not honoured";
}

// ---- HAKMEM_SUPERSLAB_MAX_CACHED=2 (TTL 1 hour) --------------------------------

TEST(MaxCached, CachedEmptySuperSlabsStayWithinTheCount) {
  ExpectEnv("HAKMEM_SUPERSLAB_MAX_CACHED", "2");
  ExpectEnv("HAKMEM_SUPERSLAB_TTL_SEC", "3600");
  // 2 SuperSlabs (2 MiB each) of cache, plus slack for what the heap keeps.
  EXPECT_LT(RssLeftAfterFreeingSmallBlocks(3, 0), 4.0 + 32.0)
      << "HAKMEM_SUPERSLAB_MAX_CACHED=2 not honoured";
}

// ---- HAKMEM_SUPERSLAB_DEMAND_WINDOW_SEC=1 (TTL 1 hour) --------------------------

TEST(DemandWindow, ASpikeGoesBackOnceItLeavesTheWindow) {
  ExpectEnv("HAKMEM_SUPERSLAB_DEMAND_WINDOW_SEC", "1");
  ExpectEnv("HAKMEM_SUPERSLAB_TTL_SEC", "3600");
  // Without adaptive sizing, up to HAKMEM_SUPERSLAB_RESIDENT_MB (64) would
  // stay resident for the hour-long TTL (measured: 75 MiB left).
  EXPECT_LT(RssLeftAfterFreeingSmallBlocks(4, 3), 24.0)
      << "a one-off spike stayed cached after its second left the demand window";
}

// ---- HAKMEM_SUPERSLAB_RESIDENT_MB=16, DECAY_MS=2000 (no demand window, TTL 1 hour)

TEST(Decay, CachedPagesBeyondTheBudgetGoBackAfterTheDecay) {
  ExpectEnv("HAKMEM_SUPERSLAB_RESIDENT_MB", "16");
  ExpectEnv("HAKMEM_SUPERSLAB_DECAY_MS", "2000");
  ExpectEnv("HAKMEM_SUPERSLAB_DEMAND_WINDOW_SEC", "0");
  ExpectEnv("HAKMEM_SUPERSLAB_TTL_SEC", "3600");
  std::vector<void*> blocks;
  blocks.reserve(kWorkload / 256);
  PokeAllocator();
  const size_t rss_start = RssBytes();
  AllocateSmall(&blocks, kWorkload, 5);
  FreeAll(&blocks);
  PokeAllocator();
  // Within the decay the freed pages stay, ready for the next build.
  const size_t rss_freed = RssBytes();
  sleep(3);
  PokeAllocator();
  const size_t rss_end = RssBytes();
  printf("RSS start %.1f MiB, just after freeing %.1f MiB, 3 s later %.1f MiB\n",
         MiB(rss_start), MiB(rss_freed), MiB(rss_end));
  EXPECT_GT(MiB(rss_freed) - MiB(rss_start), 100.0)
      << "pages beyond the resident budget went back before the decay";
  EXPECT_LT(MiB(rss_end) - MiB(rss_start), 16.0 + 32.0)
      << "pages beyond HAKMEM_SUPERSLAB_RESIDENT_MB=16 stayed after the decay";
}

// ---- HAKMEM_SUPERSLAB_RESIDENT_MB=16, DECAY_MS=0 (no demand window, TTL 1 hour)

TEST(ResidentNow, WithoutDecayAnIdleProgramKeepsTheBudget) {
  ExpectEnv("HAKMEM_SUPERSLAB_RESIDENT_MB", "16");
  ExpectEnv("HAKMEM_SUPERSLAB_DECAY_MS", "0");
  ExpectEnv("HAKMEM_SUPERSLAB_DEMAND_WINDOW_SEC", "0");
  ExpectEnv("HAKMEM_SUPERSLAB_TTL_SEC", "3600");
  EXPECT_LT(RssLeftAfterFreeingSmallBlocks(6, 1), 16.0 + 32.0)
      << "pages beyond HAKMEM_SUPERSLAB_RESIDENT_MB=16 stayed with decay 0";
}

// Memory whose pages a cache gave back reads zero: calloc neither clears
// nor touches it again. Big blocks (SuperSlabs beyond the 16 MiB budget)
// and large blocks (regions beyond the large cache's 64 MiB), written all
// over and freed, then calloc'd: those from given-back memory stay out of
// core, and every block reads zero.
TEST(ResidentNow, CallocOfMemoryWhosePagesWentBackLeavesItUntouched) {
  ExpectEnv("HAKMEM_SUPERSLAB_RESIDENT_MB", "16");
  ExpectEnv("HAKMEM_SUPERSLAB_DECAY_MS", "0");
  for (size_t size : {size_t{200000}, 4 * kMiB}) {
    const int n = size < kMiB ? 400 : 40;  // 80 and 160 MiB
    std::vector<unsigned char*> blocks(n);
    std::thread([&] {  // its exit sends its bins' blocks home: all of it reaches the caches
      for (unsigned char*& p : blocks) {
        p = static_cast<unsigned char*>(malloc(size));
        ASSERT_NE(p, nullptr);
        memset(p, 0x5a, size);
      }
      for (unsigned char* p : blocks) free(p);
    }).join();
    PokeAllocator();
    int untouched = 0;
    std::thread([&] {
      for (unsigned char*& p : blocks) {
        p = static_cast<unsigned char*>(calloc(1, size));
        ASSERT_NE(p, nullptr);
        ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % 4096, 0u);
        untouched += ResidentPages(p, size) <= 2;
      }
    }).join();
    for (unsigned char* p : blocks) {
      for (size_t i = 0; i < size; i++) ASSERT_EQ(p[i], 0) << size << " at " << i;
      free(p);
    }
    printf("calloc(%zu): %d of %d blocks untouched\n", size, untouched, n);
    if (!HugePagesAlways()) {
      EXPECT_GE(untouched, n / 2) << size;
    }
  }
}

// ---- Defaults (resident budget 64 MiB, decay 1 s, TTL 60 s) --------------------

// A program frees most of a big heap but keeps one block in 1000, scattered
// over it: no SuperSlab empties, but most slabs do. Their pages go back
// beyond the resident budget once idle for the decay, as long as the
// program calls the allocator. (Before the slab pool gave idle slabs' pages
// back, all of it stayed, 330 MiB of 330; so it does under glibc, tcmalloc,
// jemalloc and mimalloc 2 s after such a free.)
TEST(Fragmented, IdleSlabsAmongLiveOnesGiveTheirPagesBack) {
  ASSERT_EQ(getenv("HAKMEM_SUPERSLAB_RESIDENT_MB"), nullptr) << "runs with the defaults";
  std::vector<void*> blocks;
  blocks.reserve(kWorkload / 256);
  PokeAllocator();
  const size_t rss_start = RssBytes();
  AllocateSmall(&blocks, kWorkload, 7);
  const size_t rss_peak = RssBytes();
  std::vector<void*> kept;
  for (size_t i = 0; i < blocks.size(); i++) {
    if (i % 1000 == 0) {
      kept.push_back(blocks[i]);
    } else {
      free(blocks[i]);
    }
  }
  blocks.clear();
  sleep(1);  // the decay
  for (int i = 0; i < 30; i++) {  // 3 s of calls: each upkeep gives back a batch
    PokeAllocator();
    usleep(100000);
  }
  const size_t rss_end = RssBytes();
  printf("RSS start %.1f MiB, peak %.1f MiB, with one block in 1000 kept %.1f MiB\n",
         MiB(rss_start), MiB(rss_peak), MiB(rss_end));
  EXPECT_GT(rss_peak, rss_start + kWorkload * 3 / 4) << "the workload did not use memory";
  EXPECT_LT(MiB(rss_end) - MiB(rss_start), 180.0)
      << "free slabs among live ones kept their pages";
  for (void* p : kept) {
    EXPECT_EQ(*static_cast<unsigned char*>(p), 0x5a) << "a kept block lost its data";
    free(p);
  }
}

// ---- HAKMEM_LARGE_CACHE_MAX_MB=8 ------------------------------------------------

TEST(LargeCache, FreedLargeBlocksStayWithinTheLimit) {
  ExpectEnv("HAKMEM_LARGE_CACHE_MAX_MB", "8");
  PokeAllocator();
  const size_t rss_start = RssBytes();
  std::vector<void*> blocks;
  blocks.reserve(200);
  for (int i = 0; i < 120; i++) {
    const size_t size = kMiB + static_cast<size_t>(i % 5) * 100000;
    void* p = malloc(size);
    ASSERT_NE(p, nullptr);
    memset(p, 7, size);
    blocks.push_back(p);
  }
  const size_t rss_peak = RssBytes();
  FreeAll(&blocks);
  const size_t rss_end = RssBytes();
  printf("RSS start %.1f MiB, peak %.1f MiB, after freeing %.1f MiB\n", MiB(rss_start),
         MiB(rss_peak), MiB(rss_end));
  ASSERT_GT(rss_peak, rss_start + 100 * kMiB);
  EXPECT_LT(MiB(rss_end) - MiB(rss_start), 8.0 + 8.0)
      << "HAKMEM_LARGE_CACHE_MAX_MB=8 not honoured";
}

// ---- HAKMEM_SUPERSLAB_DECAY_MS=200, large blocks only ever grown by realloc --------
// A program whose large blocks all come from realloc growing small ones (a
// vector or a string) frees them, then makes only small calls: the small
// paths' upkeep must apply the large caches' decay (a review, session 28:
// such a program never installed the hook, and kept them all). Its own
// process: no earlier large malloc may install it.

TEST(GrownOnly, LargeBlocksGrownByReallocGoBackAfterTheDecay) {
  ExpectEnv("HAKMEM_SUPERSLAB_DECAY_MS", "200");
  const size_t rss_start = RssBytes();
  std::vector<char*> buffers(10, nullptr);
  for (char*& p : buffers) {
    size_t size = 64;
    p = static_cast<char*>(realloc(nullptr, size));
    ASSERT_NE(p, nullptr);
    memset(p, 1, size);
    while (size < 20 * kMiB) {
      const size_t grown = size + size / 2;
      p = static_cast<char*>(realloc(p, grown));
      ASSERT_NE(p, nullptr);
      memset(p + size, 1, grown - size);
      size = grown;
    }
  }
  const size_t rss_peak = RssBytes();
  for (char* p : buffers) free(p);
  // Only small calls from here on, over 1 s: five times the decay.
  for (int round = 0; round < 50; round++) {
    std::vector<void*> small;
    for (int i = 0; i < 2000; i++) small.push_back(malloc(64));
    for (void* q : small) free(q);
    usleep(20 * 1000);
  }
  const size_t rss_end = RssBytes();
  printf("RSS start %.1f MiB, peak %.1f MiB, 1 s after freeing %.1f MiB\n", MiB(rss_start),
         MiB(rss_peak), MiB(rss_end));
  ASSERT_GT(rss_peak, rss_start + 150 * kMiB) << "the buffers did not use memory";
  EXPECT_LT(MiB(rss_end) - MiB(rss_start), 64.0 + 16.0)
      << "freed large blocks beyond the resident budget stayed";
}

// ---- Copies left behind by a growing buffer (default knobs) ---------------------
// A std::string appended to 96 MiB doubles its capacity by new + copy +
// delete: each old copy is freed right after the bigger block faulted its
// pages in, and gives them back at once (tests/FINDINGS.md F70: a string
// built to 110 MB peaked at 247 MB, glibc 134, mimalloc 151). Its own
// process: no earlier large block may be cached.

TEST(CopiesLeftBehind, AStringGrownByDoublingPeaksNearItsSize) {
  constexpr size_t kFinal = 96 * kMiB;
  PokeAllocator();
  const size_t rss_start = RssBytes();
  size_t rss_peak = rss_start;
  std::string s;
  const std::string piece(8192, 'x');
  size_t capacity = s.capacity();
  while (s.size() < kFinal) {
    s.append(piece);
    if (s.capacity() != capacity) {  // grown: both copies were live just now
      capacity = s.capacity();
      rss_peak = std::max(rss_peak, RssBytes());
    }
  }
  rss_peak = std::max(rss_peak, RssBytes());
  printf("RSS start %.1f MiB, peak %.1f MiB for a string of %.1f MiB\n", MiB(rss_start),
         MiB(rss_peak), MiB(s.size()));
  EXPECT_LT(MiB(rss_peak) - MiB(rss_start), MiB(kFinal) * 1.5)
      << "the copies the string left behind stayed resident";
}

// ---- phases of small and large blocks in turn -------------------------------------
// 300 MB of small objects freed, then 300 MB of 0.25-8.25 MiB blocks freed,
// in turn (tests/FINDINGS.md F60): each layer's freed pages move to the
// other when it needs them (HAKMEM_PAGE_MOVES), not kept by one while the
// other faults fresh ones (peak 665 MB; now 432, mimalloc 374). Its
// own process: nothing cached before.

TEST(PhasesInTurn, SmallAndLargeBlocksInTurnShareTheirFreedPages) {
  constexpr size_t kPhase = 300 * kMiB;
  PokeAllocator();
  const size_t rss_start = RssBytes();
  size_t rss_peak = rss_start;
  uint64_t seed = 5;
  const auto next = [&seed] {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
  };
  // kPhase bytes of blocks of `size()` bytes, written with `byte`, then freed.
  const auto phase_of = [&](auto size, int byte) {
    std::vector<void*> blocks;
    for (size_t total = 0; total < kPhase;) {
      const size_t n = size();
      blocks.push_back(malloc(n));
      ASSERT_NE(blocks.back(), nullptr);
      memset(blocks.back(), byte, n);
      total += n;
    }
    rss_peak = std::max(rss_peak, RssBytes());
    for (void* p : blocks) free(p);
  };
  for (int phase = 0; phase < 4; phase++) {
    ASSERT_NO_FATAL_FAILURE(phase_of([&] { return 16 + next() % 200; }, 1));
    ASSERT_NO_FATAL_FAILURE(phase_of([&] { return (256 << 10) + next() % (8 << 20); }, 2));
  }
  printf("RSS start %.1f MiB, peak %.1f MiB over 4 phases of %.0f MiB each way\n", MiB(rss_start),
         MiB(rss_peak), MiB(kPhase));
  EXPECT_LT(MiB(rss_peak) - MiB(rss_start), MiB(kPhase) * 1.8)
      << "each layer kept its freed pages while the other faulted fresh ones";
}

// ---- malloc_trim ------------------------------------------------------------------
// Runs in the default configuration (long TTL, big caches): malloc_trim(0)
// gives the cached memory back at once.

TEST(Trim, MallocTrimReturnsFreedMemory) {
  std::vector<void*> blocks;
  blocks.reserve(kWorkload / 256);
  PokeAllocator();
  malloc_trim(0);
  const size_t rss_start = RssBytes();
  AllocateSmall(&blocks, kWorkload, 4);
  for (int i = 0; i < 40; i++) {
    void* p = malloc(kMiB);
    memset(p, 1, kMiB);
    blocks.push_back(p);
  }
  const size_t rss_peak = RssBytes();
  FreeAll(&blocks);
  EXPECT_EQ(malloc_trim(0), 1);
  const size_t rss_end = RssBytes();
  printf("RSS start %.1f MiB, peak %.1f MiB, after free + malloc_trim %.1f MiB\n",
         MiB(rss_start), MiB(rss_peak), MiB(rss_end));
  ASSERT_GT(rss_peak, rss_start + kWorkload * 3 / 4);
  EXPECT_LT(MiB(rss_end) - MiB(rss_start), 32.0) << "malloc_trim(0) kept freed memory";
}

// Blocks of threads that have exited, freed by main: their heaps are
// abandoned, yet malloc_trim(0) must give the memory back too.
TEST(Trim, MallocTrimReturnsMemoryOfExitedThreads) {
  constexpr int kThreads = 4;
  std::vector<std::vector<void*>> blocks(kThreads);
  for (auto& b : blocks) b.reserve(kWorkload / kThreads / 256);
  PokeAllocator();
  malloc_trim(0);
  const size_t rss_start = RssBytes();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      AllocateSmall(&blocks[t], kWorkload / kThreads, static_cast<uint64_t>(t) + 20);
      for (size_t i = 0; i < blocks[t].size(); i += 2) {
        free(blocks[t][i]);
        blocks[t][i] = nullptr;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const size_t rss_peak = RssBytes();
  for (auto& b : blocks) FreeAll(&b);
  EXPECT_EQ(malloc_trim(0), 1);
  const size_t rss_end = RssBytes();
  printf("RSS start %.1f MiB, peak %.1f MiB, after free + malloc_trim %.1f MiB\n",
         MiB(rss_start), MiB(rss_peak), MiB(rss_end));
  ASSERT_GT(rss_peak, rss_start + kWorkload * 3 / 4);
  EXPECT_LT(MiB(rss_end) - MiB(rss_start), 32.0)
      << "malloc_trim(0) kept the freed memory of exited threads";
}

}  // namespace
