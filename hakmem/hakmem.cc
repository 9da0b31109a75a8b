// The router: sends each request to the tiny (slab) or the large path,
// handles calloc/realloc/aligned requests, statistics and process hooks.
//
// Invariants kept across the layers (see also hakmem/tiny/heap.h):
//  - Every pointer hakmem returns lies in the first 2 MiB of a registered
//    region, so registry::Contains() decides ownership without touching the
//    pointer's memory (no mincore, no probing).
//  - Blocks up to kMaxSmallSize live in slabs; anything bigger, and aligned
//    requests no size class can satisfy, are large regions.
//  - No function here allocates through malloc or prints with stdio.
#include "hakmem/hakmem.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/single_threaded.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

#include "hakmem/alloc_inline.h"
#include "hakmem/config.h"
#include "hakmem/large/extent_heap.h"
#include "hakmem/large/large.h"
#include "hakmem/registry/registry.h"
#include "hakmem/superslab/superslab.h"
#include "hakmem/tiny/heap.h"

namespace hakmem {

static_assert(kStatsClasses == kNumClasses, "stats cover every class");

namespace {

// Requests above this fail at once with ENOMEM (nothing could map them).
constexpr size_t kMaxRequest = size_t{1} << 46;

[[noreturn]] void ReportForeign(const void* p, const char* operation) {
  platform::ReportAndAbort(operation, p, "not allocated by hakmem");
}

// Before the first large block (and any after it: cheap): from then on, the
// small paths' upkeep applies the large cache's time limits too, so a
// program that frees its large blocks and then makes only small
// allocations gets their pages back after the decay; and a SuperSlab about
// to fault pages in gives back the large cache's pages beyond its budget
// first: large blocks freed, then small ones (tests/FINDINGS.md F45).
void NoteLargeBlocksInUse() {
  TinySetUpkeepHook(&LargeCacheMaybeEnforceLimits);
  SuperSlabSetFreshMappingHook(&LargeLayerPagesForSuperSlab);
}

// `to_grow`: for a block realloc moves to grow it (ExtentAlloc, LargeAlloc).
// Every large allocation runs the upkeep first: its hook checks the large
// layers' limits and purges (the extent heap has no clock read of its own;
// calloc and aligned allocations kept none when only malloc ran it: freed
// pages beyond the budget stayed past the decay, a review).
void* LargeOrNull(size_t size, size_t alignment, bool* zeroed, bool wants_zero = false,
                  bool to_grow = false) {
  NoteLargeBlocksInUse();
  TinyUpkeep();
  if (size > kMaxRequest) {
    errno = ENOMEM;
    return nullptr;
  }
  // Up to 16 MiB, from the extent heap, where freed blocks coalesce; else
  // (or if it can't map a chunk) a region of its own.
  const auto alloc = [=] {
    if (ExtentHeapServes(size, alignment)) {
      if (void* p = ExtentAlloc(size, zeroed, wants_zero, to_grow, alignment)) return p;
    }
    return LargeAlloc(size, alignment, zeroed, wants_zero, to_grow);
  };
  void* p = alloc();
  if (p == nullptr && OnOutOfMemory()) p = alloc();
  if (p == nullptr) errno = ENOMEM;
  return p;
}

// Usable size of a pointer known to be ours, validating it for `operation`.
size_t CheckedUsableSize(RegionHeader* region, const void* p,
                         const char* operation) {
  if (region->kind == RegionKind::kLarge) {
    LargeHeader* large = reinterpret_cast<LargeHeader*>(region);
    LargeCheckPointer(large, p, operation);
    return LargeUsableSize(large);
  }
  if (region->kind == RegionKind::kExtents) return ExtentCheckedUsableSize(region, p, operation);
  TinyCheckLiveBlock(p, operation);
  return SlabInfoOf(p)->block_size;
}

}  // namespace

namespace internal {

void* MallocLarge(size_t size) {
  bool zeroed;
  return LargeOrNull(size, 16, &zeroed);
}

void FreeSlow(void* p) {
  if (p == nullptr) return;
  RegionHeader* region = registry::Lookup(p);
  if (region == nullptr) ReportForeign(p, "free(): invalid pointer");
  if (region->kind == RegionKind::kLarge) {
    LargeFree(reinterpret_cast<LargeHeader*>(region), p);
    TinyUpkeep();
  } else if (region->kind == RegionKind::kExtents) {
    TinyUpkeep(ExtentFree(region, p));  // (one clock read for both)
  } else {
    TinyFreeSlow(p);
  }
}

void FreeSizedSlow(void* p, size_t size, size_t alignment) {
  if (p == nullptr) return;
  RegionHeader* region = registry::Lookup(p);
  if (region == nullptr) ReportForeign(p, "sized delete: invalid pointer");
  const size_t usable = CheckedUsableSize(region, p, "sized delete: invalid pointer");
  // The size must be one that would have been served by the block's own
  // class, or by a large block as big, as operator new would have chosen
  // (AlignedAllocSlow): for an over-aligned block, from its size and
  // alignment. (Before session 21 an over-aligned block took any size up
  // to its usable size: a 1000 B block deleted as 16 B was silent, F17.)
  const bool large = region->kind != RegionKind::kSuperSlab;
  bool fits;
  if (alignment > 16 && (alignment & (alignment - 1)) == 0) {
    const int c = size <= kMaxSmallSize ? AlignedSizeToClass(size, alignment) : -1;
    fits = large ? c < 0 && size <= usable : c >= 0 && c == SlabInfoOf(p)->size_class;
  } else if (alignment > 16) {  // no such alignment was served: only the size
    fits = size <= usable;
  } else {
    // (An over-aligned delete of 16 or less: its new took the class of the
    // size, or, through aligned_alloc's inline path, of the size rounded up
    // to the alignment: new(0, align 8) is a block of 8 bytes' class.)
    const size_t rounded = size < alignment ? alignment : size;
    fits = large ? size > kMaxSmallSize && size <= usable
                 : size <= kMaxSmallSize && (SizeToClass(size) == SlabInfoOf(p)->size_class ||
                                             SizeToClass(rounded) == SlabInfoOf(p)->size_class);
  }
  if (!fits) {
    platform::ReportAndAbort("sized delete: size does not match the block", p,
                             "the size passed to delete is not the size "
                             "allocated");
  }
  FreeSlow(p);
}

}  // namespace internal

void* Malloc(size_t size) { return internal::MallocInline(size); }
void Free(void* p) { internal::FreeInline(p); }
void FreeSized(void* p, size_t size) { internal::FreeSizedInline(p, size); }

namespace {
HAKMEM_NOINLINE void* CallocSlow(size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  if (total <= kMaxSmallSize) {
    // A big block whose pages past the first read zero: those stay
    // untouched (sparse use of a big calloc'd table costs what it uses).
    bool tail_zero;
    void* p = TinyMallocTellingZeroTail(static_cast<int>(SizeToClass(total)), &tail_zero);
    if (p != nullptr) memset(p, 0, tail_zero ? std::min(total, platform::kPageSize) : total);
    return p;
  }
  bool zeroed;
  void* p = LargeOrNull(total, 16, &zeroed, /*wants_zero=*/true);
  if (p != nullptr && !zeroed) memset(p, 0, total);
  return p;
}
}  // namespace

// The common case: a small block from the bin, cleared by a tail call (no
// stack frame here); the rest, big blocks included, in CallocSlow.
static_assert(ComputeSizeClass(kMaxMidSize) < kFirstBigClass,
              "calloc's inline pop never meets a zero-tail key (see PopFromBin)");
void* Calloc(size_t count, size_t size) {
  size_t total;
  if (HAKMEM_LIKELY(!__builtin_mul_overflow(count, size, &total) && total <= kMaxMidSize)) {
    if (void* p = TinyTryPop</*kBelowBigClasses=*/true>(SizeToClass(total))) {
      return memset(p, 0, total);
    }
  }
  return CallocSlow(count, size);
}

namespace {
// All of realloc but the cases Realloc settles inline.
HAKMEM_NOINLINE void* ReallocSlow(void* p, size_t size) {
  if (p == nullptr) return internal::MallocInline(size);
  if (size == 0) {  // as glibc: frees and returns NULL
    internal::FreeInline(p);
    return nullptr;
  }
  RegionHeader* region = registry::Lookup(p);
  if (region == nullptr) ReportForeign(p, "realloc(): invalid pointer");
  // A failed try on the way (a remap, a mapping) must not show in errno if
  // the realloc succeeds.
  const int saved_errno = errno;
  const size_t usable = CheckedUsableSize(region, p, "realloc(): invalid pointer");
  // Growing past what it has, beyond the size classes (a buffer grown): into
  // resident memory from the large cache if it has some, a copy instead of
  // a remap or a mapping whose fresh pages fault in as the buffer fills.
  // (Before session 21 only growth by half or more: a buffer grown 1.5x at a
  // time, its usable size a quarter over what it asked, remapped instead,
  // and the cache kept the last round's regions resident, unused.)
  if (size > kMaxSmallSize && size > usable) {
    NoteLargeBlocksInUse();  // (a buffer grown from a small block: its first)
    if (void* q = LargeAllocResident(size, usable)) {
      memcpy(q, p, usable);
      internal::FreeInline(p);
      return q;
    }
  }
  if (region->kind == RegionKind::kLarge) {
    LargeHeader* header = reinterpret_cast<LargeHeader*>(region);
    bool can_move = false;
    if (size > kMaxSmallSize && LargeResizeInPlace(header, size, &can_move)) {
      errno = saved_errno;
      return p;
    }
    if (can_move && usable >= kLargeMoveMinBytes) {
      if (void* moved = LargeGrowByMove(header, size)) {
        errno = saved_errno;
        return moved;
      }
    }
  } else if (region->kind == RegionKind::kExtents) {
    if (size > kMaxSmallSize && ExtentResizeInPlace(region, p, size)) {
      errno = saved_errno;
      return p;
    }
  } else if (size <= usable && size > usable / 2) {
    return p;
  }
  // A block that must move to grow, into the extent heap, goes where free
  // pages follow it (ExtentAlloc's `to_grow`), so that it grows on in place
  // and is not copied at every step (300 buffers grown by realloc, up to
  // 512 KB at a time to 4 MB, in random order: 5.0 -> 4.0 s, 485 -> 586
  // MB; python growing bytearrays with +=: 6.4 -> 4.8 s, 650 -> 769 MB).
  // (The large regions it replaces grew by mremap, with no copy: 2.7 s, 731
  // MB and 2.8 s, 840 MB there; glibc 8.5 s, 461 MB and 7.3 s, 556 MB.)
  void* q;
  if (size > usable && size > kMaxSmallSize) {
    bool zeroed;
    q = LargeOrNull(size, 16, &zeroed, /*wants_zero=*/false, /*to_grow=*/true);
  } else {
    q = internal::MallocInline(size);
  }
  if (q == nullptr) {
    // Out of memory: a block that shrinks stays as it is (it fits; glibc's
    // realloc never fails a shrink either); one that grows is untouched.
    if (size > usable) return nullptr;
    errno = saved_errno;
    return p;
  }
  memcpy(q, p, size < usable ? size : usable);
  internal::FreeInline(p);
  errno = saved_errno;
  return q;
}
}  // namespace

// The common case inline, without a stack frame: the block stays where it
// is. A live small block stays if the new size fits and uses more than half
// of it (a string growing a byte at a time moves once per class); a large
// one as LargeFitsAsIs says. (A null `p` has no tag: the slow path.)
void* Realloc(void* p, size_t size) {
  if (HAKMEM_LIKELY(size != 0)) {
    if (const size_t usable = TinyLiveBlockSize(p)) {
      if (size <= usable && size > usable / 2) return p;
    } else if (LargeHeader* large = LiveLargeBlockHeader(p)) {
      if (size > kMaxSmallSize && LargeFitsAsIs(large, size)) {
        large->requested = size;
        return p;
      }
    }
  }
  return ReallocSlow(p, size);
}

void* ReallocArray(void* p, size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  return Realloc(p, total);
}

namespace {
HAKMEM_NOINLINE void* AlignedAllocSlow(size_t alignment, size_t size) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    errno = EINVAL;
    return nullptr;
  }
  if (alignment <= 16) return internal::MallocInline(size);
  if (size <= kMaxSmallSize) {
    const int size_class = AlignedSizeToClass(size, alignment);
    if (size_class >= 0) return TinyMallocClass(size_class);
  }
  if (alignment > kMaxLargeAlignment) {  // a valid alignment, too big to serve
    errno = ENOMEM;
    return nullptr;
  }
  bool zeroed;
  return LargeOrNull(size, alignment, &zeroed);
}
}  // namespace

