// Large regions and the registry's tags, around the moments a region's
// mapping changes (shrinking, growing in place or by a move, a failed move,
// eviction): every slot of a live region leads to its header, nothing else
// does, and no other region's tags are touched. From the review of the
// continuation tags (session 20), which found the two races tested first.
//
// The test binary's own munmap and mremap (an executable's definitions win
// over libc's) run "another thread's" allocation at the exact moment
// between two of hakmem's steps, or make a move fail as the kernel would.
// Not under the sanitizers, whose runtimes define both.
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem/hakmem.h"
#include "hakmem/large/extent_heap.h"
#include "hakmem/large/large.h"
#include "hakmem/platform.h"
#include "hakmem/registry/registry.h"

// --- munmap / mremap interposition (the executable's definitions win) ---
static std::atomic<bool> g_munmap_armed{false};
static void (*g_munmap_hook)(void*, size_t) = nullptr;
extern "C" int munmap(void* addr, size_t len) __THROW {
  long r = syscall(SYS_munmap, addr, len);
  if (g_munmap_hook != nullptr && g_munmap_armed.exchange(false)) g_munmap_hook(addr, len);
  return static_cast<int>(r);
}
static std::atomic<bool> g_fail_fixed_remap{false};
static std::atomic<bool> g_fixed_remap_seen{false};
static void (*g_remap_fail_hook)(void*, size_t) = nullptr;
extern "C" void* mremap(void* old, size_t old_size, size_t new_size, int flags, ...) __THROW {
  void* to = nullptr;
  if (flags & MREMAP_FIXED) {
    va_list ap;
    va_start(ap, flags);
    to = va_arg(ap, void*);
    va_end(ap);
    g_fixed_remap_seen = true;
    if (g_fail_fixed_remap.exchange(false)) {
      syscall(SYS_munmap, to, new_size);  // as the kernel: the target goes first
      if (g_remap_fail_hook != nullptr) g_remap_fail_hook(to, new_size);
      errno = ENOMEM;
      return MAP_FAILED;
    }
  }
  long r = syscall(SYS_mremap, old, old_size, new_size, flags, to);
  return r == -1 ? MAP_FAILED : reinterpret_cast<void*>(r);
}

namespace hakmem {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

uintptr_t BaseOf(const void* p) { return reinterpret_cast<uintptr_t>(p) & ~kRegionMask; }
void* At(uintptr_t a) { return reinterpret_cast<void*>(a); }
size_t MappedOf(const void* p) {
  return reinterpret_cast<RegionHeader*>(BaseOf(p))->mapped_size;
}
// Every slot of the region at `base` of `size` bytes leads to its header.
void ExpectTagged(uintptr_t base, size_t size) {
  for (uintptr_t a = base; a < base + size; a += kRegionAlign) {
    EXPECT_EQ(registry::Lookup(At(a + 4096)), At(base)) << "slot " << (a - base) / kRegionAlign;
  }
  EXPECT_EQ(registry::Lookup(At(base + size - 1)), At(base));
}
void ExpectUntagged(uintptr_t first, uintptr_t end) {
  for (uintptr_t a = first; a < end; a += kRegionAlign) {
    EXPECT_EQ(registry::TagOf(At(a)), registry::kTagNone) << "slot at +" << (a - first) / kRegionAlign;
  }
}

// "Another thread's" malloc, run by a hook at the moment hakmem unmapped
// (or a failed move dropped) [from, from + len): with map hints off, the
// kernel may place it there.
// Every test starts with the caches empty: no cached region to grow into
// or to reuse instead of the mapping it means to watch.
class LargeRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override { Trim(); }
  // Every region mapped alone: these tests need the kernel to place the
  // other region in address space one of ours just gave up.
  ScopedExtentHeapOff regions_only_;  // these tests are about regions
  ScopedLargeReserveOff mapped_alone_;
};

struct OtherMalloc {
  bool Inside() const {
    const uintptr_t o = reinterpret_cast<uintptr_t>(p);
    return o >= from && o < from + len;
  }
  char* p = nullptr;
  uintptr_t from = 0;
  size_t len = 0;
};
OtherMalloc g_other;
void MallocInHook(void* addr, size_t len) {
  g_other = OtherMalloc{static_cast<char*>(Malloc(3 * kMiB)), reinterpret_cast<uintptr_t>(addr), len};
}

