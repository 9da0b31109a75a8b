#include "hakmem/superslab/slab_pool.h"

#include <sched.h>
#include <string.h>

#include <atomic>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem/platform.h"
#include "tests/residency.h"

namespace hakmem {
namespace {

const int kOwnerTags[8] = {};
const void* Owner(int i) { return &kOwnerTags[i]; }

constexpr int kClass = 3;
constexpr uint32_t kBlockSize = 48;
constexpr int kMidClass = 40;
constexpr uint32_t kMidBlockSize = 4096;
constexpr int kSmallSlabsPerSuperSlab = 31;  // slab 0 is the header

Slab* TakeSmall(SlabPool& pool, const void* owner, bool may_map = true) {
  return pool.Take(kClass, kBlockSize, kSmallSlabShift, owner, may_map);
}

// Each test's pool ends empty: every slab back.
void GiveBack(SlabPool& pool, const std::vector<Slab*>& slabs) {
  for (Slab* s : slabs) pool.Return(s);
  const SlabPool::Stats stats = pool.GetStats();
  EXPECT_EQ(stats.with_room, 0u);
  EXPECT_EQ(stats.full, 0u);
}

TEST(SlabPoolTest, TakeSetsUpASlabForItsOwnerAndClass) {
  SlabPool pool;
  Slab* s = TakeSmall(pool, Owner(1));
  ASSERT_NE(s, nullptr);
  const SlabInfo* info = InfoOf(s);
  EXPECT_EQ(info->owner, Owner(1));
  EXPECT_EQ(info->size_class, kClass);
  EXPECT_EQ(info->block_size, kBlockSize);
  EXPECT_EQ(info->slab_shift, kSmallSlabShift);
  EXPECT_EQ(SlabCarved(s), 0u);  // nothing carved yet
  EXPECT_EQ(SuperSlabOf(s)->owner, &pool);
  EXPECT_EQ(pool.GetStats().with_room, 1u);
  GiveBack(pool, {s});
}

// The point of the pool: heaps share SuperSlabs, so one heap's free slab
// serves another.
TEST(SlabPoolTest, OwnersShareSuperSlabs) {
  SlabPool pool;
  Slab* a = TakeSmall(pool, Owner(1));
  Slab* b = TakeSmall(pool, Owner(2));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  EXPECT_EQ(SuperSlabOf(a), SuperSlabOf(b));
  EXPECT_EQ(InfoOf(a)->owner, Owner(1));
  EXPECT_EQ(InfoOf(b)->owner, Owner(2));
  pool.Return(a);
  Slab* again = pool.Take(kClass + 1, kBlockSize + 16, kSmallSlabShift, Owner(3), true);
  EXPECT_EQ(again, a) << "the slab owner 1 gave back should serve owner 3";
  EXPECT_EQ(InfoOf(again)->owner, Owner(3));
  EXPECT_EQ(InfoOf(again)->block_size, kBlockSize + 16);
  GiveBack(pool, {again, b});
}

TEST(SlabPoolTest, AReturnedSlabIsTakenFirstAndCarvedAgainInAddressOrder) {
  SlabPool pool;
  Slab* s = TakeSmall(pool, Owner(1));
  Slab* other = TakeSmall(pool, Owner(1));  // keeps the SuperSlab in use
  ASSERT_NE(s, nullptr);
  Block* blocks[8];
  ASSERT_EQ(SlabCarve(s, blocks, 8, 1), 8u);
  // The owner puts its blocks on the slab's list before giving it back, in
  // no order (a program that freed in no order).
  for (int i : {3, 7, 0, 5, 1, 6, 2, 4}) {
    blocks[i]->next = s->free;
    s->free = blocks[i];
  }
  pool.Return(s);
  EXPECT_EQ(InfoOf(s)->owner, nullptr);  // frees into it are invalid now
  EXPECT_FALSE(IsBlockStart(InfoOf(s), blocks[0]));
  EXPECT_EQ(s->free, nullptr);
  // The next take, of another class and owner, gets it (its pages are
  // likely resident), with nothing carved: its blocks come in address order.
  Slab* again = pool.Take(kClass + 1, kBlockSize, kSmallSlabShift, Owner(2), true);
  ASSERT_EQ(again, s);
  EXPECT_EQ(InfoOf(again)->owner, Owner(2));
  EXPECT_EQ(InfoOf(again)->size_class, kClass + 1);
  EXPECT_EQ(SlabCarved(again), 0u);
  EXPECT_EQ(again->used, 0u);
  Block* carved[8];
  ASSERT_EQ(SlabCarve(again, carved, 8, 1), 8u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(carved[0]), SlabStart(again));
  for (int i = 1; i < 8; i++) {
    EXPECT_EQ(reinterpret_cast<char*>(carved[i]) - reinterpret_cast<char*>(carved[i - 1]),
              static_cast<ptrdiff_t>(kBlockSize))
        << i;
  }
  GiveBack(pool, {again, other});
}

TEST(SlabPoolTest, FullSuperSlabsMoveOffTheRoomListAndBack) {
  SlabPool pool;
  std::vector<Slab*> slabs;
  std::set<SuperSlab*> super_slabs;
  for (int i = 0; i < kSmallSlabsPerSuperSlab + 1; i++) {
    Slab* s = TakeSmall(pool, Owner(i % 8));
    ASSERT_NE(s, nullptr);
    slabs.push_back(s);
    super_slabs.insert(SuperSlabOf(s));
  }
  EXPECT_EQ(super_slabs.size(), 2u);  // the 32nd slab needed a second one
  SlabPool::Stats stats = pool.GetStats();
  EXPECT_EQ(stats.full, 1u);
  EXPECT_EQ(stats.with_room, 1u);
  // A slab back makes the first one take slabs again.
  pool.Return(slabs[5]);
  stats = pool.GetStats();
  EXPECT_EQ(stats.full, 0u);
  EXPECT_EQ(stats.with_room, 2u);
  EXPECT_EQ(TakeSmall(pool, Owner(7), /*may_map=*/false), slabs[5]);
  EXPECT_EQ(pool.GetStats().full, 1u);
  GiveBack(pool, slabs);
}

TEST(SlabPoolTest, AnEmptySuperSlabGoesToTheCacheAndComesBack) {
  // An empty cache: SuperSlabs other tests cached (some under a test
  // clock, whose demand the cache's adaptive sizing then reads as long
  // past) would otherwise be evicted when this one comes in, and the count
  // below would drop.
  SuperSlabCacheReleaseAll();
  SlabPool pool;
  std::vector<Slab*> first;
  for (int i = 0; i < kSmallSlabsPerSuperSlab; i++) first.push_back(TakeSmall(pool, Owner(1)));
  Slab* second = TakeSmall(pool, Owner(2));
  SuperSlab* const ss = SuperSlabOf(first[0]);
  ASSERT_NE(ss, SuperSlabOf(second));
  const uint64_t cached_before = GetSuperSlabStats().cache.cached;
  for (size_t i = 0; i + 1 < first.size(); i++) pool.Return(first[i]);
  EXPECT_EQ(GetSuperSlabStats().cache.cached, cached_before) << "a slab is still in use";
  pool.Return(first.back());
  EXPECT_EQ(GetSuperSlabStats().cache.cached, cached_before + 1);
  EXPECT_EQ(ss->owner, nullptr);
  EXPECT_EQ(pool.GetStats().with_room, 1u);  // only the second one's
  // Mid slabs: no SuperSlab of that geometry in the pool, so without mapping
  // there is none; with it, the cached one comes back re-formatted.
  EXPECT_EQ(pool.Take(kMidClass, kMidBlockSize, kMidSlabShift, Owner(1), false), nullptr);
  Slab* mid = pool.Take(kMidClass, kMidBlockSize, kMidSlabShift, Owner(1), true);
  ASSERT_NE(mid, nullptr);
  EXPECT_EQ(SuperSlabOf(mid), ss);
  EXPECT_EQ(ss->slab_shift, kMidSlabShift);
  EXPECT_EQ(InfoOf(mid)->slab_shift, kMidSlabShift);
  EXPECT_EQ(ss->owner, &pool);
  GiveBack(pool, {mid, second});
}

TEST(SlabPoolTest, WithoutMappingAnEmptyPoolHasNothing) {
  SlabPool pool;
  EXPECT_EQ(TakeSmall(pool, Owner(1), /*may_map=*/false), nullptr);
  const SlabPool::Stats stats = pool.GetStats();
  EXPECT_EQ(stats.with_room + stats.full, 0u);
}

// ---- Idle slabs give their pages back beyond the budget, after the decay ----

uint64_t g_fake_now = 0;
uint64_t FakeClock() { return g_fake_now; }

class SlabPoolPurgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    g_fake_now = 1000000000;
    platform::SetClockForTesting(&FakeClock);
  }
  void TearDown() override { platform::SetClockForTesting(nullptr); }