// The common case inline (a small block's class has a block in the bin);
// the rest, invalid alignments included, in AlignedAllocSlow.
void* AlignedAlloc(size_t alignment, size_t size) {
  const bool power_of_two = alignment != 0 && (alignment & (alignment - 1)) == 0;
  if (HAKMEM_LIKELY(power_of_two && alignment <= kRoundedAlignmentMax &&
                    size <= kMaxSmallSize)) {
    if (void* p = TinyTryPop(RoundedAlignedSizeToClass(size, alignment))) return p;
  }
  return AlignedAllocSlow(alignment, size);
}

int PosixMemalign(void** out, size_t alignment, size_t size) {
  if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) {
    return EINVAL;
  }
  const int saved = errno;
  void* p = AlignedAlloc(alignment, size);
  const int error = errno;
  errno = saved;
  if (p == nullptr) return error == EINVAL ? EINVAL : ENOMEM;
  *out = p;
  return 0;
}

size_t UsableSize(const void* p) {
  if (p == nullptr) return 0;
  if (const size_t usable = TinyLiveBlockSize(p)) return usable;
  RegionHeader* region = registry::Lookup(p);
  if (region == nullptr) return 0;
  return CheckedUsableSize(region, p, "malloc_usable_size(): invalid pointer");
}

int LockAllMemory(int flags) {
  // The kernel's verdict on the flags first: a call it refuses changes
  // nothing here either.
  if ((flags & ~(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)) != 0 ||
      (flags & (MCL_CURRENT | MCL_FUTURE)) == 0) {
    errno = EINVAL;
    return -1;
  }
  // With MCL_ONFAULT pages lock as they are touched: nothing to keep away.
  const bool on_fault = (flags & MCL_ONFAULT) != 0;
  const bool future = (flags & MCL_FUTURE) != 0 && !on_fault;
  const bool was_future = platform::FutureMappingsLocked();
  if (future) platform::NoteFutureMappingsLocked(true);  // nothing mapped ahead from now
  platform::TurnPageMovesOff();
  if ((flags & MCL_CURRENT) != 0 && !on_fault) {
    Trim();  // the caches' idle mappings: unmapped
    SuperSlabReleaseRetained();
    ExtentHeapUnmapFreePages();
  }
  const long result = syscall(SYS_mlockall, flags);
  if (result != 0) {
    const int saved = errno;
    platform::NoteFutureMappingsLocked(was_future);
    ExtentHeapRemapFreePages();
    errno = saved;
    return -1;
  }
  // (Each call sets the kernel's future locking anew: one without
  // MCL_FUTURE, or with MCL_ONFAULT, ends what an earlier one began.)
  platform::NoteFutureMappingsLocked(future);
  return 0;
}

