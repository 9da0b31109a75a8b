#include "hakmem/registry/region_cache.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem/platform.h"
#include "hakmem/registry/registry.h"

namespace hakmem {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

RegionCacheLimits g_limits;
RegionCacheLimits TestLimits() { return g_limits; }

uint64_t g_now_ns = 0;
uint64_t FakeClock() { return g_now_ns; }

std::vector<RegionHeader*>* g_released;
void RecordRelease(RegionHeader* region) { g_released->push_back(region); }

// Regions are plain static headers: the cache never touches more than the
// header, and the test's ReleaseFn records instead of unmapping.
class RegionCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    g_limits = RegionCacheLimits{100, uint64_t{1} << 40, 1000, uint64_t{1} << 40,
                                 /*demand_window_sec=*/0, /*decay_ns=*/0};
    g_now_ns = 1000000;
    g_released = &released_;
    platform::SetClockForTesting(&FakeClock);
    for (size_t i = 0; i < kRegions; i++) {
      regions_[i] = RegionHeader{};
      regions_[i].mapped_size = (i < 4 ? 2 : 4) * kMiB;
    }
  }
  void TearDown() override { platform::SetClockForTesting(nullptr); }

  static constexpr size_t kRegions = 8;
  RegionHeader regions_[kRegions];
  std::vector<RegionHeader*> released_;
  RegionCache cache_{&TestLimits, &RecordRelease};
};

TEST_F(RegionCacheTest, TakeReturnsMostRecentlyUsedFit) {
  EXPECT_EQ(cache_.Take(kRegionAlign, kRegionAlign), nullptr);  // miss
  cache_.Put(&regions_[0]);
  cache_.Put(&regions_[1]);
  EXPECT_EQ(cache_.Take(kRegionAlign, kRegionAlign), &regions_[1]);
  EXPECT_EQ(cache_.Take(kRegionAlign, kRegionAlign), &regions_[0]);
  const RegionCacheStats stats = cache_.GetStats();
  EXPECT_EQ(stats.hits, 2u);
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(stats.cached, 0u);
}

TEST_F(RegionCacheTest, TakeHonoursSizeRange) {
  cache_.Put(&regions_[0]);  // 2 MiB
  cache_.Put(&regions_[5]);  // 4 MiB
  EXPECT_EQ(cache_.Take(3 * kMiB, 5 * kMiB), &regions_[5]);
  EXPECT_EQ(cache_.Take(3 * kMiB, 5 * kMiB), nullptr);
  EXPECT_EQ(cache_.Take(2 * kMiB, 2 * kMiB), &regions_[0]);
}

// A take that asks for a shape gets the most recent region of that shape
// that kept its pages, wherever it is in the LRU order; else the most
// recent fit. The shape lists follow every way a region leaves the cache.
TEST_F(RegionCacheTest, TakePrefersAResidentRegionOfTheShapeAskedFor) {
  regions_[0].shape = 5;
  regions_[1].shape = 5;
  regions_[2].shape = 6;
  regions_[3].shape = 6;
  for (int i = 0; i < 4; i++) cache_.Put(&regions_[i]);
  EXPECT_EQ(cache_.Take(kRegionAlign, kRegionAlign, nullptr, 5), &regions_[1]);
  EXPECT_EQ(cache_.Take(kRegionAlign, kRegionAlign, nullptr, 5), &regions_[0]);
  EXPECT_EQ(cache_.Take(kRegionAlign, kRegionAlign, nullptr, 5), &regions_[3]) << "none left";
  EXPECT_EQ(cache_.Take(kRegionAlign, kRegionAlign, nullptr, 6), &regions_[2]);
  EXPECT_EQ(cache_.GetStats().cached, 0u);
  // Evicted regions leave their shape's list too.
  cache_.Put(&regions_[2]);
  cache_.ReleaseAll();
  EXPECT_EQ(cache_.Take(kRegionAlign, kRegionAlign, nullptr, 6), nullptr);
}

TEST_F(RegionCacheTest, GenerationBumpsOnReuse) {
  regions_[0].generation = 7;
  cache_.Put(&regions_[0]);
  ASSERT_EQ(cache_.Take(kRegionAlign, kRegionAlign), &regions_[0]);
  EXPECT_EQ(regions_[0].generation, 8u);
}

// ---- Adaptive sizing: no more than recent demand --------------------------

constexpr uint64_t kSecondNs = 1000000000;

TEST_F(RegionCacheTest, AdaptiveSizingKeepsWhatRecentDemandTook) {
  g_limits.ttl_ns = 3600 * kSecondNs;
  g_limits.demand_window_sec = 4;
  // A spike: the program takes 6 regions (all misses: it maps them) ...
  for (int i = 0; i < 6; i++) EXPECT_EQ(cache_.Take(kRegionAlign, 8 * kMiB), nullptr);
  EXPECT_EQ(cache_.DemandTarget(), 6u + RegionCache::kDemandFloor);
  // ... and frees them: all stay, as it took that many within the window.
  for (int i = 0; i < 6; i++) cache_.Put(&regions_[i]);
  EXPECT_TRUE(released_.empty());
  // Within the window nothing changes; once the spike's second leaves it,
  // the cache shrinks to the floor, oldest first (far before the TTL).
  g_now_ns += 3 * kSecondNs;
  cache_.EnforceLimits();
  EXPECT_TRUE(released_.empty());
  g_now_ns += 2 * kSecondNs;
  cache_.EnforceLimits();
  EXPECT_EQ(cache_.DemandTarget(), RegionCache::kDemandFloor);
  ASSERT_EQ(released_.size(), 4u);
  for (int i = 0; i < 4; i++) {  // the least recently used
    EXPECT_NE(std::find(released_.begin(), released_.end(), &regions_[i]), released_.end()) << i;
  }
  EXPECT_EQ(cache_.GetStats().cached, RegionCache::kDemandFloor);
}

