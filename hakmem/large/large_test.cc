#include "hakmem/large/large.h"

#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include <algorithm>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem/config.h"
#include "hakmem/large/extent_heap.h"
#include "hakmem/platform.h"
#include "hakmem/registry/registry.h"

namespace hakmem {
namespace {

LargeHeader* HeaderOf(void* p) {
  return reinterpret_cast<LargeHeader*>(registry::Lookup(p));
}

TEST(ExtentHeapDecayTest, FarBeyondTheBudgetWhileGrowingTheDecayShortensInProportion) {
  // Within the budget, or not growing: the decay.
  EXPECT_EQ(DecayBeyondBudget(1000, 64, 64, /*growing=*/true), 1000u);
  EXPECT_EQ(DecayBeyondBudget(1000, 64, 10000, /*growing=*/false), 1000u);
  // Beyond it while growing: decay x budget / excess.
  EXPECT_EQ(DecayBeyondBudget(1000, 64, 128, true), 500u);
  EXPECT_EQ(DecayBeyondBudget(1000, 64, 256, true), 250u);
  // A tenth of the decay at the least.
  EXPECT_EQ(DecayBeyondBudget(1000, 64, 6400, true), 100u);
  EXPECT_EQ(DecayBeyondBudget(1000, 64, uint64_t{1} << 40, true), 100u);
  // No decay stays none; the product does not overflow.
  EXPECT_EQ(DecayBeyondBudget(0, 64, 128, true), 0u);
  EXPECT_EQ(DecayBeyondBudget(uint64_t{1} << 40, uint64_t{1} << 40, uint64_t{1} << 41, true),
            uint64_t{1} << 39);
}

TEST(LargeTest, BlockIsRegisteredWritableAndZeroWhenFresh) {
  LargeCacheReleaseAll();  // death tests run first and leave a block cached
  bool zeroed = false;
  char* p = static_cast<char*>(LargeAlloc(100000, 16, &zeroed));
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(zeroed);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 4096, 0u);
  LargeHeader* h = HeaderOf(p);
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->region.kind, RegionKind::kLarge);
  EXPECT_EQ(registry::TagOf(p), registry::kTagLarge);
  EXPECT_GE(LargeUsableSize(h), 100000u);
  for (size_t i = 0; i < 100000; i += 4096) EXPECT_EQ(p[i], 0);
  memset(p, 0x5a, LargeUsableSize(h));
  LargeFree(h, p);
}

TEST(LargeTest, AlignmentUpTo1GiB) {
  for (size_t alignment = 16; alignment <= kMaxLargeAlignment; alignment *= 4) {
    bool zeroed;
    char* p = static_cast<char*>(LargeAlloc(50000, alignment, &zeroed));
    ASSERT_NE(p, nullptr) << alignment;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % alignment, 0u);
    LargeHeader* h = HeaderOf(p);
    ASSERT_NE(h, nullptr) << alignment;
    EXPECT_EQ(HeaderOf(p + 49999), h) << alignment;
    EXPECT_GE(LargeUsableSize(h), 50000u);
    memset(p, 1, 50000);
    LargeFree(h, p);
  }
  bool zeroed;
  EXPECT_EQ(LargeAlloc(100, 2 * kMaxLargeAlignment, &zeroed), nullptr);
}

TEST(LargeTest, RepeatedCyclesMakeNoSyscalls) {
  bool zeroed;
  void* warm = LargeAlloc(300000, 16, &zeroed);
  LargeFree(HeaderOf(warm), warm);
  const platform::SyscallCounts before = platform::GetSyscallCounts();
  for (int i = 0; i < 1000; i++) {
    void* p = LargeAlloc(300000, 16, &zeroed);
    ASSERT_NE(p, nullptr);
    EXPECT_FALSE(zeroed);  // came from the cache
    LargeFree(HeaderOf(p), p);
  }
  const platform::SyscallCounts after = platform::GetSyscallCounts();
  EXPECT_EQ(after.mmap, before.mmap);
  EXPECT_EQ(after.munmap, before.munmap);
}