  // Takes `n` slabs of one SuperSlab for kClass plus one that keeps it in
  // use, carves and fills each, lists their blocks (as an owner would
  // before giving a slab back).
  std::vector<Slab*> TakeFilled(SlabPool& pool, int n) {
    std::vector<Slab*> slabs;
    keeper_ = TakeSmall(pool, Owner(1));
    for (int i = 0; i < n; i++) {
      Slab* s = TakeSmall(pool, Owner(1));
      Block* blocks[64];
      const uint32_t carved = SlabCarve(s, blocks, 64, 1);
      for (uint32_t b = carved; b-- > 0;) {
        memset(reinterpret_cast<char*>(blocks[b]) + sizeof(Block), 0x5a, kBlockSize - sizeof(Block));
        blocks[b]->next = s->free;
        s->free = blocks[b];
      }
      slabs.push_back(s);
    }
    return slabs;
  }
  Slab* keeper_ = nullptr;
};

constexpr uint64_t kSecond = 1000000000;

TEST_F(SlabPoolPurgeTest, OnlyBeyondTheBudgetAndOnlyAfterTheDecay) {
  SlabPool pool;
  std::vector<Slab*> slabs = TakeFilled(pool, 4);
  for (Slab* s : slabs) {
    pool.Return(s);
    g_fake_now += 10;  // returned in this order: oldest first
  }
  EXPECT_EQ(pool.GetStats().idle_bytes, 4 * kSmallSlabSize);
  // Within the budget: nothing, however old.
  EXPECT_EQ(pool.PurgeIdle(g_fake_now + 100 * kSecond, 4 * kSmallSlabSize, kSecond, 64), 0);
  // Beyond it but not idle for the decay yet: nothing.
  EXPECT_EQ(pool.PurgeIdle(g_fake_now, kSmallSlabSize, kSecond, 64), 0);
  // Once decayed: the oldest go until the budget holds (here 3 of 4).
  EXPECT_EQ(pool.PurgeIdle(g_fake_now + kSecond, kSmallSlabSize, kSecond, 64), 3);
  EXPECT_EQ(pool.GetStats().idle_bytes, kSmallSlabSize);
  // The purged ones' memory reads as zero; the newest one kept its data.
  for (int i = 0; i < 4; i++) {
    const unsigned char* first = reinterpret_cast<const unsigned char*>(SlabStart(slabs[i]));
    if (i < 3) {
      EXPECT_EQ(first[sizeof(Block)], 0) << "slab " << i << " still holds its data";
    } else {
      EXPECT_EQ(first[sizeof(Block)], 0x5a) << "the newest one was purged";
    }
  }
  // A take finds the idle one; the next, a purged one (the lowest free
  // slab of the SuperSlab).
  EXPECT_EQ(TakeSmall(pool, Owner(2)), slabs[3]);
  Slab* fresh = TakeSmall(pool, Owner(2));
  EXPECT_TRUE(fresh == slabs[0] || fresh == slabs[1] || fresh == slabs[2]);
  EXPECT_EQ(SlabCarved(fresh), 0u);
  GiveBack(pool, {slabs[3], fresh, keeper_});
  EXPECT_EQ(pool.GetStats().idle_bytes, 0u) << "an empty SuperSlab leaves the idle list";
}