// --- 1. Shrinking in place untags the tail before unmapping it. ---
TEST_F(LargeRegistryTest, ShrinkingInPlaceKeepsTheTagsOfARegionMappedInItsFreedTail_KernelPlaced) {
  platform::SetMapHintsForTesting(false);  // kernel placement (window taken)
  char* p = static_cast<char*>(Malloc(20 * kMiB));
  ASSERT_NE(p, nullptr);
  const uint64_t registered = registry::RegisteredCount();
  g_other = OtherMalloc{};
  g_munmap_hook = &MallocInHook;
  g_munmap_armed = true;
  char* r = static_cast<char*>(Realloc(p, 1 * kMiB));  // shrinks in place
  g_munmap_armed = false;
  platform::SetMapHintsForTesting(true);
  ASSERT_EQ(r, p);
  ASSERT_NE(g_other.p, nullptr);
  if (!g_other.Inside()) GTEST_SKIP() << "the kernel placed the other region elsewhere";
  EXPECT_NE(registry::Lookup(g_other.p), nullptr) << "a live region lost its tag";
  EXPECT_NE(UsableSize(g_other.p), 0u);
  EXPECT_EQ(registry::RegisteredCount(), registered + 1) << "the other region was not counted";
  // (The other block is leaked: Free would abort if it lost its tags.)
  Free(r);
}