// The count limit follows the memory limit: a hundred 300 KB blocks (30
// MiB, under the default 64 MiB) all stay cached, and taking them back
// maps nothing. (A fixed limit of 64 regions unmapped 36 of them.)
TEST(LargeTest, ManyFreedBlocksUnderTheMemoryLimitStayCached) {
  LargeCacheReleaseAll();
  constexpr int kBlocks = 100;
  void* blocks[kBlocks];
  bool zeroed;
  for (void*& p : blocks) {
    p = LargeAlloc(300000, 16, &zeroed);
    ASSERT_NE(p, nullptr);
  }
  const platform::SyscallCounts before = platform::GetSyscallCounts();
  for (void* p : blocks) LargeFree(HeaderOf(p), p);
  EXPECT_EQ(GetLargeStats().cache.cached, static_cast<uint64_t>(kBlocks));
  for (void*& p : blocks) {
    p = LargeAlloc(300000, 16, &zeroed);
    ASSERT_NE(p, nullptr);
    EXPECT_FALSE(zeroed);  // from the cache
  }
  const platform::SyscallCounts after = platform::GetSyscallCounts();
  EXPECT_EQ(after.munmap, before.munmap);
  EXPECT_EQ(after.mmap, before.mmap);
  for (void* p : blocks) LargeFree(HeaderOf(p), p);
  LargeCacheReleaseAll();
}

TEST(LargeTest, CacheMemoryLimitIsHonoured) {
  ASSERT_TRUE(SetOption(Option::kLargeCacheMaxMb, 1));
  bool zeroed;
  void* p = LargeAlloc(4 << 20, 16, &zeroed);  // 4 MiB > the 1 MiB limit
  LargeFree(HeaderOf(p), p);
  EXPECT_FALSE(registry::Contains(p));  // unmapped at once
  EXPECT_EQ(GetLargeStats().cache.cached_bytes, 0u);
  ASSERT_TRUE(SetOption(Option::kLargeCacheMaxMb, GetOptionInfo(Option::kLargeCacheMaxMb).default_value));
}

// The cache keeps resident at most twice the most bytes of large blocks
// live at once, and at least 16 MiB (F40: a string built by copy-then-free,
// 3 MB, kept 64 MiB of freed copies resident).
TEST(LargeTest, TheResidentBudgetFollowsThePeakOfLiveBytes) {
  LargeCacheReleaseAll();
  ResetLargeLivePeakForTesting();
  ASSERT_TRUE(SetOption(Option::kSuperslabDecayMs, 0));
  const size_t kMiB = size_t{1} << 20;
  // Sizes too far apart for one region to serve another, 18 MiB, at most 7
  // live at once.
  for (size_t kib : {5120, 7168, 3584, 2560}) {
    bool zeroed;
    char* p = static_cast<char*>(LargeAlloc(kib << 10, 16, &zeroed));
    ASSERT_NE(p, nullptr);
    memset(p, 1, kib << 10);
    LargeFree(HeaderOf(p), p);
  }
  EXPECT_LE(GetLargeStats().cache.resident_bytes, 16 * kMiB);
  EXPECT_GE(GetLargeStats().cache.resident_bytes, 12 * kMiB);
  ASSERT_TRUE(SetOption(Option::kSuperslabDecayMs,
                        GetOptionInfo(Option::kSuperslabDecayMs).default_value));
  LargeCacheReleaseAll();
}

