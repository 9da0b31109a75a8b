// The extent heap: large blocks up to kExtentMaxBlockBytes, page-granular,
// in shared chunks where freed blocks coalesce (extent_map.h says why).
//
// A chunk is kExtentChunkBytes of address space aligned to its size,
// registered as one region (kTagExtents, RegionKind::kExtents). Its first
// page is its header (the region header, the slab-record area the free fast
// path reads left zero, the chunk's ExtentMap); the map's page records
// follow; the rest is blocks. A block is page-aligned, has no header of its
// own and is as long as its extent: free() finds its chunk in the registry
// and its page's record, which says in O(1) whether the pointer starts a
// live block (an interior pointer, a second free and a foreign pointer are
// reported, as for any block).
//
// Allocation takes the best fit among the chunks' free extents, one with
// resident pages first, and carves the block where that extent's resident
// pages are (for calloc, where it has none, unless its freed pages look
// written: extent_heap.cc, LooksWritten); else maps a chunk. Freed pages
// stay resident (dirty) within the resident budget of large blocks, which
// the large regions' cache shares (twice the most bytes ever live in large
// blocks, 16 to 64 MiB, LargeSharedResidentBudget): beyond it, the oldest
// free extents give back pages of their dirty spans (madvise) once free for
// the decay time (HAKMEM_SUPERSLAB_DECAY_MS), sooner while the heap grows
// (DecayBeyondBudget); all of them after the TTL.
// Chunks stay mapped (address space only once purged), except on a trim or
// an out-of-memory retry, which unmap the chunks with no block.
//
// One lock guards every chunk: a large allocation's own cost is its pages
// (faults, clearing, copying), far above a lock's. None where mappings are
// scarce (an address-space limit, strict overcommit): 1 GiB of address
// space a chunk; large blocks then get regions of their own (large.h).
// (1 GiB since session 28, 64 MiB before: fewer, bigger maps, whose free
// extents merge where chunks kept them apart; measured only together with
// the dirty spans, BENCHMARKS.md "Session 28".)
//
// Blocks up to 16 MiB. (Session 28 took them up to 256 MiB: 10-100 MiB
// buffers one at a time 168 -> 104 MB, tcmalloc 110; but a big block that
// must move to grow is copied here, both copies resident, where a region
// moves its pages with mremap (malloc 200 MB, realloc to 400: 412 -> 616
// MB), and buffers built by copy-then-free kept their freed copies (300
// steps of 1 MB: 616 -> 1062 MB). Not kept until such blocks can leave a
// chunk without a copy.)
#ifndef HAKMEM_LARGE_EXTENT_HEAP_H_
#define HAKMEM_LARGE_EXTENT_HEAP_H_

#include <stddef.h>
#include <stdint.h>

#include "hakmem/registry/region.h"