int LockMemory(const void* addr, size_t len) {
  platform::TurnPageMovesOff();
  return static_cast<int>(syscall(SYS_mlock, addr, len));
}

int LockMemory2(const void* addr, size_t len, unsigned int flags) {
  platform::TurnPageMovesOff();
  return static_cast<int>(syscall(SYS_mlock2, addr, len, flags));
}

int UnlockAllMemory() {
  if (syscall(SYS_munlockall) != 0) return -1;
  platform::NoteFutureMappingsLocked(false);
  ExtentHeapRemapFreePages();
  return 0;
}

bool Trim() {
  const platform::SyscallCounts before = platform::GetSyscallCounts();
  TinyTrim();
  SuperSlabCacheReleaseAll();
  LargeCacheReleaseAll();
  SuperSlabApplyRetainLimit();  // an address-space limit set since: all of them
  const platform::SyscallCounts after = platform::GetSyscallCounts();
  return after.munmap != before.munmap || after.madvise != before.madvise;
}

namespace {
// The statistics' static buffers (too big for a small thread stack; no
// malloc allowed), each behind its lock. Order: g_stats_lock, then
// g_tiny_stats_lock, then the allocator's own locks; all are held across
// fork (a child may call mallinfo2).
pthread_mutex_t g_stats_lock = PTHREAD_MUTEX_INITIALIZER;       // g_stats
pthread_mutex_t g_tiny_stats_lock = PTHREAD_MUTEX_INITIALIZER;  // g_tiny_stats
HAKMEM_BIG_BSS Stats g_stats;
HAKMEM_BIG_BSS TinyStats g_tiny_stats;
}  // namespace