// A cache holding more pages resident than 4x the most bytes of large
// blocks ever live is out of proportion to the program: a miss takes a
// resident region of another size that serves it with no syscall (up to
// 2x bigger as it is; within its 2 MiB slot, grown in place), and where
// none does, the resident budget applies at once (F41: `git fsck` of
// 0.3-4 MB blobs 53 MB, glibc 11).
TEST(LargeTest, AMissInACacheOutOfProportionReusesAnotherSizeOrAppliesTheBudget) {
  LargeCacheReleaseAll();
  const size_t kKiB = 1024, kMiB = size_t{1} << 20;
  bool zeroed;
  char* p = static_cast<char*>(LargeAlloc(kMiB, 16, &zeroed));
  ASSERT_NE(p, nullptr);
  LargeHeader* h = HeaderOf(p);
  if (h->reserved != kRegionAlign) GTEST_SKIP() << "not carved from the reserve";
  memset(p, 0x5a, kMiB);
  LargeFree(h, p);

  ResetLargeLivePeakForTesting();  // nothing live: any resident page is out of proportion
  const RegionCacheStats before = GetLargeStats().cache;
  char* q = static_cast<char*>(LargeAlloc(700 * kKiB, 16, &zeroed));
  ASSERT_EQ(HeaderOf(q), h) << "up to 2x bigger, as it is";
  EXPECT_EQ(GetLargeStats().cache.hits, before.hits + 1) << "one take, a hit";
  EXPECT_EQ(GetLargeStats().cache.misses, before.misses);
  EXPECT_FALSE(zeroed);
  EXPECT_EQ(q[700 * kKiB - 1], 0x5a);
  EXPECT_EQ(h->region.mapped_size, kMiB + platform::kPageSize);
  LargeFree(h, q);

  ResetLargeLivePeakForTesting();
  char* r = static_cast<char*>(LargeAlloc(1536 * kKiB, 16, &zeroed));
  ASSERT_EQ(HeaderOf(r), h) << "at least half as big, grown within its slot";
  EXPECT_FALSE(zeroed);
  EXPECT_EQ(r[kMiB - 1], 0x5a);
  EXPECT_EQ(h->region.mapped_size, 1536 * kKiB + platform::kPageSize);
  EXPECT_EQ(h->reserved, kRegionAlign);
  memset(r, 1, 1536 * kKiB);
  LargeFree(h, r);

  // Not grown past its own address space (a region mapped alone): a fresh
  // block instead, the region left cached.
  LargeCacheReleaseAll();
  {
    ScopedLargeReserveOff mapped_alone;
    char* alone = static_cast<char*>(LargeAlloc(kMiB, 16, &zeroed));
    ASSERT_NE(alone, nullptr);
    ASSERT_EQ(HeaderOf(alone)->reserved, HeaderOf(alone)->region.mapped_size);
    memset(alone, 1, kMiB);
    LargeHeader* alone_header = HeaderOf(alone);
    LargeFree(alone_header, alone);
    ResetLargeLivePeakForTesting();
    char* bigger = static_cast<char*>(LargeAlloc(1536 * kKiB, 16, &zeroed));
    ASSERT_NE(bigger, nullptr);
    EXPECT_NE(HeaderOf(bigger), alone_header);
    EXPECT_EQ(GetLargeStats().cache.cached, 1u);
    LargeFree(HeaderOf(bigger), bigger);
  }

  // Three 7 MiB blocks live at once, then freed: resident past the budget
  // once nothing is live (16 MiB), within the decay. A miss no cached
  // region serves applies the budget.
  LargeCacheReleaseAll();
  char* blocks[3];
  for (char*& b : blocks) {
    b = static_cast<char*>(LargeAlloc(7 * kMiB, 16, &zeroed));
    ASSERT_NE(b, nullptr);
    memset(b, 1, 7 * kMiB);
  }
  for (char* b : blocks) LargeFree(HeaderOf(b), b);
  ASSERT_GT(GetLargeStats().cache.resident_bytes, 16 * kMiB);
  ResetLargeLivePeakForTesting();
  char* small = static_cast<char*>(LargeAlloc(300 * kKiB, 16, &zeroed));
  ASSERT_NE(small, nullptr);
  EXPECT_LE(GetLargeStats().cache.resident_bytes, 16 * kMiB);
  LargeFree(HeaderOf(small), small);
  LargeCacheReleaseAll();
}

// Past the resident budget (within the decay), a miss takes a resident
// region of another size that serves it with no syscall, even in a cache
// not out of proportion (F47: 256 live buffers of 100 KiB-2 MiB in a ring
// kept 148 cached regions resident beside them).
TEST(LargeTest, PastTheResidentBudgetAMissReusesAnotherSizeWithoutASyscall) {
  LargeCacheReleaseAll();
  const size_t kMiB = size_t{1} << 20;
  bool zeroed;
  std::vector<LargeHeader*> freed;
  std::vector<char*> blocks;
  for (int i = 0; i < 6; i++) {
    blocks.push_back(static_cast<char*>(LargeAlloc(3 * kMiB, 16, &zeroed)));
    ASSERT_NE(blocks.back(), nullptr);
    memset(blocks.back(), 0x5a, 3 * kMiB);
  }
  for (char* b : blocks) {
    freed.push_back(HeaderOf(b));
    LargeFree(HeaderOf(b), b);
  }
  // A hit: the misses in a row so far would apply the budget at the next
  // miss (RegionCache::kMissesThatSkipTheDecay).
  char* hit = static_cast<char*>(LargeAlloc(3 * kMiB, 16, &zeroed));
  ASSERT_NE(hit, nullptr);
  LargeFree(HeaderOf(hit), hit);
  char* live = static_cast<char*>(LargeAlloc(5 * kMiB, 16, &zeroed));
  ASSERT_NE(live, nullptr);
  ResetLargeLivePeakForTesting();  // 5 MiB: a budget of 16 MiB, in proportion up to 20
  const uint64_t resident = GetLargeStats().cache.resident_bytes;
  ASSERT_GT(resident, 16 * kMiB);
  ASSERT_LE(resident, 4 * HeaderOf(live)->region.mapped_size);
  const platform::SyscallCounts before = platform::GetSyscallCounts();
  char* q = static_cast<char*>(LargeAlloc(2 * kMiB, 16, &zeroed));
  ASSERT_NE(q, nullptr);
  EXPECT_NE(std::find(freed.begin(), freed.end(), HeaderOf(q)), freed.end())
      << "a 3 MiB region, as it is";
  EXPECT_FALSE(zeroed);
  EXPECT_EQ(q[2 * kMiB - 1], 0x5a);
  const platform::SyscallCounts after = platform::GetSyscallCounts();
  EXPECT_EQ(after.mmap + after.munmap + after.madvise + after.mremap,
            before.mmap + before.munmap + before.madvise + before.mremap);
  LargeFree(HeaderOf(q), q);
  LargeFree(HeaderOf(live), live);
  LargeCacheReleaseAll();
}

