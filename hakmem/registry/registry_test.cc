#include "hakmem/registry/registry.h"

#include <sys/mman.h>

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem/platform.h"

namespace hakmem {
namespace registry {
namespace {

// A fresh 2 MiB-aligned region of our own for each test.
struct TestRegion {
  TestRegion() {
    base = static_cast<char*>(platform::MapAligned(kRegionAlign, kRegionAlign));
    header = reinterpret_cast<RegionHeader*>(base);
    header->magic = kRegionMagic;
    header->kind = RegionKind::kSuperSlab;
    header->mapped_size = kRegionAlign;
  }
  ~TestRegion() {
    Unregister(reinterpret_cast<uintptr_t>(base));
    platform::Unmap(base, kRegionAlign);
  }
  char* base;
  RegionHeader* header;
};

TEST(RegistryTest, RegisteredRegionIsFoundForEveryInteriorPointer) {
  TestRegion r;
  ASSERT_TRUE(Register(reinterpret_cast<uintptr_t>(r.base), 16));
  EXPECT_EQ(TagOf(r.base), 16);
  EXPECT_EQ(TagOf(r.base + 1), 16);
  EXPECT_EQ(TagOf(r.base + kRegionAlign / 2), 16);
  EXPECT_EQ(TagOf(r.base + kRegionAlign - 1), 16);  // last byte: boundary
  EXPECT_EQ(Lookup(r.base + 12345), r.header);
}

TEST(RegistryTest, NeighboursAndForeignPointersMiss) {
  TestRegion r;
  ASSERT_TRUE(Register(reinterpret_cast<uintptr_t>(r.base), 16));
  EXPECT_EQ(TagOf(r.base - 1), kTagNone);             // just before
  EXPECT_EQ(TagOf(r.base + kRegionAlign), kTagNone);  // just after
  int on_stack = 0;
  static int in_data = 0;
  EXPECT_FALSE(Contains(&on_stack));
  EXPECT_FALSE(Contains(&in_data));
  EXPECT_FALSE(Contains(nullptr));
  // Non-canonical and kernel addresses must not index outside the table.
  EXPECT_FALSE(Contains(reinterpret_cast<void*>(0xdeadbeefdeadbeefull)));
  EXPECT_FALSE(Contains(reinterpret_cast<void*>(~uintptr_t{0})));
  EXPECT_EQ(Lookup(&on_stack), nullptr);
}

TEST(RegistryTest, RegionsInTheWindowAreFoundByTheFastLookup) {
  TestRegion r;
  ASSERT_TRUE(Register(reinterpret_cast<uintptr_t>(r.base), 19));
  EXPECT_EQ(TagOf(r.base + 777), 19);
  const uintptr_t base = reinterpret_cast<uintptr_t>(r.base);
  if (base < platform::kPreferredMapStart || base >= platform::kPreferredMapEnd) {
    // TSan's shadow memory, for one, takes the window's address range.
    EXPECT_EQ(TagOfInWindow(r.base + 777), kTagNone);
    GTEST_SKIP() << "MapAligned could not place the region in the window here";
  }
  EXPECT_EQ(TagOfInWindow(r.base + 777), 19);  // the fast paths find it
}

TEST(RegistryTest, WindowEdgesAndAddressesOutsideIt) {
  const uintptr_t first = kWindowStart;
  const uintptr_t last = kWindowStart + (kWindowSlots - 1) * kRegionAlign;
  ASSERT_TRUE(Register(first, 16));
  ASSERT_TRUE(Register(last, 16));
  EXPECT_EQ(TagOfInWindow(reinterpret_cast<void*>(first)), 16);
  EXPECT_EQ(TagOfInWindow(reinterpret_cast<void*>(last + kRegionAlign - 1)), 16);
  EXPECT_EQ(TagOfInWindow(reinterpret_cast<void*>(first - 1)), kTagNone);
  EXPECT_EQ(TagOfInWindow(reinterpret_cast<void*>(last + kRegionAlign)), kTagNone);
  Unregister(first);
  Unregister(last);
  EXPECT_EQ(TagOf(reinterpret_cast<void*>(first)), kTagNone);
}

// A 1 TiB-aligned address outside the window whose leaf no earlier call
// used: leaves are never unmapped, so a test run again (--gtest_repeat)
// would find its leaf already mapped. 40 TiB up, one TiB a call.
uintptr_t UnusedChunkOutsideTheWindow() {
  static uintptr_t next_tib = 40;
  return next_tib++ << 40;
}

TEST(RegistryTest, RegionsOutsideTheWindowGetOneLeafPer32GiB) {
  // The kernel may place a region anywhere when the window is taken: those
  // are tagged in 16 KiB leaves, one per 32 GiB, mapped on first use, and
  // found by the slow-path lookup only. The registry records addresses only,
  // so none of this needs a mapping.
  const uintptr_t chunk = UnusedChunkOutsideTheWindow();
  const uintptr_t first = chunk + 7 * kRegionAlign;
  const uintptr_t last = chunk + (kLeafSlots - 1) * kRegionAlign;
  ASSERT_EQ(TagOf(reinterpret_cast<void*>(first)), kTagNone);
  const uint64_t leaves = OutsideLeavesMapped();
  const uint64_t registered = RegisteredCount();
  ASSERT_TRUE(Register(first, 16));
  EXPECT_EQ(OutsideLeavesMapped(), leaves + 1);
  ASSERT_TRUE(Register(last, 19));
  EXPECT_EQ(OutsideLeavesMapped(), leaves + 1);  // same 32 GiB, same leaf
  EXPECT_EQ(RegisteredCount(), registered + 2);
  EXPECT_EQ(TagOf(reinterpret_cast<void*>(first + 12345)), 16);
  EXPECT_EQ(TagOfInWindow(reinterpret_cast<void*>(first + 12345)), kTagNone);
  EXPECT_EQ(TagOf(reinterpret_cast<void*>(last + kRegionAlign - 1)), 19);
  EXPECT_EQ(TagOf(reinterpret_cast<void*>(first - 1)), kTagNone);
  EXPECT_EQ(TagOf(reinterpret_cast<void*>(first + kRegionAlign)), kTagNone);
  // The next 32 GiB have no leaf.
  EXPECT_EQ(TagOf(reinterpret_cast<void*>(last + kRegionAlign)), kTagNone);
  Unregister(first);
  Unregister(last);
  EXPECT_EQ(TagOf(reinterpret_cast<void*>(first)), kTagNone);
  EXPECT_EQ(RegisteredCount(), registered);
  Unregister(last + kRegionAlign);  // no leaf there: nothing happens
  EXPECT_EQ(RegisteredCount(), registered);
}

TEST(RegistryTest, ThreadsRacingForOneLeafAgree) {
  const uintptr_t chunk = UnusedChunkOutsideTheWindow();
  const uint64_t leaves = OutsideLeavesMapped();
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; t++) {
    threads.emplace_back([=] {
      ASSERT_TRUE(Register(chunk + static_cast<uintptr_t>(t) * kRegionAlign, 16));
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(OutsideLeavesMapped(), leaves + 1);
  for (int t = 0; t < 8; t++) {
    EXPECT_EQ(TagOf(reinterpret_cast<void*>(chunk + static_cast<uintptr_t>(t) * kRegionAlign)), 16);
    Unregister(chunk + static_cast<uintptr_t>(t) * kRegionAlign);
  }
}

TEST(RegistryTest, ForeignMmapIsNotOurs) {
  void* foreign = mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(foreign, MAP_FAILED);
  EXPECT_EQ(Lookup(foreign), nullptr);
  munmap(foreign, 1 << 20);
}

TEST(RegistryTest, WrongMagicIsRejectedByLookup) {
  TestRegion r;
  ASSERT_TRUE(Register(reinterpret_cast<uintptr_t>(r.base), 16));
  r.header->magic = 0x1234;
  EXPECT_NE(TagOf(r.base + 64), kTagNone);  // the table alone says yes...
  EXPECT_EQ(Lookup(r.base + 64), nullptr);  // ...the header says no
}

TEST(RegistryTest, UnregisterAndRetag) {
  TestRegion r;
  const uintptr_t base = reinterpret_cast<uintptr_t>(r.base);
  const uint64_t before = RegisteredCount();
  ASSERT_TRUE(Register(base, 16));
  EXPECT_EQ(RegisteredCount(), before + 1);
  ASSERT_TRUE(Register(base, 19));  // re-tag: still one registration
  EXPECT_EQ(RegisteredCount(), before + 1);
  EXPECT_EQ(TagOf(r.base + 100), 19);
  Unregister(base);
  EXPECT_EQ(RegisteredCount(), before);
  EXPECT_FALSE(Contains(r.base + 100));
}

// A region spanning many slots (a large block): every slot leads back to
// its header, in O(log) jumps; a pointer past its mapped end, in the rest
// of its last slot, is not ours; growing and shrinking tag and untag the
// slots gained and lost; unregistering untags them all. Backed by nothing
// but its first slot (the header): the registry records addresses only.
// (Whatever else is mapped in the slots it spans is not the registry's
// business in this test binary.)
TEST(RegistryTest, EverySlotOfAMultiSlotRegionLeadsToItsHeader) {
  constexpr uint64_t kSlots = 1000;  // jumps of up to 512 slots
  TestRegion r;
  const uintptr_t base = reinterpret_cast<uintptr_t>(r.base);
  RegionHeader* header = r.header;
  header->magic = kRegionMagic;
  header->kind = RegionKind::kLarge;
  const size_t size = kSlots * kRegionAlign - 3 * 4096;  // the last slot not quite full
  header->mapped_size = size;
  const uint64_t registered = RegisteredCount();
  ASSERT_TRUE(Register(base, kTagLarge, size));
  EXPECT_EQ(RegisteredCount(), registered + 1);  // one region
  auto at = [base](uint64_t offset) { return reinterpret_cast<void*>(base + offset); };
  EXPECT_EQ(TagOf(at(0)), kTagLarge);
  for (uint64_t slot = 1; slot < kSlots; slot++) {
    const uint8_t k = static_cast<uint8_t>(63 - __builtin_clzll(slot));
    ASSERT_EQ(TagOf(at(slot * kRegionAlign)), kTagContinued | k) << slot;
    ASSERT_FALSE(StartsRegion(TagOf(at(slot * kRegionAlign))));
    ASSERT_EQ(Lookup(at(slot * kRegionAlign + 4096 * (slot % 500))), header) << slot;
  }
  EXPECT_EQ(Lookup(at(size - 1)), header);
  EXPECT_EQ(Lookup(at(size)), nullptr) << "past the mapped end, in its last slot";
  EXPECT_EQ(Lookup(at(kSlots * kRegionAlign)), nullptr);
  // Shrinks to 3 slots and a page, then grows to 5.
  header->mapped_size = 3 * kRegionAlign + 4096;
  ASSERT_TRUE(Resize(base, size, header->mapped_size));
  EXPECT_EQ(Lookup(at(3 * kRegionAlign + 100)), header);
  EXPECT_EQ(TagOf(at(4 * kRegionAlign)), kTagNone);
  EXPECT_EQ(TagOf(at((kSlots - 1) * kRegionAlign)), kTagNone);
  ASSERT_TRUE(Reserve(base, 5 * kRegionAlign));
  ASSERT_TRUE(Resize(base, header->mapped_size, 5 * kRegionAlign));
  header->mapped_size = 5 * kRegionAlign;
  EXPECT_EQ(Lookup(at(5 * kRegionAlign - 1)), header);
  EXPECT_EQ(TagOf(at(5 * kRegionAlign)), kTagNone);
  Unregister(base, 5 * kRegionAlign);
  EXPECT_EQ(RegisteredCount(), registered);
  for (uint64_t slot = 0; slot < 6; slot++) EXPECT_EQ(TagOf(at(slot * kRegionAlign)), kTagNone);
  header->mapped_size = kRegionAlign;  // as TestRegion made it
}

// A continuation slot whose jump leads to an empty slot (its region's
// first slot untagged alone) is not ours.
TEST(RegistryTest, ContinuationsLeadingToAnEmptySlotAreNotOurs) {
  const uintptr_t chunk = UnusedChunkOutsideTheWindow();
  ASSERT_TRUE(Register(chunk, 16, 3 * kRegionAlign));  // tags 2 continuations
  Unregister(chunk);                                    // the first slot only
  EXPECT_NE(TagOf(reinterpret_cast<void*>(chunk + kRegionAlign)), kTagNone);
  EXPECT_EQ(Lookup(reinterpret_cast<void*>(chunk + kRegionAlign)), nullptr);
  EXPECT_EQ(Lookup(reinterpret_cast<void*>(chunk + 2 * kRegionAlign + 5)), nullptr);
  Unregister(chunk, 3 * kRegionAlign);
  EXPECT_EQ(TagOf(reinterpret_cast<void*>(chunk + 2 * kRegionAlign)), kTagNone);
}

TEST(RegistryTest, AddressesOutsideTheTableAreRefused) {
  EXPECT_FALSE(Register(uintptr_t{1} << 50, 16));
}

TEST(RegistryTest, LookupsConcurrentWithRegistration) {
  // One thread registers and unregisters regions; readers keep looking up a
  // region that stays registered and one that never is. They must always
  // get the right answer, with no lock.
  TestRegion stable;
  ASSERT_TRUE(Register(reinterpret_cast<uintptr_t>(stable.base), 16));
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  std::vector<std::thread> readers;
  int on_stack = 0;
  for (int t = 0; t < 2; t++) {
    readers.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        if (Lookup(stable.base + 4096) != stable.header) errors++;
        if (Contains(&on_stack)) errors++;
      }
    });
  }
  for (int i = 0; i < 200; i++) {
    TestRegion churn;
    ASSERT_TRUE(Register(reinterpret_cast<uintptr_t>(churn.base), 19));
    if (!Contains(churn.base + 7)) errors++;
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(errors.load(), 0);
}

}  // namespace
}  // namespace registry
}  // namespace hakmem