TEST_F(SlabPoolPurgeTest, ATakenSlabIsNotIdleAndAtMostABatchGoes) {
  SlabPool pool;
  std::vector<Slab*> slabs = TakeFilled(pool, 6);
  for (Slab* s : slabs) pool.Return(s);
  Slab* again = TakeSmall(pool, Owner(2));  // an idle one, off the idle list
  EXPECT_EQ(pool.GetStats().idle_bytes, 5 * kSmallSlabSize);
  g_fake_now += 2 * kSecond;
  EXPECT_EQ(pool.PurgeIdle(g_fake_now, 0, kSecond, 2), 2);  // a batch of 2
  EXPECT_EQ(pool.PurgeIdle(g_fake_now, 0, kSecond, 64), 3);  // the rest
  EXPECT_EQ(pool.GetStats().idle_bytes, 0u);
  EXPECT_EQ(reinterpret_cast<const unsigned char*>(SlabStart(again))[sizeof(Block)], 0x5a)
      << "the slab in use was purged";
  EXPECT_EQ(InfoOf(again)->owner, Owner(2));
  // Purged slabs are free slabs like any other: the SuperSlab still hands
  // them out, and goes to the cache once everything is back.
  const uint64_t cached_before = GetSuperSlabStats().cache.cached;
  std::vector<Slab*> back = {again, keeper_};
  for (int i = 0; i < 5; i++) back.push_back(TakeSmall(pool, Owner(3), /*may_map=*/false));
  for (Slab* s : back) ASSERT_NE(s, nullptr);
  GiveBack(pool, back);
  EXPECT_EQ(GetSuperSlabStats().cache.cached, cached_before + 1);
}