namespace hakmem {

constexpr size_t kExtentChunkBytes = size_t{1} << 30;
constexpr size_t kExtentMaxBlockBytes = size_t{16} << 20;
constexpr size_t kExtentMaxAlignment = size_t{2} << 20;

// How long free pages beyond the resident budget wait before they are
// given back (`decay`, in any unit), when `excess` pages are beyond it, the
// large blocks' whole budget is `budget` pages, and `growing` says whether
// the heap's footprint (pages live, or free and perhaps resident) reached a
// new high within the last tenth of the decay (a high is forgotten after
// 16 decay times without it, and at a trim): the decay, unless growing with
// more beyond the budget than the budget; then the decay shortened in
// proportion (decay x budget / excess), to a tenth of it at the least.
// Why: one decay for every program kept a program's freed holes resident
// while it faulted in fresh pages (200 buffers grown together by realloc,
// each move leaving a hole shorter than the next sizes: 1,058 MB, glibc
// 584, mimalloc 637; about 830 with this, as fast, as many faults;
// tests/FINDINGS.md F63). Only while growing: the same rule at all times
// gave back the pages a ring of buffers whose sizes drift takes again in
// its next phase (ring2, F50: twice the page faults, 25% slower, the same
// peak), as a give-back helps the peak only while the footprint climbs.
inline uint64_t DecayBeyondBudget(uint64_t decay, uint64_t budget, uint64_t excess,
                                  bool growing) {
  if (!growing || excess <= budget) return decay;
  const uint64_t scaled =
      static_cast<uint64_t>(static_cast<unsigned __int128>(decay) * budget / excess);
  return scaled > decay / 10 ? scaled : decay / 10;
}

// Whether blocks of `size` bytes aligned to `alignment` come from here
// (HAKMEM_LARGE_EXTENTS, up to kExtentMaxBlockBytes, aligned up to
// kExtentMaxAlignment, mappings not scarce). (Aligned blocks elsewhere made
// two pools, each keeping its free pages: posix_memalign of mixed
// alignments 127 -> 147 MB, a helper's hunt.)
bool ExtentHeapServes(size_t size, size_t alignment);
// A block of at least `size` bytes aligned to `alignment` (at least a
// page), or nullptr (no chunk could be mapped). `*zeroed`: whether all of
// it reads zero. `wants_zero` (calloc): pages that read zero first.
// `to_grow` (a block realloc moves to grow it): where half as many free
// pages follow it, so that it grows on in place, if an extent with resident
// pages has that room; else on resident pages without it; else fresh pages
// with it.
void* ExtentAlloc(size_t size, bool* zeroed, bool wants_zero = false, bool to_grow = false,
                  size_t alignment = 4096);
// The usable size of `p`, in the chunk `region`; reports misuse for
// `operation` and aborts if `p` is not a live block's start.
size_t ExtentCheckedUsableSize(const RegionHeader* region, const void* p, const char* operation);
// Frees `p` (checked as above). Returns the clock it read (for the upkeep
// after it).
uint64_t ExtentFree(RegionHeader* region, void* p);
// Resizes the live block `p` in place to `new_size` bytes (a shrink keeps
// its tail unless that frees at least 64 KiB and a quarter of it; a growth
// takes a quarter more if the pages after it are free). False if it can't.
bool ExtentResizeInPlace(RegionHeader* region, void* p, size_t new_size);

// Moves the resident pages of a free 2 MiB window (but its first page,
// which is given back) to [to, to + 2 MiB - 4 KiB), for a SuperSlab (or a
// large region: `into_region`) whose pages would fault in
// (platform::MovePages), if the free pages perhaps resident exceed the
// budget by a window; the window reads zero after. False if none moved (no
// such window among the oldest free extents with dirty pages, or moves
// are off). `min_age_ms`: of extents free for at least that long.
bool ExtentHeapMoveFreePages(char* to, bool into_region = false, uint32_t min_age_ms = 0);
// Gives back the pages of free extents as the budget, decay and TTL say
// (beyond HAKMEM_LARGE_CACHE_MAX_MB at once); every 100 ms at most.
void ExtentHeapMaybePurge(uint64_t now);
// The same, not time-gated (a knob changed).
void ExtentHeapEnforceLimits();
// Gives back the pages beyond the budget now: the small blocks' layer is
// about to fault pages in (tests/FINDINGS.md F45); not for a while after
// the program took such pages back within the decay time (F49).
// `when_quiet_pages`: while regrets stop them, about that many pages beyond
// the budget are given back all the same (as
// RegionCache::GiveBackForAnotherLayer's `when_quiet_bytes`).
void ExtentHeapGiveBackForAnotherLayer(uint64_t when_quiet_pages = 0);
// Free pages perhaps resident, and the most bytes ever live in blocks here
// (relaxed reads, for the resident budget the large regions share).
uint64_t ExtentHeapDirtyBytes();
uint64_t ExtentHeapLivePeakBytes();
// Gives back the pages of every free extent, and unmaps the chunks that
// hold no block (a trim, an out-of-memory retry).
void ExtentHeapReleaseAll();
// Before mlockall(MCL_CURRENT), which would fault in and lock every page of
// the chunks, used or not (1 GiB for one block): unmaps their free extents,
// which stay holes in the maps (no block is carved or grown there) until
// ExtentHeapRemapFreePages maps them again (munlockall, a failed lock, a
// fork child; a hole something else was mapped into, even in part, stays a
// hole whole, and its chunk is never unmapped by a trim: tests/FINDINGS.md
// F59).
void ExtentHeapUnmapFreePages();
void ExtentHeapRemapFreePages();

struct ExtentHeapStats {
  uint64_t chunks;
  uint64_t live;             // blocks allocated now
  uint64_t live_bytes;       // their pages' bytes
  uint64_t free_bytes;       // free extents' bytes
  uint64_t dirty_bytes;      // of those, perhaps resident (freed, not given back since)
  uint64_t purged_bytes;     // given back so far
  uint64_t moved_out_bytes;  // free pages moved to SuperSlabs so far
  uint64_t moved_to_regions_bytes;  // free pages moved to large regions so far
  uint64_t moved_in_bytes;   // cached SuperSlabs' pages moved into blocks so far
  uint64_t moved_in_from_regions_bytes;  // cached large regions' pages, so far
  uint64_t moved_within_bytes;  // free windows' pages moved into blocks, so far
};
ExtentHeapStats GetExtentHeapStats();

// Tests of large regions (large.h): while one lives, blocks up to 16 MiB
// get regions of their own too.
struct ScopedExtentHeapOff {
  ScopedExtentHeapOff();
  ~ScopedExtentHeapOff();
};

void ExtentHeapLockForFork();
void ExtentHeapUnlockAfterFork(bool in_child);

}  // namespace hakmem

#endif  // HAKMEM_LARGE_EXTENT_HEAP_H_
