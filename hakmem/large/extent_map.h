// The extent map: page-granular bookkeeping of one contiguous range of pages,
// the core of the extent heap (extent_heap.h), a large-block heap that
// splits and coalesces.
//
// Why: large blocks used to have a region of their own each (large.h),
// reused only by a block of about its size. Where block sizes drift, the
// cached regions fit nothing and each miss faults fresh pages in: F50's
// ring of buffers whose sizes drift, 5.7 s, 950 MB and 1.66M page faults
// where tcmalloc, whose page heap splits and coalesces freed spans, takes
// 2.4 s, 643 MB and 175K (tests/FINDINGS.md). Coalescing is what makes
// splitting safe: a freed piece joins its free neighbours, so a big buffer
// is whole again once its pieces are freed.
//
// Concepts:
//  - Page: the unit, numbered 0 .. pages-1 within the range.
//  - Extent: a run of pages, allocated or free. Every page belongs to
//    exactly one extent. Only an extent's first and last pages have a
//    record (PageRecord) that is not zero; interior pages' records are
//    zero. So a page's record alone tells whether it starts an allocated
//    extent (free's ownership check: an interior or freed page is misuse),
//    and a free extent's neighbours are found from the records on either
//    side of it, in O(1).
//  - Free extents are never adjacent: freeing one merges it with the free
//    extents on either side.
//  - Dirty pages: of a free extent, how many may still be resident (freed
//    by the program, not yet given back): a bit a page, set while the page
//    is free and may hold old data, so every count is exact; and its dirty
//    span, the run of its pages they lie in (exact for a freed block;
//    merged extents span their parts' spans, clean pages between them
//    perhaps). A split hands each part the part of the span within it and
//    the count of its bits. Allocation carves a block where the span says
//    (on resident pages, or for calloc beside them); a purge gives back
//    pages from the span's front, as many as hold the dirty pages it was
//    asked for. (Until session 36 a split shared the count in proportion
//    to the span: where a merge had bridged clean pages, a part held more
//    than its share, and resident pages went uncounted: 50 tables of 4 MB
//    calloc'd and freed in rounds, 192 MB counted of 451 resident.)
//  - Bins: free extents by length, 32 exact bins then 8 per power of two
//    (at most 1/8 apart, as TLSF), each a list with the extents that have
//    dirty pages in front; a bitmap of the bins that are not empty. A
//    request takes the first extent of the first non-empty bin whose every
//    extent fits (O(1)), else the first fit within its own bin: size first,
//    resident pages second; but an extent with no dirty page loses to the
//    smallest bigger one with some (for calloc, the other way round): a
//    fault costs more than the split.
//  - Age: the free extents with dirty pages are on a list in the order they
//    were freed. A merged extent has the age of its part with the most
//    dirty pages (the pages just freed count as freed now). A purge takes
//    the oldest.
//
// No locks, no system calls, no allocation: the caller holds its lock,
// gives the memory for the records (zeroed, e.g. fresh anonymous pages,
// touched only where extents begin and end) and madvises what a purge
// hands it. Page indices are uint32_t: up to 2^32 - 2 pages.
#ifndef HAKMEM_LARGE_EXTENT_MAP_H_
#define HAKMEM_LARGE_EXTENT_MAP_H_

#include <stddef.h>
#include <stdint.h>

namespace hakmem {

// 32 bytes: a page of records covers 128 pages.
struct PageRecord {
  uint32_t length;  // pages of the extent, at its first and last page; else 0
  uint8_t kind;     // ExtentKind, at the first and last page; else 0
  uint8_t edges;    // kFirstPage | kLastPage
  uint16_t unused;
  // The rest is used at the first page of a free extent only, but for the
  // two fields that at its last page (two pages or more) say where its
  // dirty pages lie: [dirty_first, dirty_end), while it has any.
  union {
    uint32_t bin_prev;
    uint32_t dirty_first;
  };
  union {
    uint32_t bin_next;
    uint32_t dirty_end;
  };
  uint32_t dirty;  // pages that may be resident
  uint32_t age_prev, age_next;  // on the age list while dirty != 0
  uint32_t freed_ms;            // when it was freed (caller's clock, wraps)
};
static_assert(sizeof(PageRecord) == 32, "records are packed 128 to a page");

class ExtentMap {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;
  // Pages [first, end); empty if first == end.
  struct Span {
    uint32_t first = 0, end = 0;
    bool empty() const { return first == end; }
    uint32_t length() const { return end - first; }
  };
  static constexpr int kBins = 32 + 8 * 27;  // lengths up to 2^32 - 1

  // kPurging: between BeginPurge and EndPurge, in no bin. kHole: between
  // MakeHole and FillHole, its pages not there (unmapped by the caller).
  enum ExtentKind : uint8_t { kAllocated = 1, kFree = 2, kPurging = 3, kHole = 4 };
  static constexpr uint8_t kFirstPage = 1, kLastPage = 2;

  // `records`: zeroed storage for `pages` records; `dirty_bits`, for
  // DirtyBitWords(pages) words. Every page starts as unavailable (in no
  // extent) until Add hands it over.
  void Init(PageRecord* records, uint64_t* dirty_bits, uint32_t pages);
  static constexpr size_t DirtyBitWords(uint32_t pages) { return (size_t{pages} + 63) / 64; }