// A burst that straddles the end of a second counts whole: split 3 + 3,
// the cache still keeps all 6 when they come back.
TEST_F(RegionCacheTest, AdaptiveSizingCountsABurstAcrossTheEndOfASecond) {
  g_limits.ttl_ns = 3600 * kSecondNs;
  g_limits.demand_window_sec = 4;
  EXPECT_EQ(cache_.Take(kRegionAlign, 8 * kMiB), nullptr);  // starts the seconds
  g_now_ns += kSecondNs - kSecondNs / 10;
  for (int i = 0; i < 3; i++) EXPECT_EQ(cache_.Take(kRegionAlign, 8 * kMiB), nullptr);
  g_now_ns += kSecondNs / 5;  // into the next second
  for (int i = 0; i < 3; i++) EXPECT_EQ(cache_.Take(kRegionAlign, 8 * kMiB), nullptr);
  EXPECT_GE(cache_.DemandTarget(), 6u + RegionCache::kDemandFloor);
  for (int i = 0; i < 6; i++) cache_.Put(&regions_[i]);
  EXPECT_TRUE(released_.empty());
  EXPECT_EQ(cache_.GetStats().cached, 6u);
}

TEST_F(RegionCacheTest, AdaptiveSizingKeepsASteadyChurnCached) {
  g_limits.ttl_ns = 3600 * kSecondNs;
  g_limits.demand_window_sec = 4;
  // Every second the program takes 5 regions and gives them back: after the
  // first round (misses: it maps them) every take is a hit, and the cache
  // never drops below it.
  for (int i = 0; i < 5; i++) EXPECT_EQ(cache_.Take(kRegionAlign, 8 * kMiB), nullptr);
  for (int i = 0; i < 5; i++) cache_.Put(&regions_[i]);
  for (int second = 0; second < 20; second++) {
    RegionHeader* taken[5];
    for (RegionHeader*& r : taken) {
      r = cache_.Take(kRegionAlign, 8 * kMiB);
      ASSERT_NE(r, nullptr) << "second " << second;
    }
    for (RegionHeader* r : taken) cache_.Put(r);
    g_now_ns += kSecondNs;
    cache_.EnforceLimits();
  }
  EXPECT_TRUE(released_.empty());
  EXPECT_EQ(cache_.GetStats().misses, 5u);
}

TEST_F(RegionCacheTest, AdaptiveSizingOffKeepsEverythingUntilTheTtl) {
  g_limits.ttl_ns = 3600 * kSecondNs;
  g_limits.demand_window_sec = 0;
  for (int i = 0; i < 6; i++) cache_.Put(&regions_[i]);
  g_now_ns += 100 * kSecondNs;
  cache_.EnforceLimits();
  EXPECT_TRUE(released_.empty());
  EXPECT_EQ(cache_.DemandTarget(), UINT64_MAX);
}

TEST_F(RegionCacheTest, CountLimitEvictsLeastRecentlyUsed) {
  g_limits.max_count = 2;
  cache_.Put(&regions_[0]);
  cache_.Put(&regions_[1]);
  EXPECT_TRUE(released_.empty());
  cache_.Put(&regions_[2]);
  ASSERT_EQ(released_.size(), 1u);
  EXPECT_EQ(released_[0], &regions_[0]);
  EXPECT_EQ(cache_.GetStats().cached, 2u);
  EXPECT_EQ(cache_.GetStats().evicted, 1u);
}

TEST_F(RegionCacheTest, ZeroCountEvictsAtOnce) {
  g_limits.max_count = 0;
  cache_.Put(&regions_[0]);
  ASSERT_EQ(released_.size(), 1u);
  EXPECT_EQ(cache_.GetStats().cached, 0u);
}

TEST_F(RegionCacheTest, MemoryLimitEvicts) {
  g_limits.max_bytes = 3 * kMiB;
  cache_.Put(&regions_[4]);  // 4 MiB alone exceeds 3 MiB
  ASSERT_EQ(released_.size(), 1u);
  cache_.Put(&regions_[0]);
  cache_.Put(&regions_[1]);  // 4 MiB total: the older goes
  ASSERT_EQ(released_.size(), 2u);
  EXPECT_EQ(released_[1], &regions_[0]);
  EXPECT_EQ(cache_.GetStats().cached_bytes, 2 * kMiB);
}

TEST_F(RegionCacheTest, TtlEvictsOnlyExpiredRegions) {
  g_limits.ttl_ns = 1000;
  cache_.Put(&regions_[0]);
  g_now_ns += 600;
  cache_.Put(&regions_[1]);
  g_now_ns += 500;  // region 0 is 1100 ns old, region 1 500 ns
  cache_.EnforceLimits();
  ASSERT_EQ(released_.size(), 1u);
  EXPECT_EQ(released_[0], &regions_[0]);
  g_now_ns += 500;
  cache_.EnforceLimits();
  ASSERT_EQ(released_.size(), 2u);
  EXPECT_EQ(released_[1], &regions_[1]);
}