void GetStats(Stats* stats) {
  memset(stats, 0, sizeof(*stats));
  const platform::SyscallCounts calls = platform::GetSyscallCounts();
  stats->mmap_calls = calls.mmap;
  stats->munmap_calls = calls.munmap;
  stats->madvise_calls = calls.madvise;
  stats->mremap_calls = calls.mremap;
  const SuperSlabStats ss = GetSuperSlabStats();
  stats->superslabs_mapped = ss.mapped;
  stats->superslabs_cached = ss.cache.cached;
  stats->superslabs_evicted = ss.evicted;
  stats->superslabs_retained = ss.retained;
  stats->superslab_cache_hits = ss.cache.hits;
  stats->superslab_cache_misses = ss.cache.misses;
  const LargeStats large = GetLargeStats();
  stats->large_live = large.live;
  stats->large_live_bytes = large.live_bytes;
  stats->large_cached = large.cache.cached;
  stats->large_cache_hits = large.cache.hits;
  stats->large_cache_misses = large.cache.misses;
  stats->large_evicted = large.cache.evicted;
  stats->large_cached_resident_bytes = large.cache.resident_bytes;
  const ExtentHeapStats extents = GetExtentHeapStats();
  stats->large_live += extents.live;
  stats->large_live_bytes += extents.live_bytes;
  stats->extent_chunks = extents.chunks;
  stats->extent_free_bytes = extents.free_bytes;
  stats->extent_dirty_bytes = extents.dirty_bytes;
  stats->extent_purged_bytes = extents.purged_bytes;
  stats->pages_moved_to_superslabs = extents.moved_out_bytes;
  stats->pages_moved_to_large_blocks = extents.moved_in_bytes;
  stats->region_pages_moved_to_extents = extents.moved_in_from_regions_bytes;
  stats->extent_pages_moved_to_regions = extents.moved_to_regions_bytes;
  stats->superslab_pages_moved_to_regions = large.superslab_pages_moved_in;
  stats->region_pages_moved_to_superslabs = large.pages_moved_to_superslabs;
  stats->pages_moved_within_extents = extents.moved_within_bytes;
  platform::LockMutex(&g_tiny_stats_lock);
  TinyStats& tiny = g_tiny_stats;
  GetTinyStats(&tiny);
  stats->heaps_created = tiny.heaps_created;
  stats->heaps_pooled = tiny.heaps_pooled;
  stats->heaps_leaked_by_fork = tiny.heaps_leaked_by_fork;
  stats->heaps_of_dead_threads = tiny.heaps_of_dead_threads;
  stats->bin_refills = tiny.counters.refills;
  stats->bin_overflow_flushes = tiny.counters.overflow_flushes;
  stats->blocks_sent_to_owners = tiny.counters.blocks_sent_to_owners;
  stats->blocks_drained = tiny.counters.blocks_drained;
  stats->transfer_batches_pushed = tiny.counters.transfer_batches_pushed;
  stats->transfer_batches_taken = tiny.counters.transfer_batches_taken;
  stats->transfer_blocks_sent_home = tiny.counters.transfer_blocks_sent_home;
  stats->shared_start_blocks = tiny.counters.shared_start_blocks;
  for (int c = 0; c < kNumClasses; c++) {
    stats->class_size[c] = ClassSizeOf(c);
    stats->class_slabs[c] = tiny.slabs_in_use[c];
    stats->class_blocks_in_use[c] = tiny.blocks_in_use[c];
  }
  platform::UnlockMutex(&g_tiny_stats_lock);
}