// A mid SuperSlab hands out slab 0 too (F31), whose first page is the
// header: a purge of it gives back the rest of the slab, never the header.
// (Before the purge knew, the header read zero after one: the tests of
// fork and thread teardown crashed or reported a double free.)
TEST_F(SlabPoolPurgeTest, APurgedMidSlabZeroKeepsTheHeader) {
  SlabPool pool;
  Slab* first = pool.Take(kMidClass, kMidBlockSize, kMidSlabShift, Owner(1), true);
  ASSERT_NE(first, nullptr);
  ASSERT_EQ(SlabIndex(first), 0);
  Slab* keeper = pool.Take(kMidClass, kMidBlockSize, kMidSlabShift, Owner(1), true);
  ASSERT_EQ(SuperSlabOf(keeper), SuperSlabOf(first));
  Block* blocks[4];
  ASSERT_EQ(SlabCarve(first, blocks, 4, 1), 4u);
  for (Block* b : blocks) memset(reinterpret_cast<char*>(b) + sizeof(Block), 0x5a, 64);
  first->free = nullptr;
  SuperSlab* ss = SuperSlabOf(first);
  const uint64_t magic = ss->region.magic;
  pool.Return(first);
  EXPECT_EQ(pool.PurgeIdle(g_fake_now + 2 * kSecond, 0, kSecond, 64), 1);
  EXPECT_EQ(ss->region.magic, magic) << "the header was given back";
  EXPECT_EQ(ss->slab_shift, kMidSlabShift);
  EXPECT_EQ(reinterpret_cast<unsigned char*>(blocks[0])[sizeof(Block)], 0)
      << "the slab kept its pages";
  GiveBack(pool, {keeper});
}