// A region whose memory the program stopped using before the allocator
// learned it (blocks that waited in an idle thread's cache): the TTL counts
// from then, so it may go at once.
TEST_F(RegionCacheTest, ARegionFreedEarlierExpiresFromThen) {
  g_limits.ttl_ns = 1000;
  const uint64_t start = g_now_ns;
  g_now_ns += 2000;
  cache_.Put(&regions_[0]);                // freed now: stays
  cache_.Put(&regions_[1], start + 500);   // freed 1500 ns ago: expired
  cache_.Put(&regions_[2], start + 1500);  // freed 500 ns ago: stays
  ASSERT_EQ(released_.size(), 1u);
  EXPECT_EQ(released_[0], &regions_[1]);
  EXPECT_EQ(cache_.GetStats().cached, 2u);
  // A date in the future counts as now.
  cache_.Put(&regions_[3], g_now_ns + 5000);
  g_now_ns += 600;  // region 2 is 1100 ns old now, regions 0 and 3 600
  cache_.EnforceLimits();
  ASSERT_EQ(released_.size(), 2u);
  EXPECT_EQ(released_[1], &regions_[2]);
  EXPECT_EQ(cache_.GetStats().cached, 2u);
  g_now_ns += 400;  // a TTL after both were cached: both go (region 3 too)
  cache_.EnforceLimits();
  EXPECT_EQ(released_.size(), 4u);
  EXPECT_EQ(cache_.GetStats().cached, 0u);
}

// Such a region joins the age order where its date puts it: it is evicted
// before younger regions cached earlier, after older ones.
TEST_F(RegionCacheTest, ARegionFreedEarlierTakesItsPlaceInTheAgeOrder) {
  g_limits.ttl_ns = 1000;
  const uint64_t start = g_now_ns;
  cache_.Put(&regions_[0]);  // at +0
  g_now_ns = start + 300;
  cache_.Put(&regions_[1]);  // at +300
  g_now_ns = start + 400;
  cache_.Put(&regions_[2], start + 100);  // as of +100: between 0 and 1
  EXPECT_TRUE(released_.empty());
  g_now_ns = start + 1150;  // 0 and 2 expired, 1 not (had 2 joined at the
  cache_.EnforceLimits();   // young end, 1 would have stopped the eviction)
  ASSERT_EQ(released_.size(), 2u);
  EXPECT_TRUE(std::find(released_.begin(), released_.end(), &regions_[0]) != released_.end());
  EXPECT_TRUE(std::find(released_.begin(), released_.end(), &regions_[2]) != released_.end());
  EXPECT_EQ(cache_.GetStats().cached, 1u);
  // And the count limit takes the oldest first too.
  g_limits.ttl_ns = 1000000;
  g_limits.max_count = 1;
  g_now_ns = start + 1200;
  cache_.Put(&regions_[3], start + 200);  // older than region 1: goes first
  ASSERT_EQ(released_.size(), 3u);
  EXPECT_EQ(released_[2], &regions_[3]);
}

TEST_F(RegionCacheTest, ReleaseAllEmptiesTheCache) {
  cache_.Put(&regions_[0]);
  cache_.Put(&regions_[1]);
  cache_.ReleaseAll();
  EXPECT_EQ(released_.size(), 2u);
  EXPECT_EQ(cache_.GetStats().cached, 0u);
  EXPECT_EQ(cache_.Take(kRegionAlign, kRegionAlign), nullptr);
}

TEST_F(RegionCacheTest, RegionsBeyondTheResidentBudgetGiveTheirPagesBack) {
  g_limits.max_resident_bytes = 2 * kMiB;
  char* mapped[2];
  for (char*& base : mapped) {
    base = static_cast<char*>(platform::MapAligned(2 * kMiB, kRegionAlign));
    ASSERT_NE(base, nullptr);
    RegionHeader* header = reinterpret_cast<RegionHeader*>(base);
    *header = RegionHeader{};
    header->mapped_size = 2 * kMiB;
    memset(base + platform::kPageSize, 0x77, 2 * kMiB - platform::kPageSize);
  }
  RegionHeader* first = reinterpret_cast<RegionHeader*>(mapped[0]);
  RegionHeader* second = reinterpret_cast<RegionHeader*>(mapped[1]);
  const uint64_t madvises = platform::GetSyscallCounts().madvise;
  cache_.Put(first);   // fits the budget: stays resident
  cache_.Put(second);  // over it (no decay): the older one gives its pages back
  EXPECT_EQ(first->discarded, 1u);
  EXPECT_EQ(second->discarded, 0u);
  EXPECT_EQ(platform::GetSyscallCounts().madvise, madvises + 1);
  EXPECT_EQ(mapped[0][platform::kPageSize + 5], 0);  // reads as zero now
  EXPECT_EQ(mapped[1][platform::kPageSize + 5], 0x77);
  EXPECT_EQ(first->mapped_size, 2 * kMiB);           // header page kept
  EXPECT_EQ(cache_.GetStats().resident_bytes, 2 * kMiB);
  bool reads_zero = true;
  EXPECT_EQ(cache_.Take(2 * kMiB, 2 * kMiB, &reads_zero), second);  // the resident one
  EXPECT_FALSE(reads_zero);
  EXPECT_EQ(cache_.Take(2 * kMiB, 2 * kMiB, &reads_zero), first);
  EXPECT_TRUE(reads_zero);  // the taker may count on zero pages
  EXPECT_EQ(first->discarded, 0u);
  EXPECT_EQ(cache_.GetStats().resident_bytes, 0u);
  for (char* base : mapped) platform::Unmap(base, 2 * kMiB);
}

uint32_t g_windows_with_pages = UINT32_MAX;
uint32_t TestWindowsWithPages(const RegionHeader*) { return g_windows_with_pages; }

