#include "hakmem/large/extent_heap.h"

#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include <atomic>

#include "hakmem/config.h"
#include "hakmem/large/extent_map.h"
#include "hakmem/large/large.h"
#include "hakmem/platform.h"
#include "hakmem/registry/region_cache.h"
#include "hakmem/registry/registry.h"
#include "hakmem/superslab/superslab.h"

namespace hakmem {
namespace {

constexpr size_t kPage = platform::kPageSize;
constexpr uint32_t kChunkPages = static_cast<uint32_t>(kExtentChunkBytes / kPage);
// Page records: 32 bytes for every page of the chunk, from its second page;
// the map's dirty bits, one a page, in its last pages. (So blocks start at
// the second page of a window, as page moves fill them, see kWindowPages.)
constexpr uint32_t kRecordPages = static_cast<uint32_t>(kChunkPages * sizeof(PageRecord) / kPage);
constexpr uint32_t kDirtyBitPages =
    static_cast<uint32_t>(ExtentMap::DirtyBitWords(kChunkPages) * sizeof(uint64_t) / kPage);
constexpr uint32_t kFirstBlockPage = 1 + kRecordPages;
constexpr uint32_t kBlockPages = kChunkPages - kFirstBlockPage - kDirtyBitPages;
static_assert(kExtentMaxBlockBytes / kPage <= kBlockPages, "a chunk holds the biggest block");

// Page moves (platform::MovePages, F60) go by 2 MiB windows, aligned as
// SuperSlabs are, each but its first page: the moved range splits the
// mapping it lands in, always at the same two places.
constexpr uint32_t kWindowPages = static_cast<uint32_t>(kSuperSlabSize / kPage);
constexpr uint32_t kChunkWindows = kChunkPages / kWindowPages;

struct ExtentChunk {
  RegionHeader region;
  // The free fast path reads a slab record here for a pointer in the
  // chunk's first 2 MiB (SlabInfoOf): zero, unowned, as in a large header.
  char slab_records_left_zero[kSlabsOffset - sizeof(RegionHeader)];
  ExtentMap map;
  // A bit a window, under g_lock: whether any of its pages may be
  // resident. Set when a block is placed or grows over any of them;
  // cleared when all of them were given back or moved away. Pages move
  // into a new block's windows whose bit is clear, and out of free
  // windows whose bit is set. (The map's dirty count per free extent
  // cannot say which windows: a merged extent's span covers its parts.)
  uint64_t resident_windows[kChunkWindows / 64];
};
static_assert(offsetof(ExtentChunk, slab_records_left_zero) <= kSlabInfosOffset &&
                  offsetof(ExtentChunk, map) >= kSlabsOffset,
              "the chunk's map must leave the slab-record area zero");
static_assert(sizeof(ExtentChunk) <= kPage, "a chunk's header fits its first page");

// 1 TiB of chunks at most; past that, large blocks get regions.
constexpr uint32_t kMaxChunks = 1024;

pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
HAKMEM_BIG_BSS ExtentChunk* g_chunks[kMaxChunks];  // under g_lock, the first g_chunk_count
uint32_t g_chunk_count = 0;
uint64_t g_live = 0, g_live_pages = 0, g_live_pages_peak = 0, g_purged_pages = 0;
// A block was freed since the last calloc: the next calloc takes resident
// pages if its fit has enough (see ExtentAlloc).
bool g_freed_since_calloc = false;
// The most pages live or free and perhaps resident at once, and when it
// was last reached (DecayBeyondBudget: whether the heap is growing). A peak
// not reached again for kFootprintPeakDecays decay times, or before a
// trim, is forgotten: the footprint then is the mark to pass.
uint64_t g_footprint_peak_pages = 0;
uint32_t g_footprint_peak_ms = 0;
constexpr uint64_t kFootprintPeakDecays = 16;
// Pages that neither madvise nor a fresh mapping over them could give back
// (mlockall(MCL_FUTURE) with no memory to lock more): purges stop.
bool g_purges_refused = false;
// Purges under way (their extents out of the bins, outside the lock): a
// fork child puts them back, dirty, as no thread of its own finishes them.
struct PurgeInFlight {
  ExtentChunk* chunk;  // nullptr: a free slot
  uint32_t start, length;
};
constexpr int kMaxPurgesInFlight = 16;
PurgeInFlight g_purges_in_flight[kMaxPurgesInFlight];
// Pages given back and not yet taken again (an estimate: a take of clean
// pages counts against it, whether they were given back or never used).
uint64_t g_given_back_untaken = 0;
CrossGiveBacks g_cross;  // give-backs for the small blocks' layer, and regrets
std::atomic<uint64_t> g_next_purge_ns{0};
// Published under the lock for readers outside it (the large regions'
// share of the resident budget).
std::atomic<uint64_t> g_dirty_bytes{0}, g_live_peak_bytes{0};
constexpr uint64_t kPurgeIntervalNs = 100 * 1000 * 1000;
// Pages of the holes ExtentHeapUnmapFreePages made, not yet filled.
uint64_t g_hole_pages = 0;
// Pages moved (atomic access): free ones out to SuperSlabs and to large
// regions; into fresh windows of new blocks from cached SuperSlabs, from
// cached large regions, and from the heap's own free windows.
uint64_t g_moved_out_pages = 0;
uint64_t g_moved_to_regions_pages = 0;
uint64_t g_moved_in_pages = 0;
uint64_t g_moved_in_from_regions_pages = 0;
uint64_t g_moved_within_pages = 0;

uint32_t Ms(uint64_t ns) { return static_cast<uint32_t>(ns / 1000000); }
// The maps' clock, read under the lock: their age lists stay in order.
uint32_t NowMsLocked() { return Ms(platform::NowNs()); }

char* PageAddress(const ExtentChunk* c, uint32_t page) {
  return reinterpret_cast<char*>(const_cast<ExtentChunk*>(c)) + size_t{page} * kPage;
}

// The windows [start, start + length) touches (`whole`: lies wholly in)
// marked as maybe resident (`resident`) or not. Lock held.
void MarkWindows(ExtentChunk* c, uint32_t start, uint32_t length, bool whole, bool resident) {
  const uint32_t end = start + length;
  uint32_t first = whole ? (start + kWindowPages - 1) / kWindowPages : start / kWindowPages;
  const uint32_t last = whole ? end / kWindowPages : (end + kWindowPages - 1) / kWindowPages;
  for (uint32_t w = first; w < last; w++) {
    const uint64_t bit = uint64_t{1} << (w % 64);
    if (resident) {
      c->resident_windows[w / 64] |= bit;
    } else {
      c->resident_windows[w / 64] &= ~bit;
    }
  }
}
void MarkPagesInUse(ExtentChunk* c, uint32_t start, uint32_t length) {
  MarkWindows(c, start, length, /*whole=*/false, /*resident=*/true);
}
void MarkPagesGone(ExtentChunk* c, uint32_t start, uint32_t length) {
  MarkWindows(c, start, length, /*whole=*/true, /*resident=*/false);
}
bool WindowMayBeResident(const ExtentChunk* c, uint32_t w) {
  return (c->resident_windows[w / 64] >> (w % 64) & 1) != 0;
}

// A new chunk, mapped and registered, all of its block pages free; or
// nullptr. Outside the lock.
ExtentChunk* MapChunk() {
  void* mem = platform::MapAhead(kExtentChunkBytes, kExtentChunkBytes);
  if (mem == nullptr) return nullptr;
  const uintptr_t base = reinterpret_cast<uintptr_t>(mem);
  ExtentChunk* c = static_cast<ExtentChunk*>(mem);
  c->region.magic = kRegionMagic;
  c->region.kind = RegionKind::kExtents;
  c->region.mapped_size = kExtentChunkBytes;
  c->map.Init(reinterpret_cast<PageRecord*>(PageAddress(c, 1)),
              reinterpret_cast<uint64_t*>(PageAddress(c, kChunkPages - kDirtyBitPages)),
              kChunkPages);
  c->map.Add(kFirstBlockPage, kBlockPages, Ms(platform::NowNs()));
  if (!registry::Register(base, registry::kTagExtents, kExtentChunkBytes)) {
    platform::Unmap(mem, kExtentChunkBytes);
    return nullptr;
  }
  return c;
}

void UnmapChunk(ExtentChunk* c) {
  c->region.magic = 0;
  registry::Unregister(reinterpret_cast<uintptr_t>(c), kExtentChunkBytes);
  platform::Unmap(c, kExtentChunkBytes);
}

// Of the free extents' dirty pages, how many may stay resident: the large
// blocks' shared budget less what the large regions' cache keeps resident,
// and at most the hard cap, HAKMEM_LARGE_CACHE_MAX_MB, beyond which none
// waits for the decay. Lock held.
uint64_t HardCapPages() { return (GetOption(Option::kLargeCacheMaxMb) << 20) / kPage; }
uint64_t ResidentBudgetPagesLocked() {
  const uint64_t shared = LargeSharedResidentBudget();
  const uint64_t regions = LargeCacheResidentBytes();
  const uint64_t budget = (shared > regions ? shared - regions : 0) / kPage;
  const uint64_t cap = HardCapPages();
  return budget < cap ? budget : cap;
}
uint64_t DirtyPagesLocked() {
  uint64_t dirty = 0;
  for (uint32_t i = 0; i < g_chunk_count; i++) dirty += g_chunks[i]->map.dirty_pages();
  return dirty;
}
// After a change of the maps: the figures others read without the lock,
// and the footprint's high.
void PublishLocked() {
  const uint64_t dirty = DirtyPagesLocked();
  if (g_live_pages + dirty > g_footprint_peak_pages) {
    g_footprint_peak_pages = g_live_pages + dirty;
    g_footprint_peak_ms = NowMsLocked();
  }
  g_dirty_bytes.store(dirty * kPage, std::memory_order_relaxed);
  g_live_peak_bytes.store(g_live_pages_peak * kPage, std::memory_order_relaxed);
}

enum class Purge {
  kDue,           // beyond the budget after the decay, the rest after the TTL
  kBeyondBudget,  // beyond the budget now (for the other layer), no more
  kAll,           // everything now (a trim)
};

// A free slot of g_purges_in_flight, or kMaxPurgesInFlight.
int FreePurgeSlotLocked() {
  int slot = 0;
  while (slot < kMaxPurgesInFlight && g_purges_in_flight[slot].chunk != nullptr) slot++;
  return slot;
}

// Gives back the pages of the oldest free extent with dirty pages if
// `how` says it is due (beyond the hard cap, always). How many dirty pages
// it gave back (0: none).
uint32_t PurgeOne(Purge how, uint64_t most_pages = UINT64_MAX) {
  platform::LockMutex(&g_lock);
  const int slot = FreePurgeSlotLocked();
  if (g_purges_refused || slot == kMaxPurgesInFlight) {
    platform::UnlockMutex(&g_lock);
    return 0;
  }
  const uint32_t now = NowMsLocked();
  ExtentChunk* oldest = nullptr;
  uint32_t oldest_age = 0;
  for (uint32_t i = 0; i < g_chunk_count; i++) {
    uint32_t age;
    if (g_chunks[i]->map.OldestDirtyAge(now, &age) && (oldest == nullptr || age > oldest_age)) {
      oldest = g_chunks[i];
      oldest_age = age;
    }
  }
  const uint64_t dirty = DirtyPagesLocked();
  const uint64_t cap = HardCapPages(), budget = ResidentBudgetPagesLocked();
  uint64_t wait_ms;
  // Beyond a limit, what exceeds it (at least 2 MiB: no crumbs).
  uint64_t most = UINT32_MAX;
  const auto excess = [dirty](uint64_t limit) {
    const uint64_t over = dirty - limit;
    return over > 512 ? over : 512;
  };
  if (how == Purge::kAll) {
    wait_ms = 0;
  } else if (dirty > cap) {
    wait_ms = 0;
    most = excess(cap);
  } else if (dirty > budget) {
    const uint64_t decay = GetOption(Option::kSuperslabDecayMs);
    if (now - g_footprint_peak_ms > kFootprintPeakDecays * decay) {
      g_footprint_peak_pages = g_live_pages + dirty;  // (not a new high: the time stays)
    }
    const bool growing = now - g_footprint_peak_ms < decay / 10;
    // The excess weighed against the large blocks' whole budget, not what
    // the regions' cache leaves of it: that share can be near 0, and any
    // excess then counted as far beyond (a review; python lists of 0.3-20
    // MB objects, some regions: peak 342-346 -> 341-374 MB, now 342-346).
    const uint64_t whole_budget = LargeSharedResidentBudget() / kPage;
    wait_ms = how == Purge::kBeyondBudget
                  ? 0
                  : DecayBeyondBudget(decay, whole_budget, dirty - budget, growing);
    most = excess(budget);
  } else if (how == Purge::kDue) {
    wait_ms = GetOption(Option::kSuperslabTtlSec) * 1000;
  } else {
    oldest = nullptr;  // within the budget: nothing to do now
    wait_ms = 0;
  }
  if (most > most_pages) most = most_pages;
  if (wait_ms > (uint64_t{1} << 31)) wait_ms = uint64_t{1} << 31;
  uint32_t start, length, dirty_taken;
  if (oldest == nullptr ||
      !oldest->map.BeginPurge(now, static_cast<uint32_t>(wait_ms), &start, &length,
                              static_cast<uint32_t>(most < UINT32_MAX ? most : UINT32_MAX),
                              &dirty_taken)) {
    platform::UnlockMutex(&g_lock);
    return 0;
  }
  g_purges_in_flight[slot] = PurgeInFlight{oldest, start, length};
  platform::UnlockMutex(&g_lock);
  // Refused (pages the program locked, then freed): fresh pages over them.
  char* const at = PageAddress(oldest, start);
  const size_t bytes = size_t{length} * kPage;
  const bool given_back = platform::DiscardPages(at, bytes) || platform::ReplacePages(at, bytes);
  platform::LockMutex(&g_lock);
  g_purges_in_flight[slot].chunk = nullptr;
  oldest->map.EndPurge(start, length, NowMsLocked(), given_back);
  PublishLocked();
  if (given_back) {
    MarkPagesGone(oldest, start, length);
    g_purged_pages += length;
    g_given_back_untaken += length;
  } else {
    g_purges_refused = true;
  }
  platform::UnlockMutex(&g_lock);
  return given_back ? dirty_taken : 0;
}

void PurgeNow(Purge how) {
  while (PurgeOne(how) != 0) {
  }
}

// A calloc's block faults in `fresh_pages` that read zero: as many of the
// free extents' dirty pages beyond the budget (at least 2 MiB: no crumbs),
// oldest first, are given back now, not at the decay. calloc takes clean
// pages over dirty ones, so a program that callocs and frees in rounds
// faulted fresh pages in at every round while the freed ones waited for
// the decay (tests/FINDINGS.md F14: 50 tables of 4 MB, written whole, 20
// rounds: 696 MB, glibc 192).
void GiveBackForCallocPages(uint64_t fresh_pages) {
  uint64_t given = 0;
  const uint64_t most = fresh_pages > 512 ? fresh_pages : 512;
  while (given < fresh_pages) {
    const uint32_t dirty = PurgeOne(Purge::kBeyondBudget, most - given);
    if (dirty == 0) break;
    given += dirty;
  }
}

}  // namespace

namespace {
// ExtentHeapMoveFreePages, uncounted.
bool MoveFreeWindow(char* to, uint32_t min_age_ms = 0) {
  platform::LockMutex(&g_lock);
  const int slot = FreePurgeSlotLocked();
  ExtentChunk* chunk = nullptr;
  uint32_t start = 0;
  // (Beyond the budget only, as RegionCache::MoveCachedPages. Nothing is
  // taken for a move that cannot be: put back, it would count as freed now.)
  if (!g_purges_refused && slot != kMaxPurgesInFlight && platform::PageMovesMayReach(to) &&
      DirtyPagesLocked() > ResidentBudgetPagesLocked() + kWindowPages) {
    const uint32_t now = NowMsLocked();
    for (uint32_t i = 0; i < g_chunk_count && chunk == nullptr; i++) {
      ExtentChunk* const c = g_chunks[i];
      if (c->map.BeginPurgeWindow(kWindowPages, c->resident_windows, &start, now, min_age_ms)) {
        chunk = c;
      }
    }
  }
  if (chunk == nullptr) {
    platform::UnlockMutex(&g_lock);
    return false;
  }
  g_purges_in_flight[slot] = PurgeInFlight{chunk, start, kWindowPages};
  platform::UnlockMutex(&g_lock);
  // All but the window's first page move; that one is given back, so that
  // the window reads zero whole. One the kernel would not move (several
  // mappings, see platform::MovePages) is given back whole: beyond the
  // budget, it would have gone at the decay, and is not tried again.
  char* const window = PageAddress(chunk, start);
  const bool moved =
      platform::MovePages(window + kPage, to, size_t{kWindowPages - 1} * kPage);
  const bool gone = moved ? platform::DiscardPages(window, kPage)
                          : platform::DiscardPages(window, size_t{kWindowPages} * kPage);
  platform::LockMutex(&g_lock);
  g_purges_in_flight[slot].chunk = nullptr;
  // Moved: the pages there read zero, as given back (not counted for the
  // regret of give-backs: the other layer faults none of them in).
  chunk->map.EndPurge(start, kWindowPages, NowMsLocked(), gone);
  if (gone) MarkPagesGone(chunk, start, kWindowPages);
  if (!moved && gone) g_purged_pages += kWindowPages;
  PublishLocked();
  platform::UnlockMutex(&g_lock);
  return moved;
}
}  // namespace

bool ExtentHeapMoveFreePages(char* to, bool into_region, uint32_t min_age_ms) {
  const bool moved = MoveFreeWindow(to, min_age_ms);
  if (moved) {
    __atomic_fetch_add(into_region ? &g_moved_to_regions_pages : &g_moved_out_pages,
                       kWindowPages - 1, __ATOMIC_RELAXED);
  }
  return moved;
}

namespace {
// A window of a new block whose pages all read zero, which may take a
// cached SuperSlab's pages instead of faulting: the pages of the block the
// move fills, and the free pages beside the block in the window (if it
// does not hold it whole), taken out of the bins for the move (purges in
// flight, for a fork), else -1.
struct MoveTarget {
  uint32_t window;
  uint32_t block_pages;
  int beside[2];
};
constexpr int kMostMoveTargets = 16;
static_assert((kExtentMaxBlockBytes + kExtentMaxAlignment) / kSuperSlabSize + 2 <= kMostMoveTargets,
              "room for every window a block touches");

// Puts the pages beside a block taken for a move back (`holds_old_data`:
// moved pages landed there, freed now; else they still read zero). Lock
// held.
void PutBackBeside(MoveTarget* t, bool holds_old_data) {
  const uint32_t now = NowMsLocked();
  for (int& slot : t->beside) {
    if (slot < 0) continue;
    PurgeInFlight& piece = g_purges_in_flight[slot];
    piece.chunk->map.EndPurge(piece.start, piece.length, now, /*given_back=*/!holds_old_data);
    piece.chunk = nullptr;
    slot = -1;
  }
}

// Of [at, at + pages), a block just placed from a free extent whose dirty
// span was `dirty_span`: the windows it touches whose pages all read zero
// (their bit clear, or outside that span: given back since the bit was
// set, perhaps in parts) into `targets`, each with the free pages beside the
// block in it taken (a window whose pages beside are not all free is
// left out), and into `*fresh_pages` how many of its pages lie in such
// windows (they will fault in, unless moved); marks every window it touches
// as maybe resident. Lock held.
int TakeMoveTargets(ExtentChunk* c, uint32_t at, uint32_t pages, ExtentMap::Span dirty_span,
                    MoveTarget* targets, uint64_t* fresh_pages) {
  int n = 0;
  *fresh_pages = 0;
  const uint32_t end = at + pages;
  for (uint32_t w = at / kWindowPages; w * kWindowPages < end; w++) {
    const uint32_t first = w * kWindowPages, last = first + kWindowPages;
    // (Outside the extent's dirty span: given back since, in part perhaps.)
    const bool outside_span = last <= dirty_span.first || first >= dirty_span.end;
    if (WindowMayBeResident(c, w) && !outside_span) continue;
    *fresh_pages += (last < end ? last : end) - (first > at ? first : at);
    if (n == kMostMoveTargets || !platform::PageMovesMayReach(PageAddress(c, first + 1))) continue;
    // The move fills [first + 1, last).
    MoveTarget t{w, (last < end ? last : end) - (first + 1 > at ? first + 1 : at), {-1, -1}};
    const uint32_t beside[2][2] = {{first + 1, at > first + 1 ? at : first + 1},
                                   {end, end < last ? last : end}};
    bool taken = true;
    for (int k = 0; k < 2 && taken; k++) {
      const uint32_t from = beside[k][0], to = beside[k][1];
      if (from >= to) continue;
      const int slot = FreePurgeSlotLocked();
      taken = slot != kMaxPurgesInFlight && c->map.BeginPurgeExactly(from, to - from);
      if (taken) {
        g_purges_in_flight[slot] = PurgeInFlight{c, from, to - from};
        t.beside[k] = slot;
      }
    }
    if (taken) {
      targets[n++] = t;
    } else {
      PutBackBeside(&t, /*holds_old_data=*/false);
    }
  }
  MarkPagesInUse(c, at, pages);
  return n;
}

// Moves free pages beyond their budgets into the targets' windows (each
// but its first page), while there are such pages: cached SuperSlabs',
// cached large regions', then the heap's own free windows (a fit with no
// resident pages while other free extents keep theirs); then puts the
// pages beside back. Returns how many of the block's pages the moves
// filled. Outside the lock.
uint64_t MoveFreePagesIn(ExtentChunk* c, MoveTarget* targets, int count) {
  char* to[kMostMoveTargets];
  for (int i = 0; i < count; i++) to[i] = PageAddress(c, targets[i].window * kWindowPages + 1);
  int moved = SuperSlabCacheMovePages(to, count);
  const int from_superslabs = moved;
  moved += LargeCacheMovePages(to + moved, count - moved);
  const int from_regions = moved - from_superslabs;
  while (moved < count && MoveFreeWindow(to[moved])) moved++;
  const int within = moved - from_superslabs - from_regions;
  __atomic_fetch_add(&g_moved_in_pages, uint64_t{kWindowPages - 1} * from_superslabs,
                     __ATOMIC_RELAXED);
  __atomic_fetch_add(&g_moved_in_from_regions_pages, uint64_t{kWindowPages - 1} * from_regions,
                     __ATOMIC_RELAXED);
  __atomic_fetch_add(&g_moved_within_pages, uint64_t{kWindowPages - 1} * within,
                     __ATOMIC_RELAXED);
  uint64_t filled = 0;
  platform::LockMutex(&g_lock);
  for (int i = 0; i < count; i++) {
    PutBackBeside(&targets[i], /*holds_old_data=*/i < moved);
    if (i < moved) {
      MarkPagesInUse(c, targets[i].window * kWindowPages, kWindowPages);
      filled += targets[i].block_pages;
    }
  }
  PublishLocked();
  platform::UnlockMutex(&g_lock);
  return filled;
}

// Chunk of a registered region of kind kExtents, and the page `p` starts;
// reports a pointer that is not page-aligned (inside a block).
uint32_t PageOf(const RegionHeader* region, const void* p, const char* operation) {
  const uintptr_t offset = reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(region);
  if (offset % kPage != 0 || offset < size_t{kFirstBlockPage} * kPage) {
    platform::ReportAndAbort(operation, p, "not the start of a block (interior pointer?)");
  }
  return static_cast<uint32_t>(offset / kPage);
}

// `p`, page-aligned in `c`, starts no live block: inside one, or freed.
[[noreturn]] void ReportNotLive(const ExtentChunk* c, uint32_t page, const void* p,
                                const char* operation) {
  if (c->map.InsideAllocated(page)) {
    platform::ReportAndAbort(operation, p, "not the start of a block (interior pointer?)");
  }
  platform::ReportAndAbort(operation, p, "large block is not allocated (double free?)");
}

}  // namespace

bool ExtentHeapServes(size_t size, size_t alignment) {
  return size <= kExtentMaxBlockBytes && alignment <= kExtentMaxAlignment &&
         GetOption(Option::kLargeExtents) != 0 && !platform::MappingsScarce();
}

namespace {
// Whether the free pages a calloc of `pages` pages would take from the
// free extent whose dirty span in chunk `c` is `span` (those of the span
// it would cover: it goes where the span starts) look written, most of
// them resident: 6 or more of 8 lines sampled across them hold a nonzero
// word (a page that reads zero there may be resident or not; one that
// does not is resident). Such pages cost less to clear than
// fresh ones cost to fault in, and clearing them adds no resident pages;
// sparse tables' pages (F14: 5% written) mostly read zero, and they keep
// getting pages that read zero: clearing theirs would make them resident
// whole. Measured: 50 tables of 4 MB calloc'd, written whole and freed, 20
// rounds (tests/findings/memory/calloc_sparse.c, `20 50 4000000 100`):
// 13.4 -> 0.8 s, 959K -> 49K page faults, peak RSS 258 -> 193 MB; 5% of
// their pages written: 20 MB as before. (A sampled page never written is
// read as the zero page: no memory, a minor fault.) Lock held.
bool LooksWritten(const ExtentChunk* c, ExtentMap::Span span, uint32_t pages) {
  const uint32_t first = span.first;
  const uint32_t end = span.length() < pages ? span.end : span.first + pages;
  if (first >= end) return false;
  constexpr int kSamples = 8, kWrittenAtLeast = 6;
  int written = 0;
  // (Until the rest could not make up the count: a sparse table's freed
  // pages cost 3 reads, each a minor fault where never written.)
  for (int i = 0; i < kSamples && written + (kSamples - i) >= kWrittenAtLeast; i++) {
    const uint32_t page = first + static_cast<uint32_t>(uint64_t{end - first} * (2 * i + 1) /
                                                        (2 * kSamples));
    const uint64_t* line = reinterpret_cast<const uint64_t*>(PageAddress(c, page));
    uint64_t any = 0;
    for (int w = 0; w < 8; w++) any |= __atomic_load_n(&line[w], __ATOMIC_RELAXED);
    written += any != 0;
  }
  return written >= kWrittenAtLeast;
}
}  // namespace

void* ExtentAlloc(size_t size, bool* zeroed, bool wants_zero, bool to_grow, size_t alignment) {
  // (At least a page: new(0) with a large alignment comes here.)
  const uint32_t pages = size != 0 ? static_cast<uint32_t>((size + kPage - 1) / kPage) : 1;
  // Aligned: the fit for as many pages more as the alignment may cost
  // (chunks are aligned to their size); the pages before the aligned start
  // stay free.
  const uint32_t align_pages = alignment > kPage ? static_cast<uint32_t>(alignment / kPage) : 1;
  // Room to grow: the fit for half as many pages again, of which it takes
  // the front. (Twice as many: 300 buffers grown by realloc in random
  // order, 4.0 s and 666 MB, half again 4.0 s and 586 MB; none 5.0 s and
  // 485 MB, every move a copy; glibc 8.5 s and 461 MB, mimalloc 6.3, 516.)
  const uint32_t fit_pages =
      (to_grow && pages <= kBlockPages / 2 ? pages + pages / 2 : pages) + align_pages - 1;
  const uint32_t least_pages = pages + align_pages - 1;
  // (No clock read or purge check here: the upkeep before every large
  // allocation makes both, LargeOrNull, and every free another: a clock
  // read is ~10% of a malloc of 256 KiB-1 MiB.)
  NoteLargeAllocation();
  platform::LockMutex(&g_lock);
  // calloc takes pages that read zero, but for the first calloc after a
  // free, if it finds a fit at least half of whose pages are dirty: a loop
  // that callocs a buffer, fills it and frees it faulted every page in
  // each time while its freed pages went back (4 MB: 2.2 ms a round, glibc
  // 0.09, as jemalloc 2.0); now it clears them (0.1 ms). One block per
  // free: sparse tables calloc'd after others were freed clear at most one
  // of those (20 x 10 MiB freed, then 20 callocs of 10 MiB with a page of
  // each used: 202 -> 76 MiB, not 121 as with resident pages for all; glibc
  // and mimalloc clear them all); and a small free before a big calloc
  // clears no big block (260 KiB freed, calloc(16 MiB): with any dirty
  // fit, 9.7 ms and 161 MB a call, a review). Nor only then, where the
  // freed pages look written (LooksWritten).
  const bool after_free = wants_zero && g_freed_since_calloc;
  if (wants_zero) g_freed_since_calloc = false;
  bool clean_first = false;
  for (int attempt = 0;; attempt++) {
    // The first chunk whose fit has resident pages, else the first fit (for
    // calloc, the other way round: pages that read zero need no clearing,
    // and pages the program never touches stay untouched). A fit with room
    // to grow but no resident pages loses to one with resident pages and
    // no room. (Room first, python's `bytearray +=`, 300 buffers to 4 MB
    // freed when full, peaked at 790 MB with 262K faults: the room came
    // from fresh pages while freed ones waited; now 721 MB, 200K faults,
    // for 4% more bytes copied, 26.9 -> 28.0 GB; realloc_rand 182 -> 168
    // MB; rs2 590 -> 582 MB, 30.4 -> 31.3 GB copied.)
    ExtentChunk* chosen = nullptr;
    uint32_t start = ExtentMap::kNone, chosen_dirty = 0;
    const auto choose = [&](bool prefer_clean) {
      chosen = nullptr;
      bool chosen_preferred = false;
      for (uint32_t want = fit_pages;; want = least_pages) {
        for (uint32_t i = 0; i < g_chunk_count; i++) {
          uint32_t dirty = 0;
          const uint32_t s = g_chunks[i]->map.FindFit(want, &dirty, prefer_clean);
          const bool preferred = (dirty != 0) != prefer_clean;
          if (s == ExtentMap::kNone || (chosen != nullptr && !preferred)) continue;
          chosen = g_chunks[i];
          start = s;
          chosen_dirty = dirty;
          chosen_preferred = preferred;
          if (preferred) break;
        }
        if (chosen_preferred || want == least_pages) break;
      }
    };
    // For calloc, the fit with freed pages (cleared below) if at least half
    // its pages are such and they come right after a free or look written
    // (see above); else pages that read zero.
    choose(/*prefer_clean=*/false);
    clean_first = wants_zero &&
                  !(chosen != nullptr && chosen_dirty >= pages / 2 &&
                    (after_free || LooksWritten(chosen, chosen->map.FreeDirtySpan(start), pages)));
    if (clean_first) choose(clean_first);
    if (chosen != nullptr) {
      // Where the extent's resident pages are (for calloc, where it has
      // none), not always its front; to grow, with its room after it;
      // aligned, at the first aligned page from there (chunks are aligned
      // to their size, so page numbers align as addresses do).
      uint32_t dirty;
      const ExtentMap::Span dirty_span = chosen->map.FreeDirtySpan(start);
      start = chosen->map.AllocateIn(start, pages, clean_first, &dirty, fit_pages, align_pages);
      // Of its windows, those whose pages all read zero may take the small
      // blocks' free pages instead of faulting (not for calloc, which
      // wants pages that read zero).
      MoveTarget targets[kMostMoveTargets];
      const bool may_move = dirty < pages && !wants_zero &&
                            GetOption(Option::kPageMoves) != 0 && platform::PageMovesAvailable();
      int move_targets = 0;
      uint64_t fresh_pages = 0;
      if (may_move) {
        move_targets = TakeMoveTargets(chosen, start, pages, dirty_span, targets, &fresh_pages);
      } else {
        MarkPagesInUse(chosen, start, pages);
      }
      if (dirty < pages && g_given_back_untaken != 0) {
        // Perhaps pages given back for the other layer, taken again.
        const uint64_t clean = pages - dirty;
        g_given_back_untaken -= clean < g_given_back_untaken ? clean : g_given_back_untaken;
        g_cross.NoteTakeOfGivenBack(platform::NowNs(), DecayNs());
      }
      g_live++;
      g_live_pages += pages;
      if (g_live_pages > g_live_pages_peak) g_live_pages_peak = g_live_pages;
      PublishLocked();
      platform::UnlockMutex(&g_lock);
      *zeroed = dirty == 0;
      // Pages to fault in: the small blocks' cache gives back what is
      // beyond its budget first (tests/FINDINGS.md F44). (The large
      // regions' cache too was tried: blocks on both sides of 16 MiB,
      // python 347 -> 438 MB, more faults; their shared budget is enough.)
      // With page moves, its pages beyond the budget move into the fresh
      // windows before (no fault), and while regrets stop the give-backs,
      // as many as still fault in are given back (F60: phases of small and
      // large blocks in turn kept both resident, 665 MB; mimalloc 374).
      if (dirty < pages) {
        const uint64_t filled =
            move_targets != 0 ? MoveFreePagesIn(chosen, targets, move_targets) : 0;
        if (filled != 0) *zeroed = false;
        SuperSlabCacheGiveBackForLargeBlocks((fresh_pages - filled) * kPage);
        if (wants_zero) GiveBackForCallocPages(pages - dirty);
      }
      if (wants_zero && dirty != 0) {
        // Cleared here where its pages may hold old data (the extent's
        // dirty span within it), not whole: the rest reads zero, and
        // clearing it would fault in pages the program may never touch
        // (a 260 KiB block freed, then calloc(16 MiB) with a byte used:
        // 2 us and 2 MB -> 9.7 ms and 161 MB a call, a review).
        const uint32_t first = dirty_span.first > start ? dirty_span.first : start;
        const uint32_t end = dirty_span.end < start + pages ? dirty_span.end : start + pages;
        if (first < end) memset(PageAddress(chosen, first), 0, size_t{end - first} * kPage);
        *zeroed = true;
      }
      return PageAddress(chosen, start);
    }
    if (attempt == 1 || g_chunk_count == kMaxChunks) break;
    platform::UnlockMutex(&g_lock);
    ExtentChunk* fresh = MapChunk();
    if (fresh == nullptr) return nullptr;
    platform::LockMutex(&g_lock);
    if (g_chunk_count == kMaxChunks) {
      platform::UnlockMutex(&g_lock);
      UnmapChunk(fresh);
      return nullptr;
    }
    g_chunks[g_chunk_count++] = fresh;
  }
  platform::UnlockMutex(&g_lock);
  return nullptr;
}

size_t ExtentCheckedUsableSize(const RegionHeader* region, const void* p, const char* operation) {
  const ExtentChunk* c = reinterpret_cast<const ExtentChunk*>(region);
  const uint32_t page = PageOf(region, p, operation);
  // Unlocked: a live block's records change only through its owner's own
  // calls (free, realloc); a freed one's may be changing, and reads as
  // not live or, racing a reuse, as the new block's (as glibc's chunk
  // headers would).
  const uint32_t length = c->map.AllocatedLength(page);
  if (length == 0) ReportNotLive(c, page, p, operation);
  return size_t{length} * kPage;
}

uint64_t ExtentFree(RegionHeader* region, void* p) {
  ExtentChunk* c = reinterpret_cast<ExtentChunk*>(region);
  const uint32_t page = PageOf(region, p, "free(): invalid pointer");
  platform::LockMutex(&g_lock);
  // One clock read, under the lock (the maps' age lists stay in order), for
  // the map and the purge's schedule: a clock read is ~10% of a free of a
  // 256 KiB-1 MiB block here.
  const uint64_t now = platform::NowNs();
  const uint32_t length = c->map.AllocatedLength(page);
  if (length == 0) ReportNotLive(c, page, p, "free(): invalid pointer");  // (holding the lock)
  c->map.Free(page, Ms(now));
  g_freed_since_calloc = true;
  g_live--;
  g_live_pages -= length;
  PublishLocked();
  // Beyond the hard cap, or the budget with no decay: given back now.
  const uint64_t dirty = DirtyPagesLocked();
  const bool now_due =
      dirty > HardCapPages() ||
      (dirty > ResidentBudgetPagesLocked() && GetOption(Option::kSuperslabDecayMs) == 0);
  platform::UnlockMutex(&g_lock);
  platform::NoteMemoryFreed();
  if (now_due) {
    PurgeNow(Purge::kDue);
  } else {
    ExtentHeapMaybePurge(now);
  }
  return now;
}

bool ExtentResizeInPlace(RegionHeader* region, void* p, size_t new_size) {
  if (new_size > kExtentMaxBlockBytes) return false;
  ExtentChunk* c = reinterpret_cast<ExtentChunk*>(region);
  const uint32_t page = PageOf(region, p, "realloc(): invalid pointer");
  const uint32_t pages = static_cast<uint32_t>((new_size + kPage - 1) / kPage);
  platform::LockMutex(&g_lock);
  const uint32_t now = NowMsLocked();
  const uint32_t old = c->map.AllocatedLength(page);
  if (old == 0) ReportNotLive(c, page, p, "realloc(): invalid pointer");  // (holding the lock)
  bool done;
  if (pages <= old) {
    // As large blocks (LargeFitsAsIs): a tail of less than 64 KiB or a
    // quarter stays.
    const uint32_t spare = old - pages;
    if (size_t{spare} * kPage >= (64 << 10) && spare >= old / 4) c->map.Resize(page, pages, now);
    done = true;
  } else {
    // A quarter more if the free pages after it allow, else what it needs.
    uint32_t target = old + old / 4;
    const uint32_t most = static_cast<uint32_t>(kExtentMaxBlockBytes / kPage);
    if (target > most) target = most;
    if (target < pages) target = pages;
    done = c->map.Resize(page, target, now) || (target != pages && c->map.Resize(page, pages, now));
  }
  if (done) {
    MarkPagesInUse(c, page, c->map.AllocatedLength(page));
    g_live_pages = g_live_pages - old + c->map.AllocatedLength(page);
    if (g_live_pages > g_live_pages_peak) g_live_pages_peak = g_live_pages;
    PublishLocked();
  }
  platform::UnlockMutex(&g_lock);
  return done;
}

void ExtentHeapMaybePurge(uint64_t now) {
  if (now < g_next_purge_ns.load(std::memory_order_relaxed)) return;
  g_next_purge_ns.store(now + kPurgeIntervalNs, std::memory_order_relaxed);
  PurgeNow(Purge::kDue);
}

void ExtentHeapEnforceLimits() { PurgeNow(Purge::kDue); }
uint64_t ExtentHeapDirtyBytes() { return g_dirty_bytes.load(std::memory_order_relaxed); }
uint64_t ExtentHeapLivePeakBytes() { return g_live_peak_bytes.load(std::memory_order_relaxed); }

void ExtentHeapGiveBackForAnotherLayer(uint64_t when_quiet_pages) {
  // Not while the program regrets such give-backs (as the large cache's,
  // RegionCache::GiveBackForAnotherLayer: phases that alternate quickly),
  // but for `when_quiet_pages` of them.
  const uint64_t now = platform::NowNs();
  platform::LockMutex(&g_lock);
  const bool beyond = DirtyPagesLocked() > ResidentBudgetPagesLocked();
  const bool may = beyond && g_cross.MayGiveBack(now, DecayNs());
  platform::UnlockMutex(&g_lock);
  if (may) {
    PurgeNow(Purge::kBeyondBudget);
  } else if (beyond && when_quiet_pages != 0) {
    PurgeOne(Purge::kBeyondBudget, when_quiet_pages);
  }
}

void ExtentHeapUnmapFreePages() {
  platform::LockMutex(&g_lock);
  for (uint32_t i = 0; i < g_chunk_count; i++) {
    ExtentChunk* const c = g_chunks[i];
    c->map.ForEachOfKind(ExtentMap::kFree, [c](uint32_t start, uint32_t length) {
      // (Refused, at the mapping count's limit: it stays free and mapped.)
      if (platform::TryUnmap(PageAddress(c, start), size_t{length} * kPage)) {
        MarkPagesGone(c, start, length);
        c->map.MakeHole(start);
        g_hole_pages += length;
      }
    });
  }
  PublishLocked();
  platform::UnlockMutex(&g_lock);
}

void ExtentHeapRemapFreePages() {
  platform::LockMutex(&g_lock);
  const uint32_t now = NowMsLocked();
  for (uint32_t i = 0; i < g_chunk_count && g_hole_pages != 0; i++) {
    ExtentChunk* const c = g_chunks[i];
    c->map.ForEachOfKind(ExtentMap::kHole, [c, now](uint32_t start, uint32_t length) {
      if (platform::MapAheadAt(PageAddress(c, start), size_t{length} * kPage)) {
        c->map.FillHole(start, now);
        g_hole_pages -= length;
      }
    });
  }
  PublishLocked();
  platform::UnlockMutex(&g_lock);
}

void ExtentHeapReleaseAll() {
  PurgeNow(Purge::kAll);
  platform::LockMutex(&g_lock);
  g_cross.Forget();  // nothing left to regret
  g_given_back_untaken = 0;
  // A footprint that climbs from here climbs (DecayBeyondBudget): an
  // earlier, higher peak does not count (a review: 1.2 GB freed and trimmed
  // before F63's buffers kept its peak, 1,057 MB).
  g_footprint_peak_pages = g_live_pages;
  platform::UnlockMutex(&g_lock);
  // The chunks with no block and none being purged go, one at a time,
  // unmapped outside the lock.
  for (;;) {
    ExtentChunk* empty = nullptr;
    platform::LockMutex(&g_lock);
    for (uint32_t i = 0; i < g_chunk_count; i++) {
      // (Extents being purged are in no bin: not counted free.)
      if (g_chunks[i]->map.free_pages() == kBlockPages) {
        empty = g_chunks[i];
        g_chunks[i] = g_chunks[--g_chunk_count];
        break;
      }
    }
    platform::UnlockMutex(&g_lock);
    if (empty == nullptr) return;
    UnmapChunk(empty);
  }
}

ExtentHeapStats GetExtentHeapStats() {
  ExtentHeapStats stats{};
  platform::LockMutex(&g_lock);
  stats.chunks = g_chunk_count;
  stats.live = g_live;
  stats.live_bytes = g_live_pages * kPage;
  for (uint32_t i = 0; i < g_chunk_count; i++) {
    stats.free_bytes += g_chunks[i]->map.free_pages() * kPage;
    stats.dirty_bytes += g_chunks[i]->map.dirty_pages() * kPage;
  }
  stats.purged_bytes = g_purged_pages * kPage;
  stats.moved_out_bytes = __atomic_load_n(&g_moved_out_pages, __ATOMIC_RELAXED) * kPage;
  stats.moved_to_regions_bytes =
      __atomic_load_n(&g_moved_to_regions_pages, __ATOMIC_RELAXED) * kPage;
  stats.moved_in_bytes = __atomic_load_n(&g_moved_in_pages, __ATOMIC_RELAXED) * kPage;
  stats.moved_in_from_regions_bytes =
      __atomic_load_n(&g_moved_in_from_regions_pages, __ATOMIC_RELAXED) * kPage;
  stats.moved_within_bytes = __atomic_load_n(&g_moved_within_pages, __ATOMIC_RELAXED) * kPage;
  platform::UnlockMutex(&g_lock);
  return stats;
}

ScopedExtentHeapOff::ScopedExtentHeapOff() { SetOption(Option::kLargeExtents, 0); }
ScopedExtentHeapOff::~ScopedExtentHeapOff() { SetOption(Option::kLargeExtents, 1); }

void ExtentHeapLockForFork() { platform::LockMutex(&g_lock); }
void ExtentHeapUnlockAfterFork(bool in_child) {
  if (in_child) {
    pthread_mutex_init(&g_lock, nullptr);
    // The parent's purges under way: their pages as they were, dirty.
    for (PurgeInFlight& purge : g_purges_in_flight) {
      if (purge.chunk == nullptr) continue;
      purge.chunk->map.EndPurge(purge.start, purge.length, NowMsLocked(), /*given_back=*/false);
      purge.chunk = nullptr;
    }
  } else {
    platform::UnlockMutex(&g_lock);
  }
}

}  // namespace hakmem