  // Makes [start, start + length), pages not yet added, free and clean,
  // merged with free neighbours (a range that grows).
  void Add(uint32_t start, uint32_t length, uint32_t now_ms);

  // An extent of `length` (>= 1) pages, now allocated: its first page, or
  // kNone if no free extent is long enough. `*dirty` (if given): how many
  // of its pages may hold old data (0: all read zero).
  uint32_t Allocate(uint32_t length, uint32_t* dirty = nullptr);
  // Allocate in two steps, for a caller choosing among several maps: the
  // free extent Allocate would split (kNone if none) and its dirty pages;
  // then the allocation of `length` pages at its front (returns how many
  // may hold old data).
  // `prefer_clean`: within a bin, an extent without dirty pages first
  // (calloc: pages that read zero need no clearing).
  uint32_t FindFit(uint32_t length, uint32_t* extent_dirty, bool prefer_clean = false) const;
  uint32_t AllocateAt(uint32_t start, uint32_t length);
  // Allocates `length` pages within the free extent at `start` (FindFit's)
  // where its dirty span says: on its resident pages if there are any, or
  // for `prefer_clean` on pages that read zero if enough lie before or
  // after the span, else in a clean run within it (else its front), with
  // `room` pages free from its start where the extent allows (a block
  // realloc will grow). `align` (a power
  // of two): the block starts at a multiple of it, the first from where
  // the span says if the block fits there, else from the extent's start
  // (the extent must allow for that); the pages skipped stay free, with
  // their share of the span and their age. Returns the block's first page;
  // `*dirty`: how many of its pages may hold old data.
  uint32_t AllocateIn(uint32_t start, uint32_t length, bool prefer_clean, uint32_t* dirty,
                      uint32_t room = 0, uint32_t align = 1);

  // The length of the allocated extent whose first page is `page`, else 0
  // (an interior page, a free one, one out of range).
  uint32_t AllocatedLength(uint32_t page) const;

  // Whether `page` lies inside an allocated extent without starting it (an
  // interior pointer, for the report). O(length of that extent).
  bool InsideAllocated(uint32_t page) const;

  // Frees the allocated extent at `start` (AllocatedLength(start) != 0),
  // all of its pages counted dirty (`dirty`) or clean, merged with its free
  // neighbours.
  void Free(uint32_t start, uint32_t now_ms, bool dirty = true);

  // Resizes the allocated extent at `start` in place to `length` (>= 1)
  // pages: a shrink frees the tail; a growth takes the pages right after
  // it if a free extent there has enough. False (nothing changed) if not.
  // `*dirty` (if given): of the pages a growth added, how many may hold
  // old data.
  bool Resize(uint32_t start, uint32_t length, uint32_t now_ms, uint32_t* dirty = nullptr);

  // The free extent with dirty pages freed longest ago, if it was freed at
  // least `wait_ms` before `now_ms` (ages compare unsigned: one freed more
  // than 49 days ago may look young once, never stuck in the future):
  // taken out of the bins (no allocation can take it while the caller gives
  // its pages back, outside its lock if it likes), its first page and
  // length returned: pages from the front of its dirty span, as many as
  // hold about `max_length` of its dirty ones (at most `max_length` of a
  // span all dirty): a budget exceeded by a little gives back a little. Its
  // pages before them stay free, clean; those after, free and as old.
  // EndPurge puts them back, clean. `*dirty` (if given): how many of them
  // were dirty.
  bool BeginPurge(uint32_t now_ms, uint32_t wait_ms, uint32_t* start, uint32_t* length,
                  uint32_t max_length = UINT32_MAX, uint32_t* dirty = nullptr);
  // BeginPurge for a page move (platform::MovePages): among the oldest
  // free extents with dirty pages (a few), the first window of `window`
  // pages, aligned to `window`, wholly within one of them and meeting its
  // dirty span, whose bit in `candidates` (one a window, by page / window)
  // is set, is taken as BeginPurge takes pages; its first page is
  // returned. False if none. `min_age_ms`: only of extents free for at
  // least that long by `now_ms`.
  bool BeginPurgeWindow(uint32_t window, const uint64_t* candidates, uint32_t* start,
                        uint32_t now_ms = 0, uint32_t min_age_ms = 0);
  // Takes [at, at + length) out of the bins as BeginPurge does, if it lies
  // in one free extent that starts at `at` or ends at `at + length` (the
  // free pages right after or before a block); else false. EndPurge puts
  // it back (`given_back` false: it holds old data now, freed now).
  bool BeginPurgeExactly(uint32_t at, uint32_t length);
  // `given_back` false: the kernel kept the pages (locked memory), which
  // come back dirty, freed now.
  void EndPurge(uint32_t start, uint32_t length, uint32_t now_ms, bool given_back = true);
  // How long before `now_ms` the oldest free extent with dirty pages was
  // freed; false if none.
  bool OldestDirtyAge(uint32_t now_ms, uint32_t* age_ms) const;