// A region of `windows` 2 MiB windows in the preferred window (where pages
// may move), window w's pages after the header holding 0x10 + w; or null.
char* MapWindowsForAMove(size_t windows) {
  char* base = static_cast<char*>(platform::MapAligned(windows * kRegionAlign, kRegionAlign));
  if (base == nullptr) return nullptr;
  if (!platform::PageMovesMayReach(base + platform::kPageSize)) {
    platform::Unmap(base, windows * kRegionAlign);
    return nullptr;
  }
  *reinterpret_cast<RegionHeader*>(base) = RegionHeader{};
  reinterpret_cast<RegionHeader*>(base)->mapped_size = windows * kRegionAlign;
  for (size_t w = 0; w < windows; w++) {
    const size_t from = w == 0 ? platform::kPageSize : 0;
    memset(base + w * kRegionAlign + from, 0x10 + static_cast<int>(w), kRegionAlign - from);
  }
  return base;
}

// Pages move to another layer a window at a time (each but its first
// page) from a region's front, while the cache is beyond its budget, and
// only windows that hold pages as far as the cache knows
// (windows_with_pages); the region stays cached with the rest, counted
// resident, until every whole window moved, then gives the rest back and
// reads zero. Only regions cached for `min_age_ns`.
TEST_F(RegionCacheTest, CachedPagesMoveAWindowAtATimeFromARegionsFront) {
  if (!platform::PageMovesAvailable()) GTEST_SKIP() << "page moves are off here";
  g_limits.max_resident_bytes = 0;
  g_limits.decay_ns = 1000000000;  // cached regions keep their pages meanwhile
  char* const region = MapWindowsForAMove(4);
  char* const to_windows = MapWindowsForAMove(4);
  if (region == nullptr || to_windows == nullptr) GTEST_SKIP() << "outside the preferred window";
  RegionHeader* const header = reinterpret_cast<RegionHeader*>(region);
  char* to[4];
  for (int i = 0; i < 4; i++) to[i] = to_windows + i * kRegionAlign + platform::kPageSize;
  cache_.Put(header);
  const uint64_t resident = cache_.GetStats().resident_bytes;
  ASSERT_EQ(resident, 4 * kRegionAlign);
  EXPECT_EQ(cache_.MoveCachedPages(to, 1, nullptr, /*min_age_ns=*/1000), 0) << "cached just now";
  g_now_ns += 1000;
  EXPECT_EQ(cache_.MoveCachedPages(to, 1, nullptr, /*min_age_ns=*/1000), 1);
  EXPECT_EQ(to[0][5], 0x10);
  EXPECT_EQ(region[platform::kPageSize + 5], 0) << "moved out: reads zero";
  EXPECT_EQ(header->windows_moved_out, 1u);
  EXPECT_EQ(header->discarded, 0u);
  EXPECT_EQ(cache_.GetStats().resident_bytes, resident - kMoveSpanBytes);
  // Windows 1 and 2 hold pages as far as the cache knows (the hint):
  // window 3 is not moved, and keeps its pages, counted resident.
  g_windows_with_pages = 3;
  EXPECT_EQ(cache_.MoveCachedPages(to + 1, 3, &TestWindowsWithPages), 2);
  EXPECT_EQ(cache_.MoveCachedPages(to + 3, 1, &TestWindowsWithPages), 0);
  g_windows_with_pages = UINT32_MAX;
  EXPECT_EQ(to[1][5], 0x11);
  EXPECT_EQ(to[2][5], 0x12);
  EXPECT_EQ(to[3][5], 0x13) << "no move there: its own bytes";
  EXPECT_EQ(header->discarded, 0u);
  EXPECT_EQ(region[3 * kRegionAlign + 5], 0x13);
  EXPECT_EQ(cache_.GetStats().resident_bytes, 4 * kRegionAlign - 3 * kMoveSpanBytes);
  // Its last window moved, the rest (the windows' first pages) goes back.
  EXPECT_EQ(cache_.MoveCachedPages(to + 3, 1), 1);
  EXPECT_EQ(to[3][5], 0x13);
  EXPECT_EQ(header->discarded, kPagesGivenBack);
  EXPECT_EQ(region[kRegionAlign], 0);
  EXPECT_EQ(region[3 * kRegionAlign + 5], 0);
  EXPECT_EQ(cache_.GetStats().resident_bytes, 0u);
  bool reads_zero = false;
  EXPECT_EQ(cache_.Take(4 * kRegionAlign, 4 * kRegionAlign, &reads_zero), header);
  EXPECT_TRUE(reads_zero);
  platform::Unmap(region, 4 * kRegionAlign);
  platform::Unmap(to_windows, 4 * kRegionAlign);
}

std::vector<char*> MapFilledRegions(size_t n);
RegionHeader* HeaderOf(char* base);

// A 2 MiB region whose pages after the header hold 0x77, the first of them
// locked (mlock), unlocked and unmapped at the end of the scope.
struct LockedRegion {
  LockedRegion() {
    base = static_cast<char*>(platform::MapAligned(2 * kMiB, kRegionAlign));
    if (base == nullptr) return;
    *HeaderOf(base) = RegionHeader{};
    HeaderOf(base)->mapped_size = 2 * kMiB;
    memset(base + platform::kPageSize, 0x77, 2 * kMiB - platform::kPageSize);
    locked = mlock(base + platform::kPageSize, platform::kPageSize) == 0;
    if (!locked) error = errno;
  }
  ~LockedRegion() {
    if (base == nullptr) return;
    if (locked) munlock(base + platform::kPageSize, platform::kPageSize);
    platform::Unmap(base, 2 * kMiB);
  }
  RegionHeader* header() const { return HeaderOf(base); }
  // Whether a discard left the locked page as it was (the sanitizers make
  // mlock a no-op).
  bool KeptItsPages() const { return base[platform::kPageSize + 5] == 0x77; }
  char* base = nullptr;
  bool locked = false;
  int error = 0;
};

