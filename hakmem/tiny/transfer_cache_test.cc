#include "hakmem/tiny/transfer_cache.h"

#include <stdint.h>

#include <atomic>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/residency.h"

namespace hakmem {
namespace {

// The cache never touches a block: made-up addresses serve.
Block* FakeBlock(uintptr_t n) { return reinterpret_cast<Block*>((n + 1) << 4); }

std::vector<Block*> FakeBlocks(uintptr_t first, uint32_t count) {
  std::vector<Block*> blocks;
  for (uint32_t i = 0; i < count; i++) blocks.push_back(FakeBlock(first + i));
  return blocks;
}

// 1.2 MiB: on the heap, not the stack.
std::unique_ptr<TransferCache> NewCache() { return std::make_unique<TransferCache>(); }

constexpr int kClass16 = 1;                        // 16 B blocks
constexpr int kLastClass = kTransferClasses - 1;  // the largest it holds

TEST(TransferCacheTest, PopsTheNewestBatchFirst) {
  auto cache = NewCache();
  const std::vector<Block*> a = FakeBlocks(0, 3), b = FakeBlocks(100, 5);
  ASSERT_TRUE(cache->Push(kClass16, a.data(), 3, 10));
  ASSERT_TRUE(cache->Push(kClass16, b.data(), 5, 20));
  EXPECT_EQ(cache->CachedBlocks(kClass16), 8u);
  EXPECT_EQ(cache->CachedBlocks(kClass16 + 1), 0u);
  Block* out[kTransferBatchMax];
  ASSERT_EQ(cache->PopNewest(kClass16, out), 5u);
  EXPECT_EQ(std::vector<Block*>(out, out + 5), b);
  ASSERT_EQ(cache->PopNewest(kClass16, out), 3u);
  EXPECT_EQ(std::vector<Block*>(out, out + 3), a);
  EXPECT_EQ(cache->PopNewest(kClass16, out), 0u);
  EXPECT_TRUE(cache->SeemsEmpty(kClass16));
  EXPECT_EQ(cache->CachedBlocks(kClass16), 0u);
}

TEST(TransferCacheTest, RefusesWhatItDoesNotHold) {
  auto cache = NewCache();
  const std::vector<Block*> blocks = FakeBlocks(0, kTransferBatchMax + 1);
  EXPECT_FALSE(cache->Push(kClass16, blocks.data(), 0, 1)) << "an empty batch";
  EXPECT_FALSE(cache->Push(kClass16, blocks.data(), kTransferBatchMax + 1, 1)) << "too big";
  EXPECT_FALSE(cache->Push(kTransferClasses, blocks.data(), 1, 1)) << "a mid class";
  EXPECT_FALSE(cache->Push(-1, blocks.data(), 1, 1));
  EXPECT_FALSE(cache->SeemsToHaveRoom(kTransferClasses, 1));
  EXPECT_TRUE(cache->Push(kClass16, blocks.data(), kTransferBatchMax, 1));
  Block* out[kTransferBatchMax];
  EXPECT_EQ(cache->PopNewest(kTransferClasses, out), 0u);
  EXPECT_EQ(cache->CachedBlocks(kTransferClasses), 0u);
}

// Small blocks: the batch count binds.
TEST(TransferCacheTest, HoldsAtMostKTransferBatchesPerClass) {
  auto cache = NewCache();
  const std::vector<Block*> blocks = FakeBlocks(0, 2);
  for (int i = 0; i < kTransferBatches; i++) {
    ASSERT_TRUE(cache->SeemsToHaveRoom(kClass16, 2)) << i;
    ASSERT_TRUE(cache->Push(kClass16, blocks.data(), 2, i)) << i;
  }
  EXPECT_FALSE(cache->SeemsToHaveRoom(kClass16, 2));
  EXPECT_FALSE(cache->Push(kClass16, blocks.data(), 2, 99));
  EXPECT_TRUE(cache->Push(kClass16 + 1, blocks.data(), 2, 99)) << "classes are apart";
  Block* out[kTransferBatchMax];
  ASSERT_EQ(cache->PopNewest(kClass16, out), 2u);
  EXPECT_TRUE(cache->Push(kClass16, blocks.data(), 2, 100)) << "room again";
}

// Large blocks: the bytes bind.
TEST(TransferCacheTest, HoldsAtMostKTransferMaxBytesPerClass) {
  auto cache = NewCache();
  const uint32_t size = ClassSizeOf(kLastClass);
  const uint32_t fit = kTransferMaxBytes / size;  // blocks that fit
  ASSERT_LT(fit / kTransferBatchMax, static_cast<uint32_t>(kTransferBatches));
  const std::vector<Block*> blocks = FakeBlocks(0, kTransferBatchMax);
  uint32_t held = 0;
  while (held + kTransferBatchMax <= fit) {
    ASSERT_TRUE(cache->Push(kLastClass, blocks.data(), kTransferBatchMax, 1));
    held += kTransferBatchMax;
  }
  const uint32_t left = fit - held;
  EXPECT_FALSE(cache->SeemsToHaveRoom(kLastClass, left + 1));
  EXPECT_FALSE(cache->Push(kLastClass, blocks.data(), left + 1, 1));
  if (left != 0) {
    EXPECT_TRUE(cache->Push(kLastClass, blocks.data(), left, 1));
    held += left;
  }
  EXPECT_EQ(cache->CachedBlocks(kLastClass), held);
  EXPECT_EQ(uint64_t{held} * size, uint64_t{kTransferMaxBytes} / size * size);
}

TEST(TransferCacheTest, TakesBatchesOlderThanTheCutoffOldestFirst) {
  auto cache = NewCache();
  // Batches of 1, 2, 3, 4, 5 blocks that came in at 10, 20, 30, 40, 50.
  for (uint32_t i = 1; i <= 5; i++) {
    const std::vector<Block*> blocks = FakeBlocks(100 * i, i);
    ASSERT_TRUE(cache->Push(kClass16, blocks.data(), i, 10 * i));
  }
  Block* out[4 * kTransferBatchMax];
  uint32_t batches = 99;
  // At most two of the three older than 35.
  ASSERT_EQ(cache->TakeOlderThan(kClass16, 35, 2, out, &batches), 3u);
  EXPECT_EQ(batches, 2u);
  std::vector<Block*> expected = FakeBlocks(100, 1), second = FakeBlocks(200, 2);
  expected.insert(expected.end(), second.begin(), second.end());
  EXPECT_EQ(std::vector<Block*>(out, out + 3), expected);
  EXPECT_EQ(cache->CachedBlocks(kClass16), 12u);
  ASSERT_EQ(cache->TakeOlderThan(kClass16, 35, 2, out, &batches), 3u);
  EXPECT_EQ(batches, 1u);
  EXPECT_EQ(std::vector<Block*>(out, out + 3), FakeBlocks(300, 3));
  EXPECT_EQ(cache->TakeOlderThan(kClass16, 35, 2, out, &batches), 0u);
  EXPECT_EQ(batches, 0u);
  // The rest kept their order: the newest on top.
  ASSERT_EQ(cache->PopNewest(kClass16, out), 5u);
  EXPECT_EQ(std::vector<Block*>(out, out + 5), FakeBlocks(500, 5));
  ASSERT_EQ(cache->TakeOlderThan(kClass16, UINT64_MAX, 4, out, &batches), 4u);
  EXPECT_EQ(batches, 1u);
  EXPECT_EQ(std::vector<Block*>(out, out + 4), FakeBlocks(400, 4));
  EXPECT_TRUE(cache->SeemsEmpty(kClass16));
}

// Threads push and pop batches of their own made-up blocks at once: every
// block comes out exactly as often as it went in.
TEST(TransferCacheTest, ConcurrentPushesAndPopsLoseAndDuplicateNothing) {
  auto cache = NewCache();
  constexpr int kThreads = 4;
  constexpr int kRounds = 20000;
  std::vector<std::vector<Block*>> popped(kThreads);
  std::atomic<uint64_t> pushed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      Block* out[kTransferBatchMax];
      for (int r = 0; r < kRounds; r++) {
        const uint32_t count = 1 + static_cast<uint32_t>((r * 7 + t) % kTransferBatchMax);
        const std::vector<Block*> blocks =
            FakeBlocks((static_cast<uintptr_t>(t) * kRounds + r) * kTransferBatchMax, count);
        if (cache->Push(kClass16, blocks.data(), count, r)) pushed += count;
        if (r % 2 == 1) {
          const uint32_t n = cache->PopNewest(kClass16, out);
          popped[t].insert(popped[t].end(), out, out + n);
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  Block* out[kTransferBatchMax];
  std::vector<Block*> rest;
  while (uint32_t n = cache->PopNewest(kClass16, out)) rest.insert(rest.end(), out, out + n);
  std::set<Block*> seen;
  uint64_t total = rest.size();
  for (Block* b : rest) EXPECT_TRUE(seen.insert(b).second) << "twice: " << b;
  for (const auto& list : popped) {
    total += list.size();
    for (Block* b : list) EXPECT_TRUE(seen.insert(b).second) << "twice: " << b;
  }
  EXPECT_EQ(total, pushed.load());
  EXPECT_GT(total, 0u);
}

TEST(TransferCacheTest, ForkLocksLeaveTheCacheUsable) {
  auto cache = NewCache();
  const std::vector<Block*> blocks = FakeBlocks(0, 4);
  cache->LockAll();
  cache->UnlockAll();
  ASSERT_TRUE(cache->Push(kClass16, blocks.data(), 4, 1));
  cache->LockAll();
  cache->ResetLocksInChild();  // as a fork child does
  EXPECT_EQ(cache->CachedBlocks(kClass16), 4u);
  ASSERT_TRUE(cache->Push(kLastClass, blocks.data(), 4, 1));
  EXPECT_EQ(cache->CachedBlocks(kLastClass), 4u);
}

// In bss: its pages are untouched until used (each faults in then), as the
// allocator's own cache's are in a program.
TransferCache g_untouched_cache;

// What a program's upkeep (TakeOlderThan on every class), its refills
// (SeemsEmpty, PopNewest) and fork (LockAll) touch of an empty cache.
void LookAtEveryClass(TransferCache* cache) {
  Block* out[kTransferBatchMax];
  for (int c = 0; c < kTransferClasses; c++) {
    uint32_t batches = 1;
    EXPECT_TRUE(cache->SeemsEmpty(c));
    EXPECT_EQ(cache->TakeOlderThan(c, UINT64_MAX, 4, out, &batches), 0u);
    EXPECT_EQ(batches, 0u);
    EXPECT_EQ(cache->PopNewest(c, out), 0u);
  }
  cache->LockAll();
  cache->UnlockAll();
}

// The classes' heads, a page or two, not a page of batches per class (a
// one-malloc program's first upkeep faulted in 36 pages here).
TEST(TransferCacheTest, LooksAtEmptyClassesWithoutTouchingTheirBatches) {
  if (hakmem_test::HugePagesAlways()) GTEST_SKIP() << "a touch brings in 2 MiB";
  const uintptr_t start = reinterpret_cast<uintptr_t>(&g_untouched_cache) & ~uintptr_t{4095};
  const uintptr_t end = reinterpret_cast<uintptr_t>(&g_untouched_cache) + sizeof(TransferCache);
  const int before = hakmem_test::ResidentPages(reinterpret_cast<void*>(start), end - start);
  ASSERT_GE(before, 0);
  LookAtEveryClass(&g_untouched_cache);
  const int after = hakmem_test::ResidentPages(reinterpret_cast<void*>(start), end - start);
  EXPECT_LE(after - before, 2) << "pages of " << kTransferClasses << " classes' cache";
}

}  // namespace
}  // namespace hakmem
