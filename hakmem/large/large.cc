#include "hakmem/large/large.h"

#include <errno.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>

#include "hakmem/config.h"
#include "hakmem/large/extent_heap.h"
#include "hakmem/platform.h"
#include "hakmem/registry/registry.h"
#include "hakmem/superslab/superslab.h"

namespace hakmem {
namespace {

// The free fast path reads one of the header page's slab records for a
// large block (the one for its 64 KiB, see SlabInfoOf): all of them must
// stay zero (unowned), and the block starts a page in.
static_assert(sizeof(LargeHeader) <= kSlabInfosOffset &&
                  kSlabInfosOffset + kMaxSlabsPerSuperSlab * kSlabInfoSize <= platform::kPageSize,
              "a large header must leave the slab-record area zero");

// Large blocks are above 256 KiB (the largest size class): a count of one
// region per 256 KiB of the memory limit never binds before the bytes do.
// (A fixed 64 did: random_mixed over 256 KiB-1 MiB, 200 blocks live, found
// the cache full of 64 regions far below its 64 MiB, unmapped one and
// mapped another every ~130 operations and faulted their pages in again:
// 1.9 Mops/s, 0.57x tcmalloc; with the count from the bytes 3.3, 0.97x.)
constexpr uint64_t kLargeCacheBytesPerRegion = 256 * 1024;

// Of the cached regions, this many bytes keep their pages; beyond it, a
// region cached for the decay time (HAKMEM_SUPERSLAB_DECAY_MS) gives its
// pages back and keeps its mapping, as the SuperSlab cache does. (With the
// whole cache resident at 64 MiB, random_mixed over 256 KiB-1 MiB, 200
// blocks live, unmapped and mapped a region every ~500 operations: 3.2
// Mops/s; with 256 MiB mapped, 64 MiB resident: 5.4, 1.7x tcmalloc, peak
// RSS 56 MiB, tcmalloc's 150.)
// And at most twice the most bytes of large blocks ever live at once (at
// least 16 MiB): a program whose large blocks are few and small keeps few
// idle pages. A string built by copy-then-free, 3 MB, kept 64 MiB of freed
// copies resident (F40: 77 MB, glibc 7); `git fsck` of 0.3-4 MB blobs, one
// at a time, 53 MB (glibc 11). Twice: a buffer doubled over and over
// leaves regions of every size below its last, together as big as it, and
// grows into them the next time (ABufferDoubledOverAndOverGrowsInto-
// ResidentMemory). (Half the bytes live now was tried: when such a buffer
// was freed, its smaller regions lost their pages.)
constexpr uint64_t kLargeCacheResidentBytes = uint64_t{64} << 20;
constexpr uint64_t kLargeCacheMinResidentBytes = uint64_t{16} << 20;

// The mapped bytes (HAKMEM_LARGE_CACHE_MAX_MB) default to 512 MiB, what
// the SuperSlab cache may hold: a buffer doubled from 1 to 256 MiB, with a
// block between growths, over and over, frees 383 MiB a round; with 256
// MiB the oldest regions were unmapped (9 ms each) and faulted in again
// the next round, 117 ms a round; with 512, 11 ms (tcmalloc 21, keeping
// everything), peak RSS 343 MiB (279 with 256 MiB; tcmalloc 518, jemalloc 267).
std::atomic<uint64_t> g_live{0};
std::atomic<uint64_t> g_live_bytes{0};       // mapped bytes of the live blocks' regions
std::atomic<uint64_t> g_live_bytes_peak{0};  // the most g_live_bytes has been
// Large blocks allocated, and SuperSlabs mapped since the last one
// (LargeCacheGiveBackForSuperSlabs).
std::atomic<uint64_t> g_large_allocations{0};
std::atomic<uint64_t> g_allocations_at_last_fresh{0};
std::atomic<uint32_t> g_fresh_in_a_row{0};
// Bytes of free pages moved (platform::MovePages) from cached SuperSlabs
// into regions, and from cached regions into SuperSlabs.
std::atomic<uint64_t> g_superslab_pages_moved_in{0};
std::atomic<uint64_t> g_pages_moved_to_superslabs{0};
// Windows of live regions that took moved pages (LargeHeader::windows_moved_in).
std::atomic<uint64_t> g_windows_moved_in_live{0};

// The big regions (RegionCache::kBigMissBytes on) a thread was handed, for
// LargeFree's copies left behind (a buffer grows in one thread).
struct BigHandOuts {
  const LargeHeader* last;
  // Handed out before the last one whose pages fault in (mapped fresh, or
  // given back while cached).
  const LargeHeader* before_faulting;
  uint64_t faulting_bytes;     // that one's size
  uint64_t large_allocations;  // the thread's large blocks (NoteLargeAllocation)
  uint64_t faulting_at;        // `large_allocations` once it was handed out
};
__thread BigHandOuts tl_big_hand_outs __attribute__((tls_model("initial-exec")));

void NoteBigHandOut(const LargeHeader* h, bool faults_in) {
  BigHandOuts& t = tl_big_hand_outs;
  if (faults_in) {
    t.before_faulting = t.last;
    t.faulting_bytes = h->region.mapped_size;
    t.faulting_at = t.large_allocations;
  }
  t.last = h;
}

// A copy left behind: the big region this thread was handed last before a
// bigger one (1.5x) whose pages fault in, freed with no large block handed
// to the thread between: a buffer grown by new + copy + delete
// (std::string, std::vector). The growth goes on into bigger blocks, so
// its pages go back at once (its address space stays cached); unless the
// region, left behind before, was taken again soon after (a program that
// grows such buffers round after round, within the decay). (A std::string
// appended to 110 MB kept its 16, 32 and 64 MB copies resident: peak 247
// MB, now 151; glibc 134, mimalloc 151. F70.)
bool IsCopyLeftBehind(const LargeHeader* h) {
  const BigHandOuts& t = tl_big_hand_outs;
  const uint64_t bytes = h->region.mapped_size;
  return h == t.before_faulting && bytes >= RegionCache::kBigMissBytes &&
         t.faulting_bytes >= bytes + bytes / 2 && t.faulting_at == t.large_allocations &&
         !h->keeps_pages_when_left_behind;
}

void AddLiveBytes(uint64_t bytes) {
  const uint64_t live = g_live_bytes.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  uint64_t peak = g_live_bytes_peak.load(std::memory_order_relaxed);
  while (live > peak && !g_live_bytes_peak.compare_exchange_weak(peak, live,
                                                                 std::memory_order_relaxed)) {
  }
}

}  // namespace

uint64_t LargeSharedResidentBudget() {
  uint64_t resident =
      2 * (g_live_bytes_peak.load(std::memory_order_relaxed) + ExtentHeapLivePeakBytes());
  if (resident < kLargeCacheMinResidentBytes) resident = kLargeCacheMinResidentBytes;
  if (resident > kLargeCacheResidentBytes) resident = kLargeCacheResidentBytes;
  return resident;
}

namespace {

RegionCacheLimits LargeCacheLimits() {
  // Half of the idle budget when mappings are scarce (see
  // platform::IdleMappingBudget; the SuperSlab cache has the other half).
  const uint64_t budget = platform::IdleMappingBudget() / 2;
  uint64_t max_bytes = GetOption(Option::kLargeCacheMaxMb) << 20;
  if (max_bytes > budget) max_bytes = budget;
  const uint64_t max_count = max_bytes / kLargeCacheBytesPerRegion;
  // What the extent heap leaves of the shared budget.
  uint64_t resident = LargeSharedResidentBudget();
  const uint64_t extents = ExtentHeapDirtyBytes();
  resident = resident > extents ? resident - extents : 0;
  if (resident > max_bytes) resident = max_bytes;
  return RegionCacheLimits{
      max_count > 64 ? max_count : 64, max_bytes,
      GetOption(Option::kSuperslabTtlSec) * 1000000000ull, resident,
      GetOption(Option::kSuperslabDemandWindowSec),
      DecayNs()};
}

// The cache's release: the region with all of its address space.
void UnregisterAndUnmapLarge(RegionHeader* region) {
  const size_t reserved = reinterpret_cast<LargeHeader*>(region)->reserved;
  region->magic = 0;
  registry::Unregister(reinterpret_cast<uintptr_t>(region), region->mapped_size);
  platform::Unmap(region, reserved);
}

RegionCache g_cache(&LargeCacheLimits, &UnregisterAndUnmapLarge);

size_t PageRound(size_t n) {
  return (n + platform::kPageSize - 1) & ~(platform::kPageSize - 1);
}

size_t SlotRound(size_t n) { return (n + kRegionMask) & ~kRegionMask; }

// Address space mapped ahead for regions up to kMaxCarvedBytes: a cache
// miss carves the next 2 MiB slots from it instead of making an mmap. A
// program whose count of live large blocks still sets new highs then maps
// once per 32 of them (random_mixed over 256 KiB-1 MiB, 200 blocks live: 29
// mmaps in a 1M-iteration loop after 100K of warm-up, each a new high, with
// regions mapped one at a time; now 1 and its madvise), and side by side
// they make one kernel mapping (70,000 live 300 KB blocks stopped at
// vm.max_map_count: F28). Each mapping ahead is as big as what was carved
// before it, 8 to 64 MiB (jemalloc grows its retained space so too): it is
// address space only (platform::MapAhead: no swap reserved, no huge pages),
// except in a process that locks its future mappings (mlockall
// MCL_FUTURE), where each becomes resident. None where mappings are scarce
// (platform::MappingsScarce).
constexpr size_t kReserveMinBytes = size_t{8} << 20;
constexpr size_t kReserveMaxBytes = size_t{64} << 20;
pthread_mutex_t g_reserve_lock = PTHREAD_MUTEX_INITIALIZER;
uintptr_t g_reserve_next = 0;  // the unused part: [next, end)
uintptr_t g_reserve_end = 0;
size_t g_reserve_carved = 0;   // bytes carved so far
std::atomic<bool> g_reserve_enabled{true};

// `bytes` (whole slots) from the reserve, or 0. Lock held.
uintptr_t CarveLocked(size_t bytes) {
  if (g_reserve_end - g_reserve_next < bytes) return 0;
  const uintptr_t base = g_reserve_next;
  g_reserve_next += bytes;
  g_reserve_carved += bytes;
  return base;
}

// A region of `slots` bytes (whole slots, at most kMaxCarvedBytes) carved
// from the reserve, which is mapped anew (outside the lock: a failed
// mapping purges the caches, LargeCacheReleaseAll included) when it is too
// short; or nullptr, and the caller maps the region alone.
void* CarveFromReserve(size_t slots) {
  platform::LockMutex(&g_reserve_lock);
  uintptr_t base = CarveLocked(slots);
  const size_t carved = g_reserve_carved;
  platform::UnlockMutex(&g_reserve_lock);
  if (base != 0) return reinterpret_cast<void*>(base);
  if (platform::MappingsScarce()) return nullptr;
  size_t size = carved;  // whole slots
  size = size < kReserveMinBytes ? kReserveMinBytes : size > kReserveMaxBytes ? kReserveMaxBytes : size;
  void* fresh = platform::MapAhead(size, kRegionAlign);
  if (fresh == nullptr) {
    // Refused (a small machine's overcommit heuristic, a map count near its
    // limit): regions are mapped alone from now on, not one failed mapping
    // more at every miss.
    g_reserve_enabled.store(false, std::memory_order_relaxed);
    return nullptr;
  }
  // The rest of the reserve it replaces (another thread's, if one came
  // first) is given back.
  platform::LockMutex(&g_reserve_lock);
  const uintptr_t rest = g_reserve_next;
  const size_t rest_bytes = g_reserve_end - g_reserve_next;
  g_reserve_next = reinterpret_cast<uintptr_t>(fresh);
  g_reserve_end = g_reserve_next + size;
  base = CarveLocked(slots);
  platform::UnlockMutex(&g_reserve_lock);
  if (rest_bytes != 0) platform::Unmap(reinterpret_cast<void*>(rest), rest_bytes);
  return reinterpret_cast<void*>(base);
}

// Gives back the reserve's unused address space.
void ReleaseReserve() {
  platform::LockMutex(&g_reserve_lock);
  const uintptr_t rest = g_reserve_next;
  const size_t rest_bytes = g_reserve_end - g_reserve_next;
  g_reserve_next = g_reserve_end = 0;
  platform::UnlockMutex(&g_reserve_lock);
  if (rest_bytes != 0) platform::Unmap(reinterpret_cast<void*>(rest), rest_bytes);
}

// Maps a region of `need` bytes aligned to `alignment`, carved from the
// reserve if it can be; `*reserved` gets the address space it owns.
void* MapRegion(size_t need, size_t alignment, size_t* reserved) {
  if (alignment <= kRegionAlign && need <= kMaxCarvedBytes &&
      g_reserve_enabled.load(std::memory_order_relaxed)) {
    const size_t slots = SlotRound(need);
    if (void* p = CarveFromReserve(slots)) {
      *reserved = slots;
      return p;
    }
  }
  *reserved = need;
  return platform::MapAligned(need, alignment > kRegionAlign ? alignment : kRegionAlign);
}

// Grows the region of `h` to `size` bytes of address space: within what it
// owns, no syscall; else by a remap in place, or for a region that is
// several mappings (pages moved into its windows; a program's madvise or
// mprotect of part of it), which a remap can't grow (EFAULT), by mapping
// the tail right after it. 0, or the remap's errno.
int GrowReservation(LargeHeader* h, size_t size) {
  if (size <= h->reserved) return 0;
  int error = platform::RemapInPlace(h, h->reserved, size);
  if (error == EFAULT &&
      platform::MapAheadAt(reinterpret_cast<char*>(h) + h->reserved, size - h->reserved)) {
    error = 0;
  }
  if (error == 0) h->reserved = size;
  return error;
}

// A growing block's new mapping: a quarter more than the old one, so that
// growth a little at a time does not remap every time, or what it needs.
size_t GrowTarget(size_t mapped, size_t need) {
  const size_t roomy = PageRound(mapped + mapped / 4);
  return roomy > need ? roomy : need;
}

// Gives back the tail of h's mapping past `need` bytes (page-rounded, at
// most its mapped size).
void ShrinkMapping(LargeHeader* h, size_t need) {
  const size_t mapped = h->region.mapped_size;
  // Untagged before unmapped: once it is, another region may be mapped in
  // the tail and tag its slots.
  h->region.mapped_size = need;
  registry::Resize(reinterpret_cast<uintptr_t>(h), mapped, need);
  platform::Unmap(reinterpret_cast<char*>(h) + need, h->reserved - need);
  h->reserved = need;
}

// Grows h's mapping to `need` bytes in place; false if the address space
// past it is taken.
bool GrowMapping(LargeHeader* h, size_t need) {
  const uintptr_t base = reinterpret_cast<uintptr_t>(h);
  const size_t mapped = h->region.mapped_size;
  // (The registry's cells first: once the pages are mapped, tagging them
  // can't fail.)
  if (!registry::Reserve(base, need) || GrowReservation(h, need) != 0) return false;
  h->region.mapped_size = need;
  registry::Resize(base, mapped, need);
  return true;
}

// Whether the cache holds more pages resident than 4x the most bytes of
// large blocks ever live: out of proportion to the program. Blocks of
// changing sizes, one or a few live at a time, each a size the cache did
// not hold, left one region per size resident: `git fsck` of 0.3-4 MB
// blobs 53 MB (glibc 11), one 256 KiB-8 MiB buffer at a time 135 MB
// (glibc 18). (random_mixed's buffer lane, 200 blocks live, holds less:
// there a miss maps as before.)
bool CacheOutOfProportion() {
  return g_cache.ResidentBytes() > 4 * g_live_bytes_peak.load(std::memory_order_relaxed);
}

// Whether `region`'s own address space reaches `bytes` (see TakeResident).
bool ReservedReaches(const RegionHeader* region, size_t bytes) {
  return reinterpret_cast<const LargeHeader*>(region)->reserved >= bytes;
}

// A resident cached region of another size made into one of `need` bytes:
// up to 2x bigger, as it is; up to 4x, its tail unmapped; else at least
// half as big, grown in place. Or nullptr. `without_syscall`: only as it
// is, or grown within the address space it already owns (the 2 MiB slot
// it was carved from). (Shrunk at up to 2x too, two sizes in turn, each
// written whole, shrank and grew the one region at every take: 40 / 60 MiB
// 3.1 -> 12.6 ms a round, a review; as it is, 2.8.)
LargeHeader* TakeResidentOfAnotherSize(size_t need, size_t slack, bool without_syscall) {
  if (RegionHeader* r = g_cache.TakeResident(need + slack + 1, 2 * need)) {
    return reinterpret_cast<LargeHeader*>(r);
  }
  if (!without_syscall) {
    if (RegionHeader* r = g_cache.TakeResident(2 * need + 1, 4 * need)) {
      LargeHeader* h = reinterpret_cast<LargeHeader*>(r);
      ShrinkMapping(h, need);
      return h;
    }
  }
  // (Without a syscall, only one whose address space already reaches
  // `need`: a failed grow would be taken again at every miss, and hide the
  // others.)
  RegionHeader* r = g_cache.TakeResident(need / 2, need - 1,
                                         without_syscall ? &ReservedReaches : nullptr, need);
  if (r == nullptr) return nullptr;
  LargeHeader* h = reinterpret_cast<LargeHeader*>(r);
  if (GrowMapping(h, need)) return h;
  g_cache.PutBack(r);
  return nullptr;
}

// A cached region for `need` bytes: one up to `slack` bigger. A big block
// first looks for one that kept its pages; and if none of its size is
// cached and a fresh mapping would take the cached resident bytes past
// their budget, for a resident one of another size (not for calloc: a
// fresh mapping reads zero). One buffer at a time of 10-100 MiB, each a
// different size, faulted a fresh mapping in at every size while the
// cache kept the others resident (F41). Within the budget, or with a
// region of its size cached, a miss maps as before: buffers of two sizes
// in turn then keep both, where taking the other shrank or grew it at
// every take (10 and 16 MiB: 0.14 -> 1.4-2.6 ms each, a review). A smaller
// block that misses in a cache out of proportion to the program, or past
// its resident budget, takes a resident region of another size that serves
// it with no syscall. (Past the budget: 256 live buffers of 100 KiB-2 MiB
// in a ring, each freed for a new one of another size, kept 148 cached
// regions, 164 MB resident within the decay; now 87, 105 MB; peak 484 ->
// 426 MB, glibc 318, mimalloc 391, tests/FINDINGS.md F47.)
LargeHeader* TakeCached(size_t need, size_t slack, bool wants_zero, bool* reads_zero) {
  if (need >= RegionCache::kBigMissBytes && !wants_zero) {
    if (RegionHeader* r = g_cache.TakeResident(need, need + slack)) {
      return reinterpret_cast<LargeHeader*>(r);
    }
    if (!g_cache.ResidentBudgetHasRoomFor(need) && !g_cache.Holds(need, need + slack)) {
      if (LargeHeader* h = TakeResidentOfAnotherSize(need, slack, /*without_syscall=*/false)) {
        return h;
      }
    }
  }
  LargeHeader* h = reinterpret_cast<LargeHeader*>(g_cache.Take(need, need + slack, reads_zero));
  if (h != nullptr || wants_zero || need >= RegionCache::kBigMissBytes ||
      (!CacheOutOfProportion() && g_cache.ResidentBudgetHasRoomFor(need))) {
    return h;
  }
  h = TakeResidentOfAnotherSize(need, slack, /*without_syscall=*/true);
  if (h != nullptr) g_cache.UncountTake(/*hit=*/false);  // one take, a hit
  return h;
}

// For a region whose 2 MiB windows [first, end) would fault their pages
// in: free pages beyond their budgets move into them instead, each
// window's but its first page, from the front while there are such: the
// extent heap's free windows (ExtentHeapMoveFreePages), then cached
// SuperSlabs'. Returns how many windows took pages. (Numpy arrays of
// 1.6-20 MB on both sides of 16 MiB: the regions faulted fresh pages in
// while the extent heap kept 255 MB of free ones, tests/FINDINGS.md F68;
// phases of small blocks and blocks over 16 MiB, F60's `phase2 1`.)
// Only pages free for a twentieth of the decay time at least: a program
// that frees 150 MB of 0.5-2 MiB blocks, then writes 5% of a 33-300 MiB
// block, then allocates the small ones again, every few milliseconds,
// moved the small ones' pages into the big one's windows it never touched
// (190 -> 640 MB, 62K -> 367K faults; `tests/findings/hunt31/alt.c`). And
// while the live regions hold no more moved windows than the resident
// budget of large blocks: pages moved into windows a program never touches
// stay with its block while it lives (4 blocks of 100 MiB, 1 MiB of each
// used, after 250 MB of smaller blocks freed: 75 -> 246 MB; a review).
constexpr uint64_t kMoveInMinAgeFractionOfDecay = 20;
size_t MovePagesIn(LargeHeader* h, size_t first, size_t end) {
  if (GetOption(Option::kPageMoves) == 0 || !platform::PageMovesAvailable()) return 0;
  const uint64_t min_age_ns = DecayNs() / kMoveInMinAgeFractionOfDecay;
  const uint64_t most_live = LargeSharedResidentBudget() / kRegionAlign;
  char* const base = reinterpret_cast<char*>(h);
  const auto window = [base](size_t w) { return base + w * kRegionAlign + platform::kPageSize; };
  const auto room = [most_live] {
    return g_windows_moved_in_live.load(std::memory_order_relaxed) < most_live;
  };
  // (Up to a window moves can't reach: a move there fails, and its source
  // would be given up for nothing, see RegionCache::MoveCachedPages.)
  size_t w = first;
  while (w < end && room() && platform::PageMovesMayReach(window(w)) &&
         ExtentHeapMoveFreePages(window(w), /*into_region=*/true,
                                 static_cast<uint32_t>(min_age_ns / 1000000))) {
    g_windows_moved_in_live.fetch_add(1, std::memory_order_relaxed);
    w++;
  }
  for (; w < end && room() && platform::PageMovesMayReach(window(w)); w++) {
    char* to = window(w);
    if (SuperSlabCacheMovePages(&to, 1, min_age_ns) == 0) break;
    g_windows_moved_in_live.fetch_add(1, std::memory_order_relaxed);
    g_superslab_pages_moved_in.fetch_add(kMoveSpanBytes, std::memory_order_relaxed);
  }
  return w - first;
}

// The cache's RegionCache::WindowsFn.
uint32_t WindowsWithPages(const RegionHeader* region) {
  return reinterpret_cast<const LargeHeader*>(region)->windows_with_pages;
}

// Hands out the block of region `h`, `offset` from its base, for `size`
// bytes asked for.
void* HandOut(LargeHeader* h, size_t offset, size_t size) {
  h->block_offset = offset;
  h->requested = size;
  NoteLargeAllocation();
  g_live.fetch_add(1, std::memory_order_relaxed);
  AddLiveBytes(h->region.mapped_size);
  return reinterpret_cast<char*>(h) + offset;
}

}  // namespace

void* LargeAlloc(size_t size, size_t alignment, bool* zeroed, bool wants_zero, bool to_grow) {
  const size_t offset =
      alignment > platform::kPageSize ? alignment : platform::kPageSize;
  if (alignment > kMaxLargeAlignment || size > (size_t{1} << 46)) return nullptr;
  // (At least a byte: a block of 0 bytes would start at the mapping's end,
  // where the registry no longer counts it as ours.)
  const size_t need = PageRound(offset + (size != 0 ? size : 1));
  LargeCacheMaybeEnforceLimits(platform::NowNs());
  // Reuse a cached region up to 25% (or 64 KiB) bigger than needed (any
  // region's base is aligned enough up to 2 MiB).
  const size_t slack = need / 4 > 65536 ? need / 4 : 65536;
  // A region whose pages the cache gave back reads zero past its header
  // page, where the block starts: calloc need not clear it.
  bool reads_zero = false;
  LargeHeader* h =
      alignment <= kRegionAlign ? TakeCached(need, slack, wants_zero, &reads_zero) : nullptr;
  *zeroed = h != nullptr && reads_zero;
  if (h != nullptr) {
    // A copy left behind taken again within the decay: see LargeFree.
    if (h->left_behind && platform::NowNs() - h->region.last_used_ns < DecayNs()) {
      h->keeps_pages_when_left_behind = true;
    }
    h->left_behind = false;
  }
  const bool faults_in = h == nullptr || reads_zero;
  if (h == nullptr) {
    // A miss, and a cache out of proportion to the program: its resident
    // budget applies now, not after the decay.
    if (CacheOutOfProportion()) g_cache.ApplyResidentBudgetNow();

    size_t reserved;
    void* mem = MapRegion(need, alignment, &reserved);
    if (mem == nullptr) return nullptr;
    h = static_cast<LargeHeader*>(mem);
    h->region.magic = kRegionMagic;
    h->region.kind = RegionKind::kLarge;
    h->region.mapped_size = need;
    h->reserved = reserved;
    if (!registry::Register(reinterpret_cast<uintptr_t>(h), registry::kTagLarge, need)) {
      platform::Unmap(mem, reserved);
      return nullptr;
    }
    *zeroed = true;
  }
  // Pages to fault in, and free pages beyond the other layers' budgets:
  // those move in instead, window by window (not for calloc, which wants
  // pages that read zero; not for a block realloc grows, see `to_grow`);
  // for a cached region that moved some of its windows' pages out, those
  // windows. A region that took such pages says how far (see
  // windows_with_pages).
  // (From the first window that lies within the block: an aligned block
  // may start past window 0's moved span. A cached region of another size
  // may have been shrunk since its windows moved out: only those it still
  // has.)
  // (Nor past the block's end: a cached region may be up to a quarter
  // bigger.)
  const size_t windows = std::min<size_t>(h->region.mapped_size / kRegionAlign,
                                          (offset + size + kRegionAlign - 1) / kRegionAlign);
  const size_t first = (offset - platform::kPageSize + kRegionAlign - 1) / kRegionAlign;
  const size_t end =
      faults_in ? windows : std::min<size_t>(h->region.windows_moved_out, windows);
  if (faults_in) h->windows_moved_in = 0;
  const size_t filled = first < end && !wants_zero && !to_grow ? MovePagesIn(h, first, end) : 0;
  if (filled != 0) *zeroed = false;
  h->windows_moved_in += static_cast<uint32_t>(filled);
  if (faults_in) {
    h->windows_with_pages = filled != 0 ? static_cast<uint32_t>(first + filled) : UINT32_MAX;
  } else if (first + filled > h->windows_with_pages) {
    h->windows_with_pages = static_cast<uint32_t>(first + filled);
  }
  // Pages to fault in (a fresh mapping, or a region whose pages were given
  // back): the SuperSlab cache's budget applies now too, the small blocks
  // the program freed left pages these could have been (after the moves,
  // which take such pages first). (Many small objects freed, then large
  // blocks: the two phases' peaks added up, tests/FINDINGS.md F44.)
  if (faults_in) SuperSlabCacheGiveBackForLargeBlocks();
  void* p = HandOut(h, offset, size);
  if (need >= RegionCache::kBigMissBytes) NoteBigHandOut(h, faults_in);
  return p;
}

void* LargeAllocResident(size_t size, size_t old_usable) {
  if (size > (size_t{1} << 46)) return nullptr;
  // A copy must pay. A block over 64 MiB growing by less than half stays a
  // remap (a 250 MiB block grown by 4 KiB into a cached 500 MiB region:
  // copied in 100 ms, where the remap took 25 us). And the new block at
  // least doubles the old one's room: a buffer grown a page at a time, with
  // cached regions of closely spaced sizes, copied into each in turn (99
  // copies, 13.4 ms, where 3 remaps took 0.6).
  if (size - old_usable < old_usable / 2 && old_usable > (size_t{64} << 20)) return nullptr;
  const size_t need = PageRound(platform::kPageSize + size);
  const size_t doubled = PageRound(platform::kPageSize + 2 * old_usable);
  const size_t least = doubled > need ? doubled : need;
  // Up to twice what it needs, the most recently cached first; else up to
  // four times. (Session 21: up to twice only, 100 buffers grown 1.5x at a
  // time to 1 MB and freed, over and over, took none of the last round's
  // 1.25 MB regions for their first large size, ~400 KB, and remapped into
  // fresh pages at every step while those regions sat in the cache,
  // resident: peak 607 MiB for 95 live (tcmalloc 161), 507K page faults.
  // Now: 178 MiB, 46K faults, 1.08 -> 0.26 s. Random final sizes to 4 MB:
  // 621 -> 204 MiB (tcmalloc 172), 2.45M -> 53K faults, 4.81 -> 0.58 s
  // (tcmalloc 0.85). Twice first: a buffer doubled round after round keeps
  // finding its next size.)
  LargeHeader* h = nullptr;
  if (least <= 2 * need) {
    h = reinterpret_cast<LargeHeader*>(g_cache.TakeResident(least, 2 * need));
  }
  if (h == nullptr) {
    h = reinterpret_cast<LargeHeader*>(
        g_cache.TakeResident(least > 2 * need ? least : 2 * need, 4 * need));
  }
  return h != nullptr ? HandOut(h, platform::kPageSize, size) : nullptr;
}

void LargeCheckPointer(const LargeHeader* header, const void* p,
                       const char* operation) {
  if (header->block_offset == 0) {
    platform::ReportAndAbort(operation, p,
                             "large block is not allocated (double free?)");
  }
  if (reinterpret_cast<const char*>(header) + header->block_offset != p) {
    platform::ReportAndAbort(operation, p,
                             "not the start of a block (interior pointer?)");
  }
}

void LargeFree(LargeHeader* header, void* p) {
  LargeCheckPointer(header, p, "free(): invalid pointer");
  header->block_offset = 0;  // marks it free: a second free is reported
  platform::NoteMemoryFreed();
  g_live.fetch_sub(1, std::memory_order_relaxed);
  g_live_bytes.fetch_sub(header->region.mapped_size, std::memory_order_relaxed);
  header->left_behind = IsCopyLeftBehind(header);
  g_windows_moved_in_live.fetch_sub(header->windows_moved_in, std::memory_order_relaxed);
  header->windows_moved_in = 0;
  g_cache.Put(&header->region, 0, /*give_back_now=*/header->left_behind);
  LargeCacheMaybeEnforceLimits(platform::NowNs());
}

bool LargeResizeInPlace(LargeHeader* header, size_t new_size, bool* can_move) {
  if (can_move != nullptr) *can_move = false;
  if (new_size > (size_t{1} << 46)) return false;
  if (LargeFitsAsIs(header, new_size)) {
    header->requested = new_size;
    return true;
  }
  const size_t need = PageRound(header->block_offset + new_size);
  const size_t mapped = header->region.mapped_size;
  const uintptr_t base = reinterpret_cast<uintptr_t>(header);
  if (need <= mapped) {
    ShrinkMapping(header, need);
    header->requested = new_size;
    g_live_bytes.fetch_sub(mapped - need, std::memory_order_relaxed);
    return true;
  }
  // Growing: a quarter more than the mapping if the address space allows.
  // Short of that, a caller that can move the block moves it (with a
  // quarter more, LargeGrowByMove) rather than take only what it needs
  // here: a buffer grown a byte at a time into a small hole would remap once
  // a page until the hole filled (300 -> 900 KB: 23-52 remaps instead of 5,
  // seen under TSan, where the kernel places mappings next to each other).
  // (The registry's cells for every slot it may reach first: once its
  // pages are mapped, tagging them can't fail.)
  size_t target = GrowTarget(mapped, need);
  if (!registry::Reserve(base, target)) return false;
  int error = GrowReservation(header, target);
  const bool mover = can_move != nullptr && error == ENOMEM;
  if (error != 0 && target != need && !mover) {
    error = GrowReservation(header, need);
    target = need;
  }
  if (error != 0) {
    if (can_move != nullptr) *can_move = error == ENOMEM;
    return false;
  }
  header->region.mapped_size = target;
  registry::Resize(base, mapped, target);
  header->requested = new_size;
  AddLiveBytes(target - mapped);
  return true;
}

void* LargeGrowByMove(LargeHeader* header, size_t new_size) {
  if (new_size > (size_t{1} << 46)) return nullptr;
  const size_t mapped = header->region.mapped_size;
  const size_t target = GrowTarget(mapped, PageRound(header->block_offset + new_size));
  void* to = platform::MapAligned(target, kRegionAlign);
  if (to == nullptr) return nullptr;
  const uintptr_t to_base = reinterpret_cast<uintptr_t>(to);
  const uintptr_t old_base = reinterpret_cast<uintptr_t>(header);
  // Tagged only once the pages are there: a remap that fails may have
  // dropped the reservation, and another region may be mapped there by then.
  if (!registry::Reserve(to_base, target)) {
    platform::Unmap(to, target);
    return nullptr;
  }
  // Not ours while it moves: nothing may find a header at the old address
  // once it is unmapped. Registering it again can't fail (its cells exist).
  registry::Unregister(old_base, mapped);
  // All of its address space moves if the target holds it (it does unless
  // the block just failed to grow in place within it); else the rest of it
  // goes.
  const size_t reserved = header->reserved;
  const size_t moving = reserved <= target ? reserved : mapped;
  if (!platform::RemapTo(header, moving, target, to)) {
    registry::Register(old_base, registry::kTagLarge, mapped);
    platform::UnmapReservationAfterFailedRemap(to, target);
    return nullptr;
  }
  if (moving < reserved) platform::Unmap(reinterpret_cast<void*>(old_base + moving), reserved - moving);
  LargeHeader* moved = static_cast<LargeHeader*>(to);
  moved->region.mapped_size = target;
  moved->reserved = target;
  registry::Register(to_base, registry::kTagLarge, target);  // reserved: can't fail
  moved->requested = new_size;
  AddLiveBytes(target - mapped);
  return reinterpret_cast<char*>(moved) + moved->block_offset;
}

LargeStats GetLargeStats() {
  return LargeStats{g_live.load(std::memory_order_relaxed),
                    g_live_bytes.load(std::memory_order_relaxed), g_cache.GetStats(),
                    g_superslab_pages_moved_in.load(std::memory_order_relaxed),
                    g_pages_moved_to_superslabs.load(std::memory_order_relaxed)};
}

void LargeCacheEnforceLimits() {
  g_cache.EnforceLimits();
  ExtentHeapEnforceLimits();
}
void LargeCacheMaybeEnforceLimits(uint64_t now) {
  g_cache.MaybeEnforceLimits(now);
  ExtentHeapMaybePurge(now);
}
void NoteLargeAllocation() {
  tl_big_hand_outs.large_allocations++;
  g_large_allocations.store(g_large_allocations.load(std::memory_order_relaxed) + 1,
                            std::memory_order_relaxed);
}

bool LargeLayerPagesForSuperSlab(char* pages, size_t bytes) {
  // (`bytes`: a SuperSlab's but its header page, as a window the extent
  // heap moves.)
  const bool moves = GetOption(Option::kPageMoves) != 0 && platform::PageMovesAvailable();
  char* to = pages;
  bool moved = moves && ExtentHeapMoveFreePages(pages);
  if (moves && !moved && platform::PageMovesMayReach(to) && LargeCacheMovePages(&to, 1) == 1) {
    moved = true;
    g_pages_moved_to_superslabs.fetch_add(kMoveSpanBytes, std::memory_order_relaxed);
  }
  // Not moved: as many of the extent heap's pages beyond the budget are
  // given back even while regrets stop the give-backs (see ExtentAlloc).
  LargeCacheGiveBackForSuperSlabs(moves && !moved ? bytes / platform::kPageSize : 0);
  return moved;
}

int LargeCacheMovePages(char* const* to, int count) {
  return count != 0 ? g_cache.MoveCachedPages(to, count, &WindowsWithPages) : 0;
}

void LargeCacheGiveBackForSuperSlabs(uint64_t when_quiet_pages) {
  // (Relaxed and racy: threads mapping SuperSlabs at once may miscount a
  // few, which only moves the moment all goes.)
  const uint64_t allocations = g_large_allocations.load(std::memory_order_relaxed);
  uint32_t in_a_row = 1;
  if (allocations == g_allocations_at_last_fresh.load(std::memory_order_relaxed)) {
    in_a_row = g_fresh_in_a_row.load(std::memory_order_relaxed) + 1;
  }
  g_allocations_at_last_fresh.store(allocations, std::memory_order_relaxed);
  g_fresh_in_a_row.store(in_a_row, std::memory_order_relaxed);
  const bool all = in_a_row > kFreshSuperSlabsBeforeAll;
  g_cache.GiveBackForAnotherLayer(all);
  ExtentHeapGiveBackForAnotherLayer(when_quiet_pages);
}
uint64_t LargeCacheResidentBytes() { return g_cache.ResidentBytes(); }

void LargeCacheReleaseAll() {
  g_cache.ReleaseAll();
  ReleaseReserve();
  ExtentHeapReleaseAll();
}
void ResetLargeLivePeakForTesting() {
  g_live_bytes_peak.store(g_live_bytes.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

void SetLargeReserveForTesting(bool enabled) {
  g_reserve_enabled.store(enabled, std::memory_order_relaxed);
  ReleaseReserve();
}
void LargeLockForFork() {
  g_cache.LockForFork();
  platform::LockMutex(&g_reserve_lock);
  ExtentHeapLockForFork();
}
void LargeUnlockAfterFork(bool in_child) {
  ExtentHeapUnlockAfterFork(in_child);
  if (in_child) {
    pthread_mutex_init(&g_reserve_lock, nullptr);
    g_cache.ResetLockInChild();
  } else {
    platform::UnlockMutex(&g_reserve_lock);
    g_cache.UnlockAfterFork();
  }
}

}  // namespace hakmem