// A region whose pages the kernel refuses to take (locked) is released,
// its mapping with them, at once: kept, it held locked memory (and was not
// to be taken for zero).
TEST_F(RegionCacheTest, ARegionWhosePagesCouldNotBeGivenBackIsReleased) {
  g_limits.max_resident_bytes = 0;
  LockedRegion region;
  ASSERT_NE(region.base, nullptr);
  if (!region.locked) GTEST_SKIP() << "mlock: " << strerror(region.error);
  const uint64_t madvises = platform::GetSyscallCounts().madvise;
  const uint64_t evicted = cache_.GetStats().evicted;
  cache_.Put(region.header());  // over the budget: its pages should go, but can't
  if (!region.KeptItsPages()) GTEST_SKIP() << "mlock did not lock";
  EXPECT_EQ(platform::GetSyscallCounts().madvise, madvises + 1);
  ASSERT_EQ(released_.size(), 1u);
  EXPECT_EQ(released_[0], region.header());
  EXPECT_EQ(cache_.GetStats().cached, 0u);
  EXPECT_EQ(cache_.GetStats().cached_bytes, 0u);
  EXPECT_EQ(cache_.GetStats().evicted, evicted + 1);
  EXPECT_EQ(cache_.Take(2 * kMiB, 2 * kMiB), nullptr);
  // A region given back beside it stays cached.
  std::vector<char*> mapped = MapFilledRegions(1);
  ASSERT_EQ(mapped.size(), 1u);
  cache_.Put(HeaderOf(mapped[0]));
  EXPECT_EQ(HeaderOf(mapped[0])->discarded, kPagesGivenBack);
  EXPECT_EQ(released_.size(), 1u);
  EXPECT_EQ(cache_.Take(2 * kMiB, 2 * kMiB), HeaderOf(mapped[0]));
  platform::Unmap(mapped[0], 2 * kMiB);
}

// A give-back now (for the other layer) only marks such a region: released
// there, phases that alternate unmapped and mapped it again at every turn.
// The decay releases it once it has been cached that long.
TEST_F(RegionCacheTest, AGiveBackNowKeepsARefusedRegionUntilTheDecay) {
  g_limits.max_resident_bytes = 0;
  g_limits.decay_ns = 500;
  LockedRegion region;
  ASSERT_NE(region.base, nullptr);
  if (!region.locked) GTEST_SKIP() << "mlock: " << strerror(region.error);
  RegionHeader* header = region.header();
  cache_.Put(header);  // within the decay: kept as it is
  EXPECT_EQ(header->discarded, 0u);
  cache_.GiveBackForAnotherLayer();
  if (!region.KeptItsPages()) GTEST_SKIP() << "mlock did not lock";
  EXPECT_EQ(header->discarded, kPagesKept);
  EXPECT_TRUE(released_.empty());
  EXPECT_EQ(cache_.GetStats().cached, 1u);
  g_now_ns += 499;
  cache_.EnforceLimits();
  EXPECT_TRUE(released_.empty()) << "released before the decay";
  g_now_ns += 1;
  const uint64_t madvises = platform::GetSyscallCounts().madvise;
  cache_.EnforceLimits();
  ASSERT_EQ(released_.size(), 1u);
  EXPECT_EQ(released_[0], header);
  EXPECT_EQ(cache_.GetStats().cached, 0u);
  EXPECT_EQ(platform::GetSyscallCounts().madvise, madvises) << "not tried again";
}

// Maps `n` 2 MiB regions whose pages after the header hold 0x77.
std::vector<char*> MapFilledRegions(size_t n) {
  std::vector<char*> mapped;
  for (size_t i = 0; i < n; i++) {
    char* base = static_cast<char*>(platform::MapAligned(2 * kMiB, kRegionAlign));
    if (base == nullptr) break;
    RegionHeader* header = reinterpret_cast<RegionHeader*>(base);
    *header = RegionHeader{};
    header->mapped_size = 2 * kMiB;
    memset(base + platform::kPageSize, 0x77, 2 * kMiB - platform::kPageSize);
    mapped.push_back(base);
  }
  return mapped;
}

RegionHeader* HeaderOf(char* base) { return reinterpret_cast<RegionHeader*>(base); }

// A region whose pages went back is on no shape's list: a take of its
// shape gets one that kept them, however many went back since (a review:
// 8 given back at the front of their list hid the resident one behind
// them from the look-ahead), else the most recent fit of any shape.
TEST_F(RegionCacheTest, ATakeOfAShapeSkipsItsRegionsWhosePagesWentBack) {
  g_limits.max_resident_bytes = 4 * kMiB;  // two regions; no decay
  std::vector<char*> mapped = MapFilledRegions(10);
  ASSERT_EQ(mapped.size(), 10u);
  for (size_t i = 0; i < 10; i++) {
    HeaderOf(mapped[i])->shape = i < 9 ? 5 : 6;
    cache_.Put(HeaderOf(mapped[i]));
  }
  for (size_t i = 0; i < 8; i++) ASSERT_EQ(HeaderOf(mapped[i])->discarded, kPagesGivenBack) << i;
  ASSERT_EQ(HeaderOf(mapped[8])->discarded, 0u);
  EXPECT_EQ(cache_.Take(kRegionAlign, kRegionAlign, nullptr, 5), HeaderOf(mapped[8]));
  EXPECT_EQ(cache_.Take(kRegionAlign, kRegionAlign, nullptr, 5), HeaderOf(mapped[9]))
      << "pages kept, of another shape, before pages given back";
  bool reads_zero = false;
  EXPECT_NE(cache_.Take(kRegionAlign, kRegionAlign, &reads_zero, 5), nullptr);
  EXPECT_TRUE(reads_zero) << "only regions whose pages went back are left";
  for (char* base : mapped) platform::Unmap(base, 2 * kMiB);
}

