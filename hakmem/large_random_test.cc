// A random workload of blocks from 200 KiB to 4 MiB, around the small
// classes' end (256 KiB), 2 MiB and page boundaries: malloc, calloc,
// aligned_alloc (32 B to 1 MiB), realloc by small and large steps (with a
// mapping placed right after a block now and then, so that growing in place
// fails and the block moves), free, malloc_trim, and the large cache's
// limit and decay changed on the way. Every block's bytes are checked
// before each realloc and free, calloc's zeroes (every 61st byte and the
// last 64), and at the end every large block and cached region is gone.
// (From a helper's bug hunt of the large-block path, session 19, which
// ran it with 6 seeds x 20,000 operations, under ASan and TSan too:
// LARGE_RANDOM_SEED, LARGE_RANDOM_OPS.)
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <random>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem/config.h"
#include "hakmem/hakmem.h"

namespace hakmem {
namespace {

// 6,000 operations: 4 s in opt, 8 s under ASan; under TSan 1,500 (6,000
// took 79 s).
#ifdef __SANITIZE_THREAD__
constexpr int kDefaultOps = 1500;
#else
constexpr int kDefaultOps = 6000;
#endif

struct Live {
  unsigned char* p;
  size_t size;
  uint32_t seed;
  size_t align;
};

inline unsigned char Pat(uint32_t seed, size_t i) {
  return static_cast<unsigned char>((seed * 2654435761u) ^ (i * 40503u) ^ (i >> 12));
}

void Fill(const Live& b, size_t from) {
  for (size_t i = from; i < b.size; i++) b.p[i] = Pat(b.seed, i);
}

// Checks bytes [0, n) sampled (every 509th byte, plus the last few).
size_t CountWrong(const Live& b, size_t n) {
  size_t wrong = 0;
  for (size_t i = 0; i < n; i += 509) wrong += b.p[i] != Pat(b.seed, i);
  for (size_t i = n > 64 ? n - 64 : 0; i < n; i++) wrong += b.p[i] != Pat(b.seed, i);
  return wrong;
}

size_t RandomSize(std::mt19937_64& rng) {
  switch (rng() % 6) {
    case 0: return (200 << 10) + rng() % (120 << 10);          // around 256 KiB
    case 1: return (256 << 10) - 64 + rng() % 128;               // exactly at the edge
    case 2: return (300 << 10) + rng() % (1 << 20);
    case 3: return (1 << 20) + rng() % (3 << 20);
    case 4: return (2 << 20) - 8192 + rng() % 16384;             // around 2 MiB
    default: return 4096 * (1 + rng() % 1024) - (rng() % 3) * 8;  // page boundaries
  }
}

TEST(LargeRandomTest, RandomLargeOperationsKeepContentsAndCallocZeroes) {
  const uint64_t cache_mb = GetOption(Option::kLargeCacheMaxMb);
  const uint64_t decay_ms = GetOption(Option::kSuperslabDecayMs);
  Stats before;
  GetStats(&before);
  std::mt19937_64 rng(getenv("LARGE_RANDOM_SEED") ? atoll(getenv("LARGE_RANDOM_SEED")) : 12345);
  std::vector<Live> live;
  std::vector<std::pair<void*, size_t>> blockers;
  uint32_t next_seed = 1;
  const int kOps = getenv("LARGE_RANDOM_OPS") ? atoi(getenv("LARGE_RANDOM_OPS")) : kDefaultOps;
  for (int op = 0; op < kOps; op++) {
    const int what = static_cast<int>(rng() % 100);
    if (what < 15 || live.empty()) {
      Live b{nullptr, RandomSize(rng), next_seed++, 16};
      b.p = static_cast<unsigned char*>(Malloc(b.size));
      ASSERT_NE(b.p, nullptr);
      // garbage in the whole usable size
      memset(b.p, 0xA5, UsableSize(b.p));
      Fill(b, 0);
      live.push_back(b);
    } else if (what < 35) {
      Live b{nullptr, RandomSize(rng), next_seed++, 16};
      b.p = static_cast<unsigned char*>(Calloc(1, b.size));
      ASSERT_NE(b.p, nullptr);
      size_t nonzero = 0;
      size_t first = SIZE_MAX;
      for (size_t i = 0; i < b.size; i += 61) {
        if (b.p[i] != 0) { nonzero++; if (first == SIZE_MAX) first = i; }
      }
      for (size_t i = b.size > 64 ? b.size - 64 : 0; i < b.size; i++) nonzero += b.p[i] != 0;
      ASSERT_EQ(nonzero, 0u) << "calloc(" << b.size << ") op " << op << " first nonzero at "
                             << first << " usable " << UsableSize(b.p);
      memset(b.p, 0x5A, UsableSize(b.p));
      Fill(b, 0);
      live.push_back(b);
    } else if (what < 42) {
      const size_t align = size_t{1} << (5 + rng() % 16);  // 32 .. 1 MiB
      Live b{nullptr, RandomSize(rng), next_seed++, align};
      b.p = static_cast<unsigned char*>(AlignedAlloc(align, b.size));
      ASSERT_NE(b.p, nullptr) << align << " " << b.size;
      ASSERT_EQ(reinterpret_cast<uintptr_t>(b.p) % align, 0u);
      memset(b.p, 0xC3, UsableSize(b.p));
      Fill(b, 0);
      live.push_back(b);
    } else if (what < 70) {
      const size_t i = rng() % live.size();
      Live& b = live[i];
      ASSERT_EQ(CountWrong(b, b.size), 0u) << "before realloc op " << op;
      size_t new_size;
      const int how = static_cast<int>(rng() % 5);
      if (how == 0) new_size = b.size + rng() % 8192;
      else if (how == 1) new_size = b.size > 8192 ? b.size - rng() % 8192 : b.size;
      else if (how == 2) new_size = b.size * 2;
      else if (how == 3) new_size = b.size / 2 + 1;
      else new_size = RandomSize(rng);
      if (rng() % 8 == 0) {
        // blocker right after the usable end
        const size_t usable = UsableSize(b.p);
        void* at = b.p + ((usable + 4095) & ~size_t{4095});
        void* m = mmap(at, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                       -1, 0);
        if (m == at) blockers.push_back({m, 4096});
        else if (m != MAP_FAILED) munmap(m, 4096);
      }
      unsigned char* q = static_cast<unsigned char*>(Realloc(b.p, new_size));
      ASSERT_NE(q, nullptr);
      const size_t keep = b.size < new_size ? b.size : new_size;
      b.p = q;
      const size_t old = b.size;
      b.size = keep;
      ASSERT_EQ(CountWrong(b, keep), 0u) << "after realloc " << old << " -> " << new_size
                                         << " op " << op;
      b.size = new_size;
      Fill(b, keep);
      ASSERT_GE(UsableSize(q), new_size);
    } else if (what < 97) {
      const size_t i = rng() % live.size();
      ASSERT_EQ(CountWrong(live[i], live[i].size), 0u) << "before free op " << op;
      Free(live[i].p);
      live[i] = live.back();
      live.pop_back();
    } else if (what == 97) {
      Trim();
    } else if (what == 98) {
      static const uint64_t mbs[] = {0, 1, 4, 8, 64, 512};
      SetLargeCacheMaxMb(mbs[rng() % 6]);
      SetSuperslabDecayMs(rng() % 2 ? 0 : 1000);
    } else {
      for (auto& bl : blockers) munmap(bl.first, bl.second);
      blockers.clear();
    }
    while (live.size() > 40) {
      Free(live.back().p);
      live.pop_back();
    }
  }
  for (auto& b : live) {
    EXPECT_EQ(CountWrong(b, b.size), 0u);
    Free(b.p);
  }
  for (auto& bl : blockers) munmap(bl.first, bl.second);
  SetLargeCacheMaxMb(cache_mb);
  SetSuperslabDecayMs(decay_ms);
  Trim();
  Stats after;
  GetStats(&after);
  EXPECT_EQ(after.large_live, before.large_live);
  EXPECT_EQ(after.large_live_bytes, before.large_live_bytes);
  EXPECT_EQ(after.large_cached, 0u);
  EXPECT_EQ(after.large_cached_resident_bytes, 0u);
}

}  // namespace
}  // namespace hakmem