MallocTotals GetMallocTotals() {
  platform::LockMutex(&g_stats_lock);
  const Stats& stats = g_stats;
  GetStats(&g_stats);
  MallocTotals totals{};
  totals.small_mapped = stats.superslabs_mapped * kSuperSlabSize;
  for (int c = 0; c < kStatsClasses; c++) {
    totals.small_in_use += stats.class_blocks_in_use[c] * stats.class_size[c];
  }
  totals.free_regions = stats.superslabs_cached + stats.large_cached;
  totals.large_blocks = stats.large_live;
  totals.large_mapped = stats.large_live_bytes;
  platform::UnlockMutex(&g_stats_lock);
  return totals;
}

void PrintStats() {
  // Not cancellable (as glibc's malloc_stats): its writes are cancellation
  // points, and a thread cancelled there would keep the lock, and every
  // later fork would wait for it.
  int cancel_state;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
  platform::LockMutex(&g_stats_lock);  // malloc_stats may come from any thread
  const Stats& stats = g_stats;
  GetStats(&g_stats);
  const struct {
    const char* name;
    uint64_t value;
  } rows[] = {
      {"mmap calls", stats.mmap_calls},
      {"munmap calls", stats.munmap_calls},
      {"madvise calls", stats.madvise_calls},
      {"mremap calls", stats.mremap_calls},
      {"superslabs mapped", stats.superslabs_mapped},
      {"superslabs cached", stats.superslabs_cached},
      {"superslabs evicted", stats.superslabs_evicted},
      {"superslabs retained (address space only)", stats.superslabs_retained},
      {"superslab cache hits", stats.superslab_cache_hits},
      {"superslab cache misses", stats.superslab_cache_misses},
      {"large blocks live", stats.large_live},
      {"large blocks live bytes", stats.large_live_bytes},
      {"large blocks cached", stats.large_cached},
      {"large cache hits", stats.large_cache_hits},
      {"large cache misses", stats.large_cache_misses},
      {"large blocks evicted", stats.large_evicted},
      {"large cache resident bytes", stats.large_cached_resident_bytes},
      {"extent chunks", stats.extent_chunks},
      {"extent free bytes", stats.extent_free_bytes},
      {"extent free bytes perhaps resident", stats.extent_dirty_bytes},
      {"extent bytes given back", stats.extent_purged_bytes},
      {"free pages moved from extents to SuperSlabs, bytes", stats.pages_moved_to_superslabs},
      {"free pages moved from extents to large regions, bytes",
       stats.extent_pages_moved_to_regions},
      {"free pages moved within the extent heap, bytes", stats.pages_moved_within_extents},
      {"free pages moved from SuperSlabs to the extent heap, bytes", stats.pages_moved_to_large_blocks},
      {"free pages moved from SuperSlabs to large regions, bytes",
       stats.superslab_pages_moved_to_regions},
      {"free pages moved from large regions to the extent heap, bytes",
       stats.region_pages_moved_to_extents},
      {"free pages moved from large regions to SuperSlabs, bytes",
       stats.region_pages_moved_to_superslabs},
      {"thread heaps created", stats.heaps_created},
      {"thread heaps pooled", stats.heaps_pooled},
      {"thread heaps leaked by fork", stats.heaps_leaked_by_fork},
      {"thread heaps pooled after their thread died", stats.heaps_of_dead_threads},
      {"bin refills", stats.bin_refills},
      {"bin overflow flushes", stats.bin_overflow_flushes},
      {"blocks sent to their owners", stats.blocks_sent_to_owners},
      {"blocks drained by their owners", stats.blocks_drained},
      {"transfer cache batches pushed", stats.transfer_batches_pushed},
      {"transfer cache batches taken", stats.transfer_batches_taken},
      {"transfer cache blocks sent home", stats.transfer_blocks_sent_home},
      {"blocks from the shared heap at a class's start", stats.shared_start_blocks},
  };
  {
    platform::LogLine line;
    line.Str("hakmem stats:\n");
    line.WriteToStderr();
  }
  for (const auto& row : rows) {
    platform::LogLine line;
    line.Str("  ").Str(row.name).Str(": ").Dec(row.value).Str("\n");
    line.WriteToStderr();
  }
  for (int c = 0; c < kStatsClasses; c++) {
    if (stats.class_slabs[c] == 0) continue;
    platform::LogLine line;
    line.Str("  class ")
        .Dec(static_cast<uint64_t>(c))
        .Str(" (")
        .Dec(stats.class_size[c])
        .Str(" B): slabs ")
        .Dec(stats.class_slabs[c])
        .Str(", blocks in use ")
        .Dec(stats.class_blocks_in_use[c])
        .Str("\n");
    line.WriteToStderr();
  }
  platform::UnlockMutex(&g_stats_lock);
  pthread_setcancelstate(cancel_state, nullptr);
}