// A purge moves many SuperSlabs: none may push the SuperSlab of a slab a
// heap just gave back (resident) out of reach of the next take.
TEST_F(SlabPoolPurgeTest, PurgedSuperSlabsDoNotPushResidentSlabsAway) {
  SlabPool pool;
  std::vector<Slab*> in_use;
  std::vector<Slab*> old_ones;
  for (int ss = 0; ss < 5; ss++) {
    for (int i = 0; i < kSmallSlabsPerSuperSlab; i++) in_use.push_back(TakeSmall(pool, Owner(1)));
    old_ones.push_back(in_use.back());
    in_use.pop_back();
  }
  std::vector<Slab*> resident_ones = TakeFilled(pool, 1);  // from a sixth SuperSlab
  Slab* const resident = resident_ones[0];
  for (Slab* s : old_ones) pool.Return(s);  // one free slab in each of 5
  g_fake_now += 2 * kSecond;
  pool.Return(resident);
  ASSERT_EQ(pool.PurgeIdle(g_fake_now, kSmallSlabSize, kSecond, 64), 5);
  EXPECT_EQ(TakeSmall(pool, Owner(2)), resident);
  in_use.push_back(resident);
  in_use.push_back(keeper_);
  GiveBack(pool, in_use);
}

// Heaps take idle slabs, carve and check their blocks and give them back
// while another thread purges everything idle (TSan checks the rest).
TEST(SlabPoolPurgeRaceTest, PurgesNeverTouchSlabsInUse) {
  SlabPool pool;
  Slab* keeper = TakeSmall(pool, Owner(0));
  std::atomic<bool> stop{false};
  std::atomic<int> bad_keys{0};
  std::thread purger([&] {
    while (!stop.load()) pool.PurgeIdle(platform::NowNs(), 0, 0, 64);
  });
  std::vector<std::thread> threads;
  for (int t = 1; t <= 3; t++) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 3000; round++) {
        Slab* s = TakeSmall(pool, Owner(t));
        ASSERT_NE(s, nullptr);
        Block* blocks[16];
        const uint32_t carved = SlabCarve(s, blocks, 16, 1);
        sched_yield();  // let the purger run while the slab is in use
        for (uint32_t i = 0; i < carved; i++) {
          if (KeyOf(blocks[i]) != 1) bad_keys++;  // its pages were given back
          blocks[i]->next = s->free;
          s->free = blocks[i];
        }
        pool.Return(s);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  stop = true;
  purger.join();
  EXPECT_EQ(bad_keys.load(), 0);
  GiveBack(pool, {keeper});
}