// The decay time set long while it lives: tests of what the resident budget
// gives back now must not see the decay give back more meanwhile (a stall
// of a second under a sanitizer).
struct ScopedLongDecay {
  ScopedLongDecay() { EXPECT_TRUE(SetOption(Option::kSuperslabDecayMs, 60000)); }
  ~ScopedLongDecay() {
    EXPECT_TRUE(SetOption(Option::kSuperslabDecayMs,
                          GetOptionInfo(Option::kSuperslabDecayMs).default_value));
  }
};

// Past the resident budget, a region far bigger than a smaller block's need
// neither serves it nor gives its pages back for it: the program likely
// writes such a buffer again (a 100 MiB scratch buffer freed before each
// 300 KiB result: 0.6 -> 9 s when each result took or gave back the
// buffer, session 26's review of a rule since taken out).
TEST(LargeTest, PastTheResidentBudgetAFarBiggerRegionStaysForItsOwnSize) {
  LargeCacheReleaseAll();
  ScopedLongDecay long_decay;
  const size_t kMiB = size_t{1} << 20;
  bool zeroed;
  char* scratch = static_cast<char*>(LargeAlloc(40 * kMiB, 16, &zeroed));
  ASSERT_NE(scratch, nullptr);
  LargeHeader* const scratch_header = HeaderOf(scratch);
  memset(scratch, 0x5a, 40 * kMiB);
  LargeFree(scratch_header, scratch);
  char* again = static_cast<char*>(LargeAlloc(40 * kMiB, 16, &zeroed));  // a hit
  ASSERT_EQ(again, scratch);
  LargeFree(scratch_header, again);
  char* live = static_cast<char*>(LargeAlloc(12 * kMiB, 16, &zeroed));
  ASSERT_NE(live, nullptr);
  ResetLargeLivePeakForTesting();  // a budget of 24 MiB, in proportion up to 48
  ASSERT_GT(GetLargeStats().cache.resident_bytes, 24 * kMiB);
  ASSERT_LE(GetLargeStats().cache.resident_bytes, 4 * HeaderOf(live)->region.mapped_size);
  char* result = static_cast<char*>(LargeAlloc(kMiB, 16, &zeroed));
  ASSERT_NE(result, nullptr);
  EXPECT_NE(HeaderOf(result), scratch_header) << "a 40 MiB buffer for a 1 MiB block";
  EXPECT_EQ(scratch_header->region.discarded, 0u) << "given back for a 1 MiB block";
  const platform::SyscallCounts before = platform::GetSyscallCounts();
  char* next = static_cast<char*>(LargeAlloc(40 * kMiB, 16, &zeroed));
  const platform::SyscallCounts after = platform::GetSyscallCounts();
  ASSERT_EQ(next, scratch) << "the scratch buffer, cached as it was";
  EXPECT_FALSE(zeroed);
  EXPECT_EQ(next[40 * kMiB - 1], 0x5a);
  EXPECT_EQ(after.mmap + after.munmap + after.madvise + after.mremap,
            before.mmap + before.munmap + before.madvise + before.mremap);
  LargeFree(HeaderOf(next), next);
  LargeFree(HeaderOf(result), result);
  LargeFree(HeaderOf(live), live);
  LargeCacheReleaseAll();
}