namespace {
// Which caches a knob limits: they apply the new value at once.
enum CachesOfKnob : int { kSuperSlabCache = 1, kLargeCache = 2 };
bool SetCacheKnob(Option option, uint64_t value, int caches) {
  if (!SetOption(option, value)) return false;
  if (caches & kSuperSlabCache) SuperSlabCacheEnforceLimits();
  if (caches & kLargeCache) LargeCacheEnforceLimits();
  return true;
}
}  // namespace

bool SetSuperslabMaxCached(uint64_t count) {
  return SetCacheKnob(Option::kSuperslabMaxCached, count, kSuperSlabCache);
}
bool SetSuperslabMaxMemoryMb(uint64_t mib) {
  return SetCacheKnob(Option::kSuperslabMaxMemoryMb, mib, kSuperSlabCache);
}
bool SetSuperslabTtlSec(uint64_t seconds) {
  return SetCacheKnob(Option::kSuperslabTtlSec, seconds, kSuperSlabCache | kLargeCache);
}
bool SetSuperslabResidentMb(uint64_t mib) {
  return SetCacheKnob(Option::kSuperslabResidentMb, mib, kSuperSlabCache);
}
bool SetSuperslabDecayMs(uint64_t ms) {  // the large cache's decay too
  return SetCacheKnob(Option::kSuperslabDecayMs, ms, kSuperSlabCache | kLargeCache);
}
bool SetLargeCacheMaxMb(uint64_t mib) {
  return SetCacheKnob(Option::kLargeCacheMaxMb, mib, kLargeCache);
}
bool SetSuperslabRetainMb(uint64_t mib) {
  if (!SetOption(Option::kSuperslabRetainMb, mib)) return false;
  SuperSlabApplyRetainLimit();
  return true;
}

