// Large blocks: anything above kMaxSmallSize gets a region of its own.
//
// The region is aligned to kRegionAlign (so the registry finds it like a
// SuperSlab) and starts with a LargeHeader on a page of its own; the block
// begins one page (or one `alignment`) after the base. Freed large regions
// are parked in their own LRU cache (HAKMEM_LARGE_CACHE_MAX_MB, and the
// SuperSlab TTL), so repeating large malloc/free cycles make no syscalls.
#ifndef HAKMEM_LARGE_LARGE_H_
#define HAKMEM_LARGE_LARGE_H_

#include <stddef.h>
#include <stdint.h>

#include "hakmem/platform.h"
#include "hakmem/registry/region.h"
#include "hakmem/registry/region_cache.h"
#include "hakmem/registry/registry.h"

namespace hakmem {

// A block aligned to A starts A (at least a page) past its region's base,
// in a region aligned to A (at least 2 MiB): up to 1 GiB of address space
// left unused, never touched. (Past the region's first 2 MiB, frees and
// reallocs of the block take the slow path: the registry's continuation
// tags lead it to the header.) Above this, requests fail with ENOMEM.
constexpr size_t kMaxLargeAlignment = size_t{1} << 30;

struct LargeHeader {
  RegionHeader region;
  size_t block_offset;  // block = base + block_offset
  size_t requested;     // the size last asked for (malloc, realloc)
  // Bytes of address space from the base that are the region's own, mapped:
  // its mapping, up to the end of its last 2 MiB slot if it was carved from
  // the reserve (see LargeAlloc). Unmapped with it.
  size_t reserved;
  // While cached: it went there as a copy left behind, its pages given
  // back (see LargeFree).
  bool left_behind;
  // Such a copy, taken from the cache again within the decay: it keeps its
  // pages when left behind from then on.
  bool keeps_pages_when_left_behind;
  // How many of its 2 MiB windows, from the front, may hold pages: all
  // (UINT32_MAX), unless it took moved pages into its first windows when
  // its pages would have faulted in (LargeAlloc), which says nothing of the
  // rest: a block of 33-300 MiB written in its first 5% took 43 windows of
  // moved pages, and its other windows never had any. While cached, only
  // these windows' pages move to another layer (RegionCache::MoveCachedPages).
  uint32_t windows_with_pages;
  // While live: how many of its windows took moved pages (counted against
  // the resident budget, see large.cc MovePagesIn).
  uint32_t windows_moved_in;
};

// A block of at least `size` bytes aligned to `alignment` (a power of two,
// <= kMaxLargeAlignment), or nullptr: from a cached region up to a quarter
// bigger than needed (from RegionCache::kBigMissBytes on, and beyond the
// cache's resident budget, perhaps from a resident one of another size: see
// TakeCached), else carved from address space mapped ahead (up to
// kMaxCarvedBytes), else mapped. `*zeroed` tells whether the memory is known to be
// zero (fresh from the kernel, or given back while cached); `wants_zero`
// (calloc): such memory is worth more than resident pages to clear.
// Pages that would fault in may take the extent heap's or the SuperSlab
// cache's free pages beyond their budgets instead (moved, see large.cc
// MovePagesIn); not for `to_grow` (a block realloc moves to grow it): a
// region that took moved pages is several kernel mappings, which only a
// mapping of its tail grows in place.
void* LargeAlloc(size_t size, size_t alignment, bool* zeroed, bool wants_zero = false,
                 bool to_grow = false);
// For a block of `old_usable` bytes growing to `size`: a block from a
// cached region that kept its pages, at least twice `old_usable` and at
// most four times what it needs (room to grow on as it is), or nullptr
// (also for a block over 64 MiB growing by less than half: a remap costs
// less than that copy). Its pages are resident: a copy into them costs less
// than faulting fresh ones in, which is what a mapping, a remap or a region
// given back would cost (a buffer doubled to 1 MiB over and over: 523 -> 28
// us each). A block kept at that size keeps the region's spare pages
// resident, up to three times as much again, for as long as it lives: the
// cache would have given them back after the decay time (a review: 24
// freed 15 MiB buffers, then 48 buffers grown from 3 to 4 MiB and kept:
// 457 MiB for 192 live, where taking up to twice only fell to 254 within
// seconds). (Session 13 chose twice for that; session 21 four times, for
// buffers grown 1.5x at a time: see large.cc.)
void* LargeAllocResident(size_t size, size_t old_usable);
// `header` is the registered region owning `p`. Reports and aborts if `p` is
// not its block.
void LargeFree(LargeHeader* header, void* p);
inline size_t LargeUsableSize(const LargeHeader* header) {
  return header->region.mapped_size - header->block_offset;
}
// Resizing hysteresis, as tcmalloc's realloc: a block that must grow gets at
// least a quarter more (address space only: pages are touched as used), and
// one that shrinks keeps its tail unless that frees at least 64 KiB and a
// quarter of its mapping. A buffer grown a little at a time then remaps
// rarely, and never flips between growing and shrinking. One that grows
// within its mapping (a region bigger than asked for, see
// LargeAllocResident) keeps all of it.
constexpr size_t kLargeShrinkMinBytes = 64 * 1024;
// True if the block of `header` resized to `new_size` stays as it is; the
// caller then records `new_size` as requested.
inline bool LargeFitsAsIs(const LargeHeader* header, size_t new_size) {
  const size_t usable = LargeUsableSize(header);
  if (new_size > usable) return false;
  if (new_size >= header->requested) return true;
  const size_t spare = usable - new_size;
  return spare < kLargeShrinkMinBytes || spare < header->region.mapped_size / 4;
}
// The header of `p` if `p` is a live large block in the registry's window,
// else nullptr (the caller takes its checked slow path, which reports
// misuse). Inline, for realloc's common case: the block still fits.
HAKMEM_ALWAYS_INLINE LargeHeader* LiveLargeBlockHeader(const void* p) {
  if (registry::TagOfInWindow(p) != registry::kTagLarge) return nullptr;
  LargeHeader* header = reinterpret_cast<LargeHeader*>(RegionBaseOf(p));
  if (HAKMEM_UNLIKELY(header->region.magic != kRegionMagic || header->block_offset == 0 ||
                      reinterpret_cast<char*>(header) + header->block_offset != p)) {
    return nullptr;
  }
  return header;
}
// Grows or shrinks the block in place if the mapping allows. True on success.
// On failure, `*can_move` (if given) says whether the block may still grow
// by moving (LargeGrowByMove): only if what stopped it was the address
// space right after it, not a mapping the program split (madvise, mprotect
// on part of the block), which a move would fail on too.
bool LargeResizeInPlace(LargeHeader* header, size_t new_size, bool* can_move = nullptr);
// Blocks at least this big that can't grow in place move instead of being
// copied: their pages go to a new aligned mapping (mremap), as glibc does
// for its mmapped chunks. Below it, a copy costs less than the syscalls.
constexpr size_t kLargeMoveMinBytes = 256 * 1024;
// Grows `header`'s block to `new_size` (bigger than its mapping) by moving
// its pages to a new region with a quarter to spare; the old address is
// gone afterwards. Returns the block's new address, or nullptr (the block
// untouched) if the kernel refuses.
void* LargeGrowByMove(LargeHeader* header, size_t new_size);
// Checks that `p` is the block of `header`; reports and aborts otherwise.
void LargeCheckPointer(const LargeHeader* header, const void* p,
                       const char* operation);

struct LargeStats {
  uint64_t live;           // large blocks allocated now
  uint64_t live_bytes;     // their regions' mapped bytes
  RegionCacheStats cache;
  uint64_t superslab_pages_moved_in;  // cached SuperSlabs' free pages moved in, bytes
  uint64_t pages_moved_to_superslabs;  // cached regions' free pages moved to SuperSlabs, bytes
};
LargeStats GetLargeStats();
void LargeCacheEnforceLimits();
// The resident budget of freed large blocks, shared by the regions' cache
// and the extent heap (each keeps what the other leaves of it): twice the
// most bytes ever live in large blocks of either kind, 16 to 64 MiB.
uint64_t LargeSharedResidentBudget();
uint64_t LargeCacheResidentBytes();
void LargeCacheMaybeEnforceLimits(uint64_t now);  // time-gated, for slow paths
// Gives back the pages of cached regions beyond the resident budget now, not
// after the decay (unless such give-backs were regretted lately, see
// RegionCache::GiveBackForAnotherLayer): for the small blocks' layer, about
// to fault a SuperSlab in that freed large blocks' pages could have been.
// Once the small blocks' layer has mapped more than
// kFreshSuperSlabsBeforeAll fresh SuperSlabs in a row with no large block
// allocated between them, every cached region's pages go, not only those
// beyond the budget: the program has moved on from large blocks (a 32 MiB
// sort buffer grown by realloc and freed, then 64 MiB of 4.3 KB blocks, as
// sqlite's sorter and page cache: 121 -> 88 MB; glibc 67, mimalloc 81,
// tcmalloc 83, jemalloc 88; tests/FINDINGS.md F69). Not from the first:
// give-backs of all at every fresh SuperSlab cost programs that take both
// kinds by turns 2% more peak and up to 40% more faults (python lists of
// 0.3-20 MB objects, buffers grown by realloc). Not the extent heap's
// pages (80 MB): a later large allocation that faulted them in made the
// SuperSlab cache give back its freed pages within their decay
// (memory_return_test's Decay test: 333 -> 42 MiB just after freeing).
void LargeCacheGiveBackForSuperSlabs(uint64_t when_quiet_pages = 0);
// The SuperSlabs' FreshSuperSlabHook: a free 2 MiB window of the extent
// heap's resident pages moves to `pages` if one can (true: see
// ExtentHeapMoveFreePages); then LargeCacheGiveBackForSuperSlabs
// (`when_quiet_pages`: as many as will fault in, if none moved).
bool LargeLayerPagesForSuperSlab(char* pages, size_t bytes);
constexpr uint32_t kFreshSuperSlabsBeforeAll = 4;
// For the extent heap's fresh windows: cached regions' pages beyond the
// resident budget move to [to[i], to[i] + 2 MiB - 4 KiB), 2 MiB less a page
// at a time from each region's front (RegionCache::MoveCachedPages).
// Returns how many of `to` got pages.
int LargeCacheMovePages(char* const* to, int count);
// Counts a large block's allocation (for the above).
void NoteLargeAllocation();
// Unmaps every cached region and the reserve's unused address space.
void LargeCacheReleaseAll();
// Regions up to this size are carved from address space mapped ahead: a
// miss of the cache then makes no mmap (see large.cc).
constexpr size_t kMaxCarvedBytes = 2 * kRegionAlign;
// Tests: off, every region is mapped alone (as under strict overcommit).
void SetLargeReserveForTesting(bool enabled);
// Forgets the most bytes of large blocks live at once (which sets the
// cache's resident budget) down to the bytes live now.
void ResetLargeLivePeakForTesting();
// Tests of what lies right after a region's mapping: while one lives,
// regions are mapped alone (a carved region's slot ends in its own space).
struct ScopedLargeReserveOff {
  ScopedLargeReserveOff() { SetLargeReserveForTesting(false); }
  ~ScopedLargeReserveOff() { SetLargeReserveForTesting(true); }
};
void LargeLockForFork();
void LargeUnlockAfterFork(bool in_child);

}  // namespace hakmem

#endif  // HAKMEM_LARGE_LARGE_H_