// TakeResident passes over regions whose pages went back, and a miss is
// not counted (its caller goes on to Take).
TEST_F(RegionCacheTest, TakeResidentTakesOnlyRegionsThatKeptTheirPages) {
  g_limits.max_resident_bytes = 2 * kMiB;
  std::vector<char*> mapped = MapFilledRegions(2);
  ASSERT_EQ(mapped.size(), 2u);
  cache_.Put(HeaderOf(mapped[0]));
  cache_.Put(HeaderOf(mapped[1]));  // over the budget: the first gives its pages back
  ASSERT_EQ(HeaderOf(mapped[0])->discarded, kPagesGivenBack);
  const RegionCacheStats before = cache_.GetStats();
  EXPECT_EQ(cache_.TakeResident(2 * kMiB, 8 * kMiB), HeaderOf(mapped[1]));
  EXPECT_EQ(cache_.TakeResident(2 * kMiB, 8 * kMiB), nullptr);  // only the discarded one left
  const RegionCacheStats after = cache_.GetStats();
  EXPECT_EQ(after.hits, before.hits + 1);
  EXPECT_EQ(after.misses, before.misses);
  EXPECT_EQ(cache_.Take(2 * kMiB, 2 * kMiB), HeaderOf(mapped[0]));
  for (char* base : mapped) platform::Unmap(base, 2 * kMiB);
}

TEST_F(RegionCacheTest, BeyondTheBudgetTheOldestGiveTheirPagesBackAfterTheDecay) {
  g_limits.max_resident_bytes = 2 * kMiB;
  g_limits.decay_ns = 500;
  g_limits.ttl_ns = uint64_t{1} << 40;
  std::vector<char*> mapped = MapFilledRegions(3);
  ASSERT_EQ(mapped.size(), 3u);
  const uint64_t madvises = platform::GetSyscallCounts().madvise;
  for (char* base : mapped) {
    cache_.Put(HeaderOf(base));  // all stay resident for now
    g_now_ns += 100;
  }
  EXPECT_EQ(cache_.GetStats().resident_bytes, 6 * kMiB);
  g_now_ns += 250;  // the oldest was cached 550 ns ago, the second 450 ns
  cache_.EnforceLimits();
  EXPECT_EQ(platform::GetSyscallCounts().madvise, madvises + 1);
  EXPECT_EQ(HeaderOf(mapped[0])->discarded, 1u);
  EXPECT_EQ(HeaderOf(mapped[1])->discarded, 0u);
  EXPECT_EQ(mapped[0][platform::kPageSize + 5], 0);  // reads as zero now
  EXPECT_EQ(mapped[1][platform::kPageSize + 5], 0x77);
  EXPECT_EQ(cache_.GetStats().resident_bytes, 4 * kMiB);
  g_now_ns += 100;  // the second is old enough; the third (350 ns) is not
  cache_.EnforceLimits();
  EXPECT_EQ(HeaderOf(mapped[1])->discarded, 1u);
  EXPECT_EQ(HeaderOf(mapped[2])->discarded, 0u);
  g_now_ns += 1000;  // the budget holds: the third keeps its pages
  cache_.EnforceLimits();
  EXPECT_EQ(HeaderOf(mapped[2])->discarded, 0u);
  EXPECT_EQ(mapped[2][platform::kPageSize + 5], 0x77);
  EXPECT_EQ(platform::GetSyscallCounts().madvise, madvises + 2);
  EXPECT_EQ(cache_.GetStats().resident_bytes, 2 * kMiB);
  EXPECT_EQ(cache_.GetStats().cached, 3u);
  // Age order is kept (the TTL looks at the oldest end only): a TTL that
  // only the oldest has reached takes it, then one the second has reached.
  g_limits.ttl_ns = g_now_ns - HeaderOf(mapped[0])->last_used_ns;
  cache_.EnforceLimits();
  ASSERT_EQ(released_.size(), 1u);
  EXPECT_EQ(released_[0], HeaderOf(mapped[0]));
  g_limits.ttl_ns = g_now_ns - HeaderOf(mapped[1])->last_used_ns;
  cache_.EnforceLimits();
  ASSERT_EQ(released_.size(), 2u);
  EXPECT_EQ(released_[1], HeaderOf(mapped[1]));
  EXPECT_EQ(cache_.Take(2 * kMiB, 2 * kMiB), HeaderOf(mapped[2]));
  for (char* base : mapped) platform::Unmap(base, 2 * kMiB);
}

// Misses in a row: what the cache holds does not serve the demand, so
// beyond the budget the oldest give their pages back at once, decay or not
// (a buffer grown by copies into ever bigger blocks left every copy
// resident).
// Three filled regions cached, 6 MiB resident past a 2 MiB budget, within
// a decay that never ends.
std::vector<char*> CacheThreeFilledRegionsPastTheBudget(RegionCache& cache) {
  g_limits.max_resident_bytes = 2 * kMiB;
  g_limits.decay_ns = uint64_t{1} << 40;
  g_limits.ttl_ns = uint64_t{1} << 41;
  std::vector<char*> mapped = MapFilledRegions(3);
  for (char* base : mapped) cache.Put(HeaderOf(base));
  return mapped;
}

