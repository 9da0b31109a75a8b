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
  EXPECT_TRUE(Contains(r.base + 64));  // the table alone says yes...
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