// ---- Process hooks ----------------------------------------------------------
namespace {

// fork: every allocator lock is held across it, so that the child finds
// the allocator at rest (see TinyUnlockAfterFork for the heaps of threads
// that do not live on in it). Before them, stdio's list lock, as glibc's
// fork takes it before its own malloc's locks: a thread that holds a FILE
// and allocates (getdelim does) must be able to finish while another runs
// fflush(NULL) (list lock, then that FILE's). glibc's fork takes the list
// lock again (it is recursive) and resets it in the child before the child
// handlers run. (Weak: a libc without these names forks as before.)
extern "C" void _IO_list_lock(void) __attribute__((weak));
extern "C" void _IO_list_unlock(void) __attribute__((weak));
extern "C" void _IO_list_resetlock(void) __attribute__((weak));

// Whether PrepareFork took the locks: not in a process that never started
// a thread, as glibc's fork takes none of its own there. Nothing else can
// hold them then, but a signal handler that forks (fork is
// async-signal-safe) may have interrupted this very thread inside a slow
// path that holds one: taking it deadlocked (a helper's hunt, session 22).
// The child of such a fork inherits the allocator as the signal found it,
// as under glibc: it should exec or _exit.
bool g_fork_locked = false;

void PrepareFork() {
  g_fork_locked = !__libc_single_threaded;
  if (!g_fork_locked) return;
  if (_IO_list_lock != nullptr) _IO_list_lock();
  platform::LockMutex(&g_stats_lock);
  platform::LockMutex(&g_tiny_stats_lock);
  TinyLockForFork();
  SuperSlabLockForFork();
  LargeLockForFork();
  platform::tl_holds_fork_locks = true;
}
void ParentAfterFork() {
  if (!g_fork_locked) return;
  platform::tl_holds_fork_locks = false;
  LargeUnlockAfterFork(false);
  SuperSlabUnlockAfterFork(false);
  TinyUnlockAfterFork(false);
  platform::UnlockMutex(&g_tiny_stats_lock);
  platform::UnlockMutex(&g_stats_lock);
  if (_IO_list_unlock != nullptr) _IO_list_unlock();
}
void ChildAfterFork() {
  platform::ForgetPageMovesInFlightAfterFork();
  if (!g_fork_locked) return;
  platform::tl_holds_fork_locks = false;
  LargeUnlockAfterFork(true);
  SuperSlabUnlockAfterFork(true);
  TinyUnlockAfterFork(true);
  pthread_mutex_init(&g_tiny_stats_lock, nullptr);
  pthread_mutex_init(&g_stats_lock, nullptr);
  if (_IO_list_resetlock != nullptr) _IO_list_resetlock();
  // A child inherits no memory lock (mlockall): hakmem's own locked mode
  // ends in it (no syscall if there were no holes).
  platform::NoteFutureMappingsLocked(false);
  ExtentHeapRemapFreePages();
}

// The kernel refused a mapping: give every cache back, and the retained
// address space, then it is retried. (The calling thread's own heap is
// left alone: it may be mid-refill.)
void PurgeCachesForRetry() {
  platform::ReadIdleMappingBudget();  // what the caches keep from now on
  TinyReclaimExitedThreads();
  SuperSlabCacheReleaseAll();
  LargeCacheReleaseAll();
  SuperSlabReleaseRetained();
}

}  // namespace