// The budget applied: the two oldest gave their pages back.
void ExpectOnlyTheNewestKeptItsPages(const std::vector<char*>& mapped) {
  EXPECT_EQ(HeaderOf(mapped[0])->discarded, kPagesGivenBack);
  EXPECT_EQ(HeaderOf(mapped[1])->discarded, kPagesGivenBack);
  EXPECT_EQ(HeaderOf(mapped[2])->discarded, 0u);
  EXPECT_EQ(mapped[2][platform::kPageSize + 5], 0x77);
}

TEST_F(RegionCacheTest, MissesInARowApplyTheResidentBudgetWithoutTheDecay) {
  std::vector<char*> mapped = CacheThreeFilledRegionsPastTheBudget(cache_);
  ASSERT_EQ(mapped.size(), 3u);
  cache_.EnforceLimits();
  EXPECT_EQ(cache_.GetStats().resident_bytes, 6 * kMiB);  // within the decay
  for (uint32_t i = 1; i < RegionCache::kMissesThatSkipTheDecay; i++) {
    EXPECT_EQ(cache_.Take(4 * kMiB, 8 * kMiB), nullptr);  // none fits
  }
  EXPECT_EQ(cache_.GetStats().resident_bytes, 6 * kMiB) << "a few misses among hits";
  EXPECT_EQ(cache_.Take(4 * kMiB, 8 * kMiB), nullptr);
  EXPECT_EQ(cache_.GetStats().resident_bytes, 2 * kMiB);
  ExpectOnlyTheNewestKeptItsPages(mapped);
  EXPECT_EQ(cache_.GetStats().cached, 3u);
  for (char* base : mapped) platform::Unmap(base, 2 * kMiB);
}

// A big miss applies the budget at once; a small one leaves the decay alone.
TEST_F(RegionCacheTest, ABigMissAppliesTheResidentBudgetWithoutTheDecay) {
  std::vector<char*> mapped = CacheThreeFilledRegionsPastTheBudget(cache_);
  ASSERT_EQ(mapped.size(), 3u);
  EXPECT_EQ(cache_.Take(4 * kMiB, 8 * kMiB), nullptr);
  EXPECT_EQ(cache_.GetStats().resident_bytes, 6 * kMiB) << "a small miss";
  EXPECT_EQ(cache_.Take(RegionCache::kBigMissBytes, 2 * RegionCache::kBigMissBytes), nullptr);
  EXPECT_EQ(cache_.GetStats().resident_bytes, 2 * kMiB);
  ExpectOnlyTheNewestKeptItsPages(mapped);
  EXPECT_EQ(cache_.GetStats().cached, 3u);
  for (char* base : mapped) platform::Unmap(base, 2 * kMiB);
}

// A give-back for another layer gives back the oldest beyond the resident
// budget at once, as the decay would later; it is not counted as a take.
TEST_F(RegionCacheTest, AGiveBackForAnotherLayerAppliesTheBudgetNow) {
  std::vector<char*> mapped = CacheThreeFilledRegionsPastTheBudget(cache_);
  ASSERT_EQ(mapped.size(), 3u);
  const RegionCacheStats before = cache_.GetStats();
  cache_.GiveBackForAnotherLayer();
  ExpectOnlyTheNewestKeptItsPages(mapped);
  const RegionCacheStats after = cache_.GetStats();
  EXPECT_EQ(after.resident_bytes, 2 * kMiB);
  EXPECT_EQ(after.hits, before.hits);
  EXPECT_EQ(after.misses, before.misses);
  EXPECT_EQ(after.cached, 3u);
  cache_.ReleaseAll();
  for (char* base : mapped) platform::Unmap(base, 2 * kMiB);
}

// A take that finds pages given back within the decay time after a
// give-back for another layer is a regret: none for kFirstCrossQuietDecays
// decay times, then (after another regret) twice as long. A miss is no
// regret.
TEST_F(RegionCacheTest, ARegrettedGiveBackStopsThemForAWhile) {
  g_limits.max_resident_bytes = 0;
  g_limits.decay_ns = 1000000;
  g_limits.ttl_ns = uint64_t{1} << 41;
  std::vector<char*> mapped = MapFilledRegions(2);
  ASSERT_EQ(mapped.size(), 2u);
  for (char* base : mapped) cache_.Put(HeaderOf(base));
  // Gives back, takes one back (a regret), caches it again, resident.
  const auto regret = [&] {
    cache_.GiveBackForAnotherLayer();
    ASSERT_EQ(cache_.GetStats().resident_bytes, 0u);
    bool reads_zero = false;
    RegionHeader* r = cache_.Take(2 * kMiB, 2 * kMiB, &reads_zero);
    ASSERT_NE(r, nullptr);
    ASSERT_TRUE(reads_zero);
    cache_.Put(r);
    ASSERT_EQ(cache_.GetStats().resident_bytes, 2 * kMiB);
  };
  ASSERT_NO_FATAL_FAILURE(regret());
  cache_.GiveBackForAnotherLayer();
  EXPECT_EQ(cache_.GetStats().resident_bytes, 2 * kMiB) << "none while quiet";
  const uint64_t first = RegionCache::kFirstCrossQuietDecays * 1000000;
  g_now_ns += first - 1;
  cache_.GiveBackForAnotherLayer();
  EXPECT_EQ(cache_.GetStats().resident_bytes, 2 * kMiB) << "none while quiet, to its end";
  g_now_ns += 1;
  ASSERT_NO_FATAL_FAILURE(regret());  // allowed again; another regret
  g_now_ns += first;
  cache_.GiveBackForAnotherLayer();
  EXPECT_EQ(cache_.GetStats().resident_bytes, 2 * kMiB) << "twice as long";
  g_now_ns += first;
  cache_.GiveBackForAnotherLayer();
  EXPECT_EQ(cache_.GetStats().resident_bytes, 0u);
  // A miss is no regret.
  EXPECT_EQ(cache_.Take(6 * kMiB, 6 * kMiB), nullptr);
  bool reads_zero = false;
  cache_.Put(cache_.Take(2 * kMiB, 2 * kMiB, &reads_zero));  // (this one is)
  g_now_ns += 4 * first;
  cache_.GiveBackForAnotherLayer();
  EXPECT_EQ(cache_.GetStats().resident_bytes, 0u);
  cache_.ReleaseAll();
  for (char* base : mapped) platform::Unmap(base, 2 * kMiB);
}