// True if nothing is mapped in [at, at + bytes) (a probe mapping there,
// unmapped again at once).
bool NothingMappedAt(char* at, size_t bytes) {
  void* probe = mmap(at, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (probe == MAP_FAILED) return false;
  munmap(probe, bytes);
  return probe == at;
}

TEST(LargeTest, ResizeInPlace) {
  LargeCacheReleaseAll();  // (a cached region may be carved: its slot is full)
  ScopedLargeReserveOff mapped_alone;  // the address space after the mapping is free
  // A block with room after its mapping for the growth below (the kernel
  // may place other mappings right after it: under TSan it did, once in
  // a CI run, and the growth failed).
  std::vector<char*> crowded;
  char* p = nullptr;
  for (int i = 0; i < 8 && p == nullptr; i++) {
    bool zeroed;
    char* q = static_cast<char*>(LargeAlloc(100000, 16, &zeroed));
    ASSERT_NE(q, nullptr);
    LargeHeader* qh = HeaderOf(q);
    const size_t grown = (qh->block_offset + (size_t{1} << 20) + platform::kPageSize - 1) &
                         ~(platform::kPageSize - 1);
    if (NothingMappedAt(reinterpret_cast<char*>(qh) + qh->region.mapped_size,
                        grown - qh->region.mapped_size)) {
      p = q;
    } else {
      crowded.push_back(q);
    }
  }
  for (char* q : crowded) LargeFree(HeaderOf(q), q);
  ASSERT_NE(p, nullptr) << "no block with free address space after it";
  LargeHeader* h = HeaderOf(p);
  EXPECT_TRUE(LargeResizeInPlace(h, 90000));    // within the mapping
  ASSERT_TRUE(LargeResizeInPlace(h, 1 << 20));  // room after the mapping
  EXPECT_GE(LargeUsableSize(h), size_t{1} << 20);
  memset(p, 1, 1 << 20);
  EXPECT_TRUE(LargeResizeInPlace(h, 200000));  // shrink gives pages back
  EXPECT_LT(LargeUsableSize(h), size_t{1} << 20);
  LargeFree(h, p);
}

// Beyond the cache's resident budget, a big block of a size the cache does
// not hold takes a cached region of another size that kept its pages: a
// bigger one gives its tail back, a smaller one grows in place (F41: one
// buffer at a time of 10-100 MiB, each a different size, faulted a fresh
// mapping in at each size). Within it, a fresh mapping.
TEST(LargeTest, PastTheBudgetABigBlockReusesTheResidentPagesOfAnotherSize) {
  LargeCacheReleaseAll();
  const size_t kMiB = size_t{1} << 20;
  ASSERT_TRUE(SetOption(Option::kLargeCacheMaxMb, 40));  // the resident budget too
  bool zeroed;
  char* p = static_cast<char*>(LargeAlloc(36 * kMiB, 16, &zeroed));
  ASSERT_NE(p, nullptr);
  memset(p, 0x5a, 36 * kMiB);
  LargeHeader* h = HeaderOf(p);
  char* const base = reinterpret_cast<char*>(h);
  LargeFree(h, p);

  // 36 + 12 MiB resident would pass 40.
  char* q = static_cast<char*>(LargeAlloc(12 * kMiB, 16, &zeroed));
  ASSERT_EQ(HeaderOf(q), h) << "a bigger resident region, shrunk";
  EXPECT_FALSE(zeroed);
  EXPECT_EQ(q[12 * kMiB - 1], 0x5a);  // its pages, not fresh ones
  const size_t shrunk = h->region.mapped_size;
  EXPECT_EQ(shrunk, 12 * kMiB + platform::kPageSize);
  EXPECT_EQ(h->reserved, shrunk);
  EXPECT_EQ(registry::Lookup(base + shrunk), nullptr);
  EXPECT_TRUE(NothingMappedAt(base + shrunk, 36 * kMiB + platform::kPageSize - shrunk));
  LargeFree(h, q);

  // 12 + 9 MiB resident: within the budget, a fresh mapping.
  char* other = static_cast<char*>(LargeAlloc(9 * kMiB, 16, &zeroed));
  ASSERT_NE(other, nullptr);
  EXPECT_NE(HeaderOf(other), h);
  EXPECT_TRUE(zeroed);
  memset(other, 1, 9 * kMiB);
  LargeFree(HeaderOf(other), other);

  // 12 + 9 + 20 MiB would pass 40; the 9 MiB region is less than half.
  char* r = static_cast<char*>(LargeAlloc(20 * kMiB, 16, &zeroed));
  ASSERT_EQ(HeaderOf(r), h) << "a smaller resident region, grown in place";
  EXPECT_FALSE(zeroed);
  EXPECT_EQ(r[12 * kMiB - 1], 0x5a);
  EXPECT_EQ(h->region.mapped_size, 20 * kMiB + platform::kPageSize);
  EXPECT_EQ(HeaderOf(r + 20 * kMiB - 1), h);
  memset(r, 1, 20 * kMiB);
  LargeFree(h, r);

  // 20 + 9 + 15 MiB would pass 40: the 20 MiB region, at most twice as
  // big, as it is (shrunk, two sizes in turn shrank and grew it at every
  // take).
  char* as_is = static_cast<char*>(LargeAlloc(15 * kMiB, 16, &zeroed));
  ASSERT_EQ(HeaderOf(as_is), h);
  EXPECT_FALSE(zeroed);
  EXPECT_EQ(h->region.mapped_size, 20 * kMiB + platform::kPageSize);
  EXPECT_GE(LargeUsableSize(h), 20 * kMiB);
  LargeFree(h, as_is);

  // calloc wants zero: no reuse of another size's pages.
  char* z = static_cast<char*>(LargeAlloc(30 * kMiB, 16, &zeroed, /*wants_zero=*/true));
  ASSERT_NE(z, nullptr);
  EXPECT_NE(HeaderOf(z), h);
  EXPECT_TRUE(zeroed);
  LargeFree(HeaderOf(z), z);
  ASSERT_TRUE(SetOption(Option::kLargeCacheMaxMb,
                        GetOptionInfo(Option::kLargeCacheMaxMb).default_value));
  LargeCacheReleaseAll();
}

// Cache misses carve regions from address space mapped ahead: 16 fresh
// blocks cost a few mappings, not 16, each owns its whole 2 MiB slot, and
// all of it (with the reserve's unused rest) is given back with them.
TEST(LargeTest, MissesCarveRegionsFromAddressSpaceMappedAhead) {
  LargeCacheReleaseAll();
  constexpr int kBlocks = 16;
  constexpr size_t kSize = 300 << 10;
  char* blocks[kBlocks];
  const platform::SyscallCounts before = platform::GetSyscallCounts();
  for (char*& p : blocks) {
    bool zeroed = false;
    p = static_cast<char*>(LargeAlloc(kSize, 16, &zeroed));
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(zeroed);
  }
  const platform::SyscallCounts after = platform::GetSyscallCounts();
  EXPECT_LE(after.mmap - before.mmap, 4u) << "one mapping a block";
  for (char* p : blocks) {
    LargeHeader* h = HeaderOf(p);
    ASSERT_NE(h, nullptr);
    EXPECT_EQ(h->reserved, kRegionAlign);
    EXPECT_LT(h->region.mapped_size, kRegionAlign);
    for (size_t i = 0; i < LargeUsableSize(h); i += 4096) ASSERT_EQ(p[i], 0);
    memset(p, 0x6b, LargeUsableSize(h));
  }
  for (char* p : blocks) LargeFree(HeaderOf(p), p);
  LargeCacheReleaseAll();
  for (char* p : blocks) {
    char* slot = reinterpret_cast<char*>(reinterpret_cast<uintptr_t>(p) & ~kRegionMask);
    EXPECT_TRUE(NothingMappedAt(slot, kRegionAlign)) << "a slot stayed mapped";
    EXPECT_FALSE(registry::Contains(p));
  }
}

// A carved block grows within its slot with no syscall; shrunk, it gives
// back the rest of the slot with its tail.
TEST(LargeTest, ACarvedBlockGrowsWithinItsSlotWithoutASyscall) {
  LargeCacheReleaseAll();
  bool zeroed;
  char* p = static_cast<char*>(LargeAlloc(300 << 10, 16, &zeroed));
  ASSERT_NE(p, nullptr);
  LargeHeader* h = HeaderOf(p);
  ASSERT_EQ(h->reserved, kRegionAlign);
  memset(p, 2, 300 << 10);
  const platform::SyscallCounts before = platform::GetSyscallCounts();
  ASSERT_TRUE(LargeResizeInPlace(h, size_t{3} << 19));  // 1.5 MiB
  const platform::SyscallCounts after = platform::GetSyscallCounts();
  EXPECT_EQ(after.mremap, before.mremap);
  EXPECT_EQ(after.mmap, before.mmap);
  EXPECT_GE(LargeUsableSize(h), size_t{3} << 19);
  EXPECT_EQ(p[(300 << 10) - 1], 2);
  EXPECT_EQ(p[(300 << 10) + 1], 0);
  memset(p, 3, size_t{3} << 19);
  ASSERT_TRUE(LargeResizeInPlace(h, 100 << 10));
  EXPECT_EQ(h->reserved, h->region.mapped_size);
  char* const end = reinterpret_cast<char*>(h) + h->region.mapped_size;
  EXPECT_TRUE(NothingMappedAt(end, reinterpret_cast<char*>(h) + kRegionAlign - end));
  EXPECT_EQ(p[(100 << 10) - 1], 3);
  LargeFree(h, p);
}

// Under an address-space limit nothing is mapped ahead: each region is
// mapped alone, so that the limit binds on what the program uses.
TEST(LargeTest, NothingIsMappedAheadUnderAnAddressSpaceLimit) {
  LargeCacheReleaseAll();
  struct rlimit old_limit;
  ASSERT_EQ(getrlimit(RLIMIT_AS, &old_limit), 0);
  struct rlimit finite = old_limit;
  finite.rlim_cur = RLIM_INFINITY - 1;  // binds on nothing, but is a limit
  if (old_limit.rlim_max != RLIM_INFINITY) finite.rlim_cur = old_limit.rlim_max;
  ASSERT_EQ(setrlimit(RLIMIT_AS, &finite), 0);
  platform::ReadIdleMappingBudget();  // as a failed mapping would
  char* blocks[4];
  const platform::SyscallCounts before = platform::GetSyscallCounts();
  for (char*& p : blocks) {
    bool zeroed;
    p = static_cast<char*>(LargeAlloc(300 << 10, 16, &zeroed));
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(HeaderOf(p)->reserved, HeaderOf(p)->region.mapped_size);
  }
  // (Two a block where the kernel does not honour the address hint: TSan.)
  EXPECT_GE(platform::GetSyscallCounts().mmap - before.mmap, 4u);
  ASSERT_EQ(setrlimit(RLIMIT_AS, &old_limit), 0);
  platform::ReadIdleMappingBudget();
  for (char* p : blocks) LargeFree(HeaderOf(p), p);
}

TEST(LargeTest, GrowByMoveKeepsTheContentsWithoutACopy) {
  for (size_t alignment : {size_t{16}, size_t{64} << 10}) {
    bool zeroed;
    const size_t size = 3 << 20;
    char* p = static_cast<char*>(LargeAlloc(size, alignment, &zeroed));
    ASSERT_NE(p, nullptr);
    for (size_t i = 0; i < size; i += 512) p[i] = static_cast<char>(i >> 9);
    LargeHeader* old_header = HeaderOf(p);
    const platform::SyscallCounts before = platform::GetSyscallCounts();
    char* q = static_cast<char*>(LargeGrowByMove(old_header, 10 << 20));
    ASSERT_NE(q, nullptr);
    const platform::SyscallCounts after = platform::GetSyscallCounts();
    EXPECT_EQ(after.mremap, before.mremap + 1);
    EXPECT_NE(q, p);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(q) % alignment, 0u);
    // The old address is no longer ours; the new one is, with its header.
    EXPECT_FALSE(registry::Contains(p));
    LargeHeader* h = HeaderOf(q);
    ASSERT_NE(h, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(h) % kRegionAlign, 0u);
    EXPECT_EQ(h->region.magic, kRegionMagic);
    EXPECT_GE(LargeUsableSize(h), size_t{10} << 20);
    size_t wrong = 0;
    for (size_t i = 0; i < size; i += 512) wrong += q[i] != static_cast<char>(i >> 9);
    EXPECT_EQ(wrong, 0u);
    EXPECT_EQ(q[size + 4096], 0);  // the new part reads as zero
    memset(q, 7, 10 << 20);
    LargeFree(h, q);
  }
}