  uint32_t pages() const { return pages_; }
  uint64_t free_pages() const { return free_pages_; }
  uint64_t dirty_pages() const { return dirty_pages_; }
  // Calls f(start, length) for each extent of `kind`, in address order;
  // f may make a free extent a hole, or fill a hole. (A hole filled merges
  // with the free extent after it: the walk then goes on from where that
  // extent began, page by page through the merged extent's interior to the
  // next first page. Taking its last page's record for an extent's start
  // skipped holes and aborted in FillHole: a review, session 29.)
  template <typename F>
  void ForEachOfKind(ExtentKind kind, F f) {
    for (uint32_t p = 0; p < pages_;) {
      const PageRecord& r = records_[p];
      if (r.kind == 0 || !(r.edges & kFirstPage)) {  // not added, or not a start
        p++;
        continue;
      }
      const uint32_t length = r.length;
      if (r.kind == kind) f(p, length);
      p += length;
    }
  }
  // Takes the free extent at `start` out of the map: nothing is carved in
  // or merged with its pages, which the caller unmaps, until FillHole.
  void MakeHole(uint32_t start);
  // The hole at `start` free again, its pages clean (mapped afresh).
  void FillHole(uint32_t start, uint32_t now_ms);
  uint64_t allocated_pages() const { return allocated_pages_; }
  // The dirty span of the free extent at `start` (empty if it has no dirty
  // page): pages outside it read zero.
  Span FreeDirtySpan(uint32_t start) const { return DirtySpanOf(start); }

  // Tests: aborts unless every invariant above holds (walks every page).
  void CheckInvariantsForTesting() const;

  // The bin of free extents of `length` pages; the first bin whose every
  // extent has at least `length` pages. (Public for tests.)
  static int BinOf(uint32_t length);
  static int FirstFittingBin(uint32_t length);
  static uint32_t BinLowerBound(int bin);

 private:
  // Writes the records of extent [start, start + length): first and last.
  void MarkExtent(uint32_t start, uint32_t length, ExtentKind kind);
  // Zeroes them (the pages become interior pages of a bigger extent).
  void ClearEdges(uint32_t start, uint32_t length);
  // A free extent: records written and linked into its bin and (if dirty)
  // the age list (see extent_map.cc); and unlinked from both.
  void Link(uint32_t start, uint32_t length, uint32_t dirty, Span dirty_span, uint32_t freed_ms,
            uint32_t age_after, bool age_at_tail);
  // Where the free extent at `start` may hold dirty pages (empty: nowhere).
  Span DirtySpanOf(uint32_t start) const;
  void Unlink(uint32_t start);
  // Frees [start, start + length) (its bits clear), all of its pages dirty
  // or none, merging.
  void Release(uint32_t start, uint32_t length, bool dirty, uint32_t now_ms);
  // The dirty bits of [span.first, span.end): counted, set, cleared.
  uint32_t CountDirty(Span span) const;
  void SetDirty(Span span);
  void ClearDirty(Span span);
  // The first page from `span.first` on by which `count` dirty pages of
  // the span lie before it (span.end if it holds fewer).
  uint32_t PastDirty(Span span, uint32_t count) const;
  // The first page of `within` whose bit is set (`dirty`) or clear, from
  // `from` on; within.end if none.
  uint32_t NextPage(Span within, uint32_t from, bool dirty) const;
  // The first run of `length` clean pages in `within`, or kNone.
  uint32_t CleanRun(Span within, uint32_t length) const;
  // Splits `length` pages off the front of the free extent at `start`; the
  // rest stays free. Returns how many of them may be dirty.
  uint32_t TakeFront(uint32_t start, uint32_t length);
  // Splits [at, at + length) out of the free extent at `start` the same
  // way: the pages before and after it stay free (see extent_map.cc).
  uint32_t Carve(uint32_t start, uint32_t at, uint32_t length);
  // Carve, the pages taken marked kPurging (BeginPurge and its kin).
  uint32_t CarveForPurge(uint32_t start, uint32_t at, uint32_t length);
  static constexpr int kBinWords = (kBins + 63) / 64;
  // The first bin from `from` on whose bit is set in `bits`, or -1.
  static int FirstBinFrom(const uint64_t (&bits)[kBinWords], int from);
  // The bin's bits below, after its list changed.
  void UpdateBinBits(int bin);

  PageRecord* records_ = nullptr;
  uint64_t* dirty_bits_ = nullptr;  // a bit a page: free, and may hold old data
  uint32_t pages_ = 0;
  uint32_t bin_head_[kBins];
  uint32_t bin_tail_[kBins];
  uint64_t bin_bits_[kBinWords];        // bins not empty
  uint64_t dirty_bin_bits_[kBinWords];  // bins with an extent with dirty pages
  uint64_t clean_bin_bits_[kBinWords];  // bins with an extent without
  uint32_t age_head_ = kNone, age_tail_ = kNone;  // oldest first
  uint64_t free_pages_ = 0, dirty_pages_ = 0, allocated_pages_ = 0;
};

}  // namespace hakmem

#endif  // HAKMEM_LARGE_EXTENT_MAP_H_