TEST_F(RegionCacheTest, ALowerBudgetWithoutDecayApplies) {
  std::vector<char*> mapped = MapFilledRegions(2);
  ASSERT_EQ(mapped.size(), 2u);
  for (char* base : mapped) cache_.Put(HeaderOf(base));
  EXPECT_EQ(cache_.GetStats().resident_bytes, 4 * kMiB);
  g_limits.max_resident_bytes = 2 * kMiB;  // as a runtime setter would
  cache_.EnforceLimits();
  EXPECT_EQ(HeaderOf(mapped[0])->discarded, 1u);  // the older one
  EXPECT_EQ(HeaderOf(mapped[1])->discarded, 0u);
  EXPECT_EQ(cache_.GetStats().resident_bytes, 2 * kMiB);
  for (char* base : mapped) platform::Unmap(base, 2 * kMiB);
}

std::atomic<uint64_t> g_ticks{0};
uint64_t TickingClock() { return g_ticks.fetch_add(1000, std::memory_order_relaxed); }

// Regions are given back only while they sit in the cache: one that a
// thread took (and writes) while another applies the decay keeps its data.
// Two threads read the clock, then cache a region each, the later reading
// first: the region cached with the later time must not look expired.
TEST_F(RegionCacheTest, ARegionCachedWithALaterTimeIsNotExpired) {
  g_now_ns = 2000000;
  cache_.Put(&regions_[0]);
  g_now_ns = 1999000;  // the other thread's earlier reading
  cache_.Put(&regions_[1]);
  EXPECT_TRUE(released_.empty());
  EXPECT_EQ(cache_.GetStats().cached, 2u);
}

TEST_F(RegionCacheTest, ARegionEvictedAtOnceIsNotMadvisedFirst) {
  g_limits.max_bytes = 2 * kMiB;
  g_limits.max_resident_bytes = 0;
  std::vector<char*> mapped = MapFilledRegions(1);
  ASSERT_EQ(mapped.size(), 1u);
  HeaderOf(mapped[0])->mapped_size = 4 * kMiB;  // bigger than the whole cache
  const uint64_t madvises = platform::GetSyscallCounts().madvise;
  cache_.Put(HeaderOf(mapped[0]));
  ASSERT_EQ(released_.size(), 1u);
  EXPECT_EQ(platform::GetSyscallCounts().madvise, madvises);
  HeaderOf(mapped[0])->mapped_size = 2 * kMiB;
  platform::Unmap(mapped[0], 2 * kMiB);
}

TEST_F(RegionCacheTest, ADecayNeverDiscardsARegionThatWasTaken) {
  platform::SetClockForTesting(&TickingClock);
  g_limits.max_resident_bytes = 0;  // everything cached decays...
  g_limits.decay_ns = 1;            // ...as soon as the clock ticks
  g_limits.ttl_ns = uint64_t{1} << 62;
  std::vector<char*> mapped = MapFilledRegions(4);
  ASSERT_EQ(mapped.size(), 4u);
  for (char* base : mapped) cache_.Put(HeaderOf(base));
  std::atomic<bool> stop{false};
  std::thread decayer([&] {
    while (!stop.load(std::memory_order_relaxed)) cache_.EnforceLimits();
  });
  int corrupted = 0;
  for (int round = 0; round < 3000; round++) {
    RegionHeader* r = cache_.Take(2 * kMiB, 2 * kMiB);
    if (r == nullptr) continue;
    char* page = reinterpret_cast<char*>(r) + platform::kPageSize;
    const char mark = static_cast<char>(round | 1);
    for (size_t off = 0; off < 2 * kMiB - platform::kPageSize; off += 64 * 1024) {
      page[off] = mark;
    }
    for (size_t off = 0; off < 2 * kMiB - platform::kPageSize; off += 64 * 1024) {
      if (page[off] != mark) corrupted++;
    }
    cache_.Put(r);
  }
  stop.store(true);
  decayer.join();
  EXPECT_EQ(corrupted, 0);
  EXPECT_EQ(cache_.GetStats().cached, 4u);
  EXPECT_GT(platform::GetSyscallCounts().madvise, 0u);
  cache_.ReleaseAll();
  EXPECT_EQ(released_.size(), 4u);
  for (char* base : mapped) platform::Unmap(base, 2 * kMiB);
}

TEST(UnregisterAndUnmapTest, RegionIsGoneAfterwards) {
  char* base = static_cast<char*>(platform::MapAligned(kRegionAlign, kRegionAlign));
  RegionHeader* header = reinterpret_cast<RegionHeader*>(base);
  header->magic = kRegionMagic;
  header->mapped_size = kRegionAlign;
  ASSERT_TRUE(registry::Register(reinterpret_cast<uintptr_t>(base), 16));
  const uint64_t unmaps = platform::GetSyscallCounts().munmap;
  UnregisterAndUnmap(header);
  EXPECT_FALSE(registry::Contains(base));
  EXPECT_EQ(platform::GetSyscallCounts().munmap, unmaps + 1);
}

}  // namespace
}  // namespace hakmem