// Owners take and return slabs at once from many threads: no slab is ever
// handed out twice, and everything comes back (TSan checks the locking).
TEST(SlabPoolTest, ConcurrentTakesNeverShareASlab) {
  SlabPool pool;
  constexpr int kThreads = 4;
  constexpr int kRounds = 2000;
  std::atomic<int> doubly_owned{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      std::vector<Slab*> mine;
      for (int round = 0; round < kRounds; round++) {
        if (mine.empty() || rng() % 3 != 0) {
          const bool mid = rng() % 8 == 0;
          Slab* s = mid ? pool.Take(kMidClass, kMidBlockSize, kMidSlabShift, Owner(t), true)
                        : pool.Take(kClass + static_cast<int>(rng() % 4), kBlockSize,
                                    kSmallSlabShift, Owner(t), true);
          ASSERT_NE(s, nullptr);
          // Mark it: the count must still be ours when we give it back.
          s->used = static_cast<uint32_t>(t + 1);
          mine.push_back(s);
        } else {
          const size_t i = rng() % mine.size();
          Slab* s = mine[i];
          if (InfoOf(s)->owner != Owner(t) || s->used != static_cast<uint32_t>(t + 1)) {
            doubly_owned++;
          }
          s->used = 0;
          mine[i] = mine.back();
          mine.pop_back();
          pool.Return(s);
        }
      }
      for (Slab* s : mine) {
        if (InfoOf(s)->owner != Owner(t) || s->used != static_cast<uint32_t>(t + 1)) {
          doubly_owned++;
        }
        s->used = 0;
        pool.Return(s);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(doubly_owned.load(), 0);
  GiveBack(pool, {});
}


// Of the slabs heaps gave back, a take prefers the one carved furthest: a
// slab that served another class briefly (a page carved) must not be taken
// before a fully carved one, and fault in the rest of its pages while the
// other stays idle and resident. (Found by review of the first cut of
// carving returned slabs again, which took the lowest idle slab.)
TEST(SlabPoolTest, ATakePrefersTheReturnedSlabCarvedFurthest) {
  SuperSlabCacheReleaseAll();  // a fresh mapping: nothing resident
  SlabPool pool;
  Slab* keeper = TakeSmall(pool, Owner(0));
  Slab* little = pool.Take(1, 16, kSmallSlabShift, Owner(1), true);
  Slab* full = TakeSmall(pool, Owner(1));
  ASSERT_EQ(SuperSlabOf(little), SuperSlabOf(full));
  ASSERT_LT(SlabIndex(little), SlabIndex(full));  // the lower one, were it by index
  std::vector<Block*> blocks(SlabCapacity(full));
  ASSERT_EQ(SlabCarve(little, blocks.data(), 1, 1), 1u);  // a page
  ASSERT_EQ(SlabCarve(full, blocks.data(), SlabCapacity(full), 1), SlabCapacity(full));
  const auto resident = [&] {
    return hakmem_test::ResidentPages(reinterpret_cast<void*>(SlabStart(little) & ~(kSmallSlabSize - 1)),
                                      kSmallSlabSize) +
           hakmem_test::ResidentPages(reinterpret_cast<void*>(SlabStart(full) & ~(kSmallSlabSize - 1)),
                                      kSmallSlabSize);
  };
  const int before = resident();
  if (hakmem_test::HugePagesAlways()) GTEST_SKIP() << "huge pages: residency says nothing";
  pool.Return(little);
  pool.Return(full);
  // The class of `full` asks again and carves a slab's worth.
  Slab* s = TakeSmall(pool, Owner(2));
  EXPECT_EQ(s, full);
  ASSERT_EQ(SlabCarve(s, blocks.data(), SlabCapacity(s), 1), SlabCapacity(s));
  EXPECT_EQ(resident(), before) << "carving faulted in pages while resident ones stayed idle";
  GiveBack(pool, {s, keeper});
}

// An idle slab taken from the second SuperSlab of with_room, its last free
// one, leaves the idle list and sends that SuperSlab to the full list.
TEST(SlabPoolTest, AnIdleSlabTakenBehindTheHeadFillsItsSuperSlab) {
  SlabPool pool;
  std::vector<Slab*> first;
  for (int i = 0; i < kSmallSlabsPerSuperSlab; i++) first.push_back(TakeSmall(pool, Owner(1)));
  Slab* keeper = TakeSmall(pool, Owner(2));
  Slab* b = TakeSmall(pool, Owner(2));
  ASSERT_NE(SuperSlabOf(keeper), SuperSlabOf(first[0]));
  ASSERT_EQ(SuperSlabOf(keeper), SuperSlabOf(b));
  Slab* const x = first[7];
  pool.Return(x);
  pool.Return(b);  // with_room: b's SuperSlab, then x's
  EXPECT_EQ(pool.GetStats().idle_bytes, 2 * kSmallSlabSize);
  EXPECT_EQ(pool.GetStats().full, 0u);
  Slab* t1 = TakeSmall(pool, Owner(3), false);
  Slab* t2 = TakeSmall(pool, Owner(3), false);
  EXPECT_TRUE((t1 == b && t2 == x) || (t1 == x && t2 == b));
  SlabPool::Stats stats = pool.GetStats();
  EXPECT_EQ(stats.idle_bytes, 0u);
  EXPECT_EQ(stats.full, 1u);
  EXPECT_EQ(stats.with_room, 1u);
  Slab* fresh = TakeSmall(pool, Owner(3), false);  // the head's lowest untouched slab
  EXPECT_EQ(SuperSlabOf(fresh), SuperSlabOf(b));
  first.push_back(keeper);
  first.push_back(b);
  first.push_back(fresh);
  GiveBack(pool, first);
  EXPECT_EQ(pool.GetStats().idle_bytes, 0u);
}

}  // namespace
}  // namespace hakmem