namespace internal {
// Before anyone else's if it can be: fork runs the prepare handlers in the
// reverse order of registration and the others in order, so hakmem's
// prepare handler then runs after every other one (theirs may lock what a
// thread that allocates holds, or allocate themselves), and its parent and
// child handlers before theirs. Called at the first allocation and, in the
// override build, by __register_atfork (libc_override.cc) before any
// other registration: a library's constructor may register its handlers
// before anything allocates. (Should one still come first,
// platform::tl_holds_fork_locks lets its handlers allocate.)
// (Once, and another thread's registration waits for it; this thread's own
// comes back here through the interposer, and returns at once.)
__thread bool tl_registering_fork_handlers __attribute__((tls_model("initial-exec"))) = false;
void RegisterForkHandlers() {
  HAKMEM_STARTUP_DATA static pthread_once_t once = PTHREAD_ONCE_INIT;
  if (tl_registering_fork_handlers) return;
  pthread_once(&once, [] {
    tl_registering_fork_handlers = true;
    pthread_atfork(&PrepareFork, &ParentAfterFork, &ChildAfterFork);  // may allocate
    tl_registering_fork_handlers = false;
  });
}
}  // namespace internal

// A failed allocation's last resort (see heap.h): a trim, this thread's bins
// and idle current slabs included (FINDINGS F33: under ulimit -v, freed
// 4 KiB blocks held the SuperSlabs a 1 MiB block needed; glibc reused
// them). Only if memory was freed since the last such trim, or 100 ms
// passed: a program that probes with requests that cannot succeed does not
// trim at each.
bool OnOutOfMemory() {
  static std::atomic<uint64_t> last_ns{0};
  const uint64_t now = platform::NowNs();
  const bool freed = platform::TakeMemoryFreedNote();
  if (!freed && now - last_ns.load(std::memory_order_relaxed) < 100 * 1000 * 1000) return false;
  last_ns.store(now, std::memory_order_relaxed);
  Trim();
  return true;
}

// At the first allocation (see heap.h).
void OnAllocatorInit() {
  platform::SetMapFailureHandler(&PurgeCachesForRetry);
  internal::RegisterForkHandlers();
}

namespace {

// Runs before main (under LD_PRELOAD: after the constructors of the
// program's libraries; the first allocation or fork handler registration
// may come before it, see RegisterForkHandlers).
__attribute__((constructor)) void OnLoad() {
  TinyGlobalInit();
  if (GetOption(Option::kVerbose) != 0) PrintConfig();
}

__attribute__((destructor)) void OnUnload() {
  if (GetOption(Option::kStats) != 0) PrintStats();
}

}  // namespace
}  // namespace hakmem