// Deterministic variant: a region mapped (and registered as LargeAlloc does)
// at a 2 MiB boundary inside the tail between the munmap and the untagging.
uintptr_t g_sim = 0;
void MapRegionInHook(void* addr, size_t len) {
  const uintptr_t first = (reinterpret_cast<uintptr_t>(addr) + kRegionMask) & ~kRegionMask;
  if (first + kRegionAlign > reinterpret_cast<uintptr_t>(addr) + len) return;
  void* m = mmap(At(first), kRegionAlign, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (m != At(first)) return;
  auto* h = static_cast<RegionHeader*>(m);
  h->magic = kRegionMagic;
  h->kind = RegionKind::kLarge;
  h->mapped_size = kRegionAlign;
  if (registry::Register(first, registry::kTagLarge, kRegionAlign)) g_sim = first;
}
TEST_F(LargeRegistryTest, ShrinkingInPlaceKeepsTheTagsOfARegionMappedInItsFreedTail_Simulated) {
  char* p = static_cast<char*>(Malloc(20 * kMiB));
  ASSERT_NE(p, nullptr);
  const uint64_t registered = registry::RegisteredCount();
  g_sim = 0;
  g_munmap_hook = &MapRegionInHook;
  g_munmap_armed = true;
  char* r = static_cast<char*>(Realloc(p, 1 * kMiB));
  g_munmap_armed = false;
  ASSERT_EQ(r, p);
  ASSERT_NE(g_sim, 0u);
  EXPECT_EQ(registry::TagOf(At(g_sim)), registry::kTagLarge) << "a live region lost its tag";
  EXPECT_NE(registry::Lookup(At(g_sim + 100)), nullptr);
  EXPECT_EQ(registry::RegisteredCount(), registered + 1);
  Free(r);
}

// --- 2. Grow in place: new slots tagged, nothing past the end. ---
TEST_F(LargeRegistryTest, GrowInPlaceTagsTheNewSlots) {
  char* p = static_cast<char*>(Malloc(5 * kMiB));
  ASSERT_NE(p, nullptr);
  const uintptr_t base = BaseOf(p);
  char* q = static_cast<char*>(Realloc(p, 7 * kMiB));
  ASSERT_EQ(q, p) << "expected in place (hints leave room after)";
  const size_t mapped = MappedOf(q);
  ExpectTagged(base, mapped);
  ExpectUntagged((base + mapped + kRegionMask) & ~kRegionMask, base + 16 * kRegionAlign);
  Free(q);
}

// A 5 MiB block with a page mapped right after it: it can't grow in place,
// so a realloc that grows it moves it.
struct BlockedLargeBlock {
  BlockedLargeBlock() {
    p = static_cast<char*>(Malloc(5 * kMiB));
    if (p == nullptr) return;
    base = BaseOf(p);
    mapped = MappedOf(p);
    const uintptr_t end = base + mapped;
    void* m = mmap(At(end), 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (m == At(end)) blocker = m;
  }
  ~BlockedLargeBlock() {
    if (blocker != nullptr) munmap(blocker, 4096);
  }
  bool ok() const { return p != nullptr && blocker != nullptr; }
  char* p = nullptr;
  uintptr_t base = 0;
  size_t mapped = 0;
  void* blocker = nullptr;
};

// --- 3. Grow by move: old slots untagged, new tagged, count unchanged. ---
TEST_F(LargeRegistryTest, GrowByMoveRetagsBothRegions) {
  BlockedLargeBlock b;
  ASSERT_TRUE(b.ok());
  char* const p = b.p;
  const uintptr_t base = b.base;
  const size_t mapped = b.mapped;
  const uint64_t registered = registry::RegisteredCount();
  g_fixed_remap_seen = false;
  char* q = static_cast<char*>(Realloc(p, 7 * kMiB));
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(g_fixed_remap_seen) << "not moved by mremap";
  ASSERT_NE(q, p);
  ExpectUntagged(base, (base + mapped + kRegionMask) & ~kRegionMask);
  ExpectTagged(BaseOf(q), MappedOf(q));
  EXPECT_EQ(registry::RegisteredCount(), registered);
  Free(q);
}

// --- 4. Grow by move whose mremap fails: old retagged, new untagged. ---
TEST_F(LargeRegistryTest, FailedMoveRestoresTheOldTags) {
  BlockedLargeBlock b;
  ASSERT_TRUE(b.ok());
  char* const p = b.p;
  const uintptr_t base = b.base;
  const size_t mapped = b.mapped;
  const uint64_t registered = registry::RegisteredCount();
  g_fixed_remap_seen = false;
  g_fail_fixed_remap = true;
  char* q = static_cast<char*>(Realloc(p, 7 * kMiB));  // falls back to malloc + copy
  g_fail_fixed_remap = false;
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(g_fixed_remap_seen);
  ASSERT_NE(q, p);
  ExpectTagged(BaseOf(q), MappedOf(q));
  // p went to the cache, still registered, all its slots.
  ExpectTagged(base, mapped);
  EXPECT_EQ(registry::RegisteredCount(), registered + 1);
  Free(q);
  Trim();
  ExpectUntagged(base, (base + mapped + kRegionMask) & ~kRegionMask);
}

// --- 4b. Failed move: the reservation is gone when mremap fails, and
// another thread's region may be mapped there at once: it keeps its tags. ---
TEST_F(LargeRegistryTest, AFailedMoveKeepsTheTagsOfARegionMappedWhereItsReservationWas) {
  platform::SetMapHintsForTesting(false);
  BlockedLargeBlock b;
  ASSERT_TRUE(b.ok());
  char* const p = b.p;
  g_other = OtherMalloc{};
  g_remap_fail_hook = &MallocInHook;
  g_fail_fixed_remap = true;
  char* q = static_cast<char*>(Realloc(p, 7 * kMiB));
  g_fail_fixed_remap = false;
  g_remap_fail_hook = nullptr;
  platform::SetMapHintsForTesting(true);
  ASSERT_NE(q, nullptr);
  ASSERT_NE(g_other.p, nullptr);
  if (!g_other.Inside()) GTEST_SKIP() << "the kernel placed the other region elsewhere";
  EXPECT_NE(registry::Lookup(g_other.p), nullptr) << "a live region lost its tag";
  Free(q);
}

// --- 5. Grow in place whose mremap fails (split mapping): nothing tagged. ---
TEST_F(LargeRegistryTest, FailedGrowInPlaceTagsNothing) {
  char* p = static_cast<char*>(Malloc(5 * kMiB));
  ASSERT_NE(p, nullptr);
  const uintptr_t base = BaseOf(p);
  const size_t mapped = MappedOf(p);
  ASSERT_EQ(mprotect(p + 2 * kMiB, 4096, PROT_READ), 0);  // splits the mapping
  // And the address space right after it taken: no growth in place.
  void* wall = mmap(At(base + mapped), 4096, PROT_READ,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (wall == MAP_FAILED) {
    mprotect(p + 2 * kMiB, 4096, PROT_READ | PROT_WRITE);
    Free(p);
    GTEST_SKIP() << "the address space after the block is taken";
  }
  char* q = static_cast<char*>(Realloc(p, 7 * kMiB));
  munmap(wall, 4096);
  ASSERT_NE(q, nullptr);
  ASSERT_NE(q, p);
  ExpectTagged(base, mapped);  // cached
  for (uintptr_t a = (base + mapped + kRegionMask) & ~kRegionMask; a < base + 8 * kRegionAlign;
       a += kRegionAlign) {
    EXPECT_NE(registry::Lookup(At(a + 4096)), At(base));
  }
  mprotect(p + 2 * kMiB, 4096, PROT_READ | PROT_WRITE);
  Free(q);
}

// --- 6. Cache eviction of a multi-slot region untags every slot. ---
TEST_F(LargeRegistryTest, EvictionUntagsEverySlot) {
  const uint64_t registered = registry::RegisteredCount();
  char* p = static_cast<char*>(Malloc(9 * kMiB));
  ASSERT_NE(p, nullptr);
  const uintptr_t base = BaseOf(p);
  const size_t mapped = MappedOf(p);
  ExpectTagged(base, mapped);
  Free(p);
  ExpectTagged(base, mapped);  // cached
  Trim();
  ExpectUntagged(base, (base + mapped + kRegionMask) & ~kRegionMask);
  EXPECT_EQ(registry::RegisteredCount(), registered);
}

// --- 7. Zero-byte large blocks (every large alignment) lie in their mapping. ---
TEST_F(LargeRegistryTest, ZeroByteLargeAlignedBlocks) {
  for (size_t align = 64 << 10; align <= kMaxLargeAlignment; align <<= 1) {
    void* p = AlignedAlloc(align, 0);
    if (p == nullptr) continue;  // a size class took it
    EXPECT_NE(registry::Lookup(p), nullptr) << align;
    Free(p);
  }
  void* q = AlignedAlloc(512 << 10, 300 << 10);
  ASSERT_NE(q, nullptr);
  EXPECT_NE(registry::Lookup(q), nullptr);
  Free(q);
}

}  // namespace
}  // namespace hakmem