// With a hole after its mapping too small for a quarter more, a block that
// may move is not grown into it a page at a time: the caller moves it, with
// a quarter of headroom. A caller that cannot move gets what it needs.
TEST(LargeTest, ABlockThatMayMoveDoesNotCreepIntoASmallHole) {
  // A fresh mapping: a cached region may have been split by another test
  // (ABlockWhoseMappingWasSplitDoesNotOfferToMove), which no remap grows.
  LargeCacheReleaseAll();
  ScopedLargeReserveOff mapped_alone;
  bool zeroed;
  char* p = static_cast<char*>(LargeAlloc(size_t{1} << 20, 16, &zeroed));
  ASSERT_NE(p, nullptr);
  LargeHeader* h = HeaderOf(p);
  const size_t mapped = h->region.mapped_size;
  char* end = reinterpret_cast<char*>(h) + mapped;
  // Two pages free after the mapping, then someone else's page.
  void* wall = mmap(end + 2 * platform::kPageSize, platform::kPageSize, PROT_READ,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (wall == MAP_FAILED) {
    LargeFree(h, p);
    GTEST_SKIP() << "the address space after the block is taken";
  }
  const size_t one_page_more = mapped - h->block_offset + platform::kPageSize;
  const platform::SyscallCounts before = platform::GetSyscallCounts();
  bool can_move = false;
  EXPECT_FALSE(LargeResizeInPlace(h, one_page_more, &can_move));
  EXPECT_TRUE(can_move);
  EXPECT_EQ(platform::GetSyscallCounts().mremap, before.mremap + 1) << "one try, a quarter";
  EXPECT_EQ(h->region.mapped_size, mapped);
  // Without a way to move, it takes the page it needs.
  EXPECT_TRUE(LargeResizeInPlace(h, one_page_more));
  EXPECT_EQ(h->region.mapped_size, mapped + platform::kPageSize);
  munmap(wall, platform::kPageSize);
  LargeFree(h, p);
}

// A block whose mapping was split (part of it got other advice, or pages
// moved into its windows, see large.cc MovePagesIn): mremap of the whole
// range fails (EFAULT) in place, as it would in a move. It grows by a
// mapping of its tail; where that address space is taken, it does not
// offer to move.
TEST(LargeTest, ABlockWhoseMappingWasSplitGrowsByMappingItsTail) {
  // Mapped alone: in the reserve (already MADV_NOHUGEPAGE) the advice below
  // would split nothing. (And not a cached region: it may be carved.)
  LargeCacheReleaseAll();
  ScopedLargeReserveOff mapped_alone;
  bool zeroed;
  char* p = static_cast<char*>(LargeAlloc(size_t{1} << 20, 16, &zeroed));
  ASSERT_NE(p, nullptr);
  LargeHeader* h = HeaderOf(p);
  ASSERT_EQ(madvise(p + (256 << 10), 64 << 10, MADV_NOHUGEPAGE), 0);
  memset(p, 4, size_t{1} << 20);
  const size_t grown = size_t{4} << 20;
  bool can_move = false;
  if (!LargeResizeInPlace(h, grown, &can_move)) {
    EXPECT_FALSE(can_move);
    LargeFree(h, p);
    GTEST_SKIP() << "the address space after the block is taken";
  }
  memset(p + (size_t{1} << 20), 5, grown - (size_t{1} << 20));
  EXPECT_EQ(p[0], 4);
  // Now with the address space right after it taken.
  char* end = reinterpret_cast<char*>(h) + h->reserved;
  void* wall = mmap(end, platform::kPageSize, PROT_READ,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (wall == MAP_FAILED) {
    LargeFree(h, p);
    GTEST_SKIP() << "the address space after the block is taken";
  }
  can_move = true;
  EXPECT_FALSE(LargeResizeInPlace(h, size_t{64} << 20, &can_move));
  EXPECT_FALSE(can_move);
  munmap(wall, platform::kPageSize);
  LargeFree(h, p);
}

TEST(LargeTest, AFailedMoveGivesBackOnlyWhatIsStillItsOwn) {
  const size_t size = 4 * kRegionAlign;
  // Still mapped outside the preferred window (the kernel failed before
  // unmapping it, or someone else mapped there since): left alone.
  platform::SetMapHintsForTesting(false);
  char* r = static_cast<char*>(platform::MapAligned(size, kRegionAlign));
  platform::SetMapHintsForTesting(true);
  ASSERT_NE(r, nullptr);
  memset(r, 3, size);
  platform::UnmapReservationAfterFailedRemap(r, size);
  EXPECT_EQ(r[size - 1], 3);  // would fault if it had been unmapped
  platform::Unmap(r, size);
  // Still mapped in the window: nothing but hakmem's hints map there, so it
  // is the reservation (FINDINGS F29): unmapped.
  r = static_cast<char*>(platform::MapAligned(size, kRegionAlign));
  ASSERT_NE(r, nullptr);
  const uintptr_t at = reinterpret_cast<uintptr_t>(r);
  if (at >= platform::kPreferredMapStart && at + size <= platform::kPreferredMapEnd) {
    platform::UnmapReservationAfterFailedRemap(r, size);
    EXPECT_TRUE(NothingMappedAt(r, size));
  } else {
    platform::Unmap(r, size);  // (the window is taken here)
  }
  // Free (the failed move took the reservation down): unmapped again, and
  // free afterwards.
  platform::UnmapReservationAfterFailedRemap(r, size);
  void* again = mmap(r, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  EXPECT_EQ(again, static_cast<void*>(r));
  if (again != MAP_FAILED) munmap(again, size);
}

TEST(LargeDeathTest, InteriorAndDoubleFreeAreReported) {
  bool zeroed;
  char* p = static_cast<char*>(LargeAlloc(100000, 16, &zeroed));
  EXPECT_DEATH(LargeFree(HeaderOf(p), p + 4096),
               "free\\(\\): invalid pointer 0x[0-9a-f]+: not the start of a block");
  EXPECT_DEATH(
      {
        LargeFree(HeaderOf(p), p);
        LargeFree(HeaderOf(p), p);
      },
      "large block is not allocated \\(double free\\?\\)");
  LargeFree(HeaderOf(p), p);
}

}  // namespace
}  // namespace hakmem
