#include "hakmem/large/extent_map.h"

#include <stdlib.h>

namespace hakmem {
namespace {

int FloorLog2(uint32_t n) { return 31 - __builtin_clz(n); }

// Wrap-safe: a is later than b.
bool Later(uint32_t a_ms, uint32_t b_ms) { return static_cast<int32_t>(a_ms - b_ms) > 0; }

// The part of [first, end) within [from, to).
ExtentMap::Span Clip(ExtentMap::Span span, uint32_t from, uint32_t to) {
  const uint32_t first = span.first > from ? span.first : from;
  const uint32_t end = span.end < to ? span.end : to;
  return first < end ? ExtentMap::Span{first, end} : ExtentMap::Span{};
}

// The smallest span holding both.
ExtentMap::Span Join(ExtentMap::Span a, ExtentMap::Span b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  return {a.first < b.first ? a.first : b.first, a.end > b.end ? a.end : b.end};
}

[[noreturn]] void Broken() { abort(); }

}  // namespace

int ExtentMap::BinOf(uint32_t length) {
  if (length < 32) return static_cast<int>(length);
  const int log = FloorLog2(length);
  return 32 + (log - 5) * 8 + static_cast<int>((length >> (log - 3)) & 7);
}

uint32_t ExtentMap::BinLowerBound(int bin) {
  if (bin < 32) return static_cast<uint32_t>(bin);
  const int log = (bin - 32) / 8 + 5;
  return (8u + static_cast<uint32_t>((bin - 32) % 8)) << (log - 3);
}

int ExtentMap::FirstFittingBin(uint32_t length) {
  const int bin = BinOf(length);
  return BinLowerBound(bin) == length ? bin : bin + 1;
}

void ExtentMap::Init(PageRecord* records, uint64_t* dirty_bits, uint32_t pages) {
  records_ = records;
  dirty_bits_ = dirty_bits;
  pages_ = pages;
  for (int b = 0; b < kBins; b++) bin_head_[b] = bin_tail_[b] = kNone;
  for (int w = 0; w < kBinWords; w++) bin_bits_[w] = dirty_bin_bits_[w] = clean_bin_bits_[w] = 0;
  age_head_ = age_tail_ = kNone;
  free_pages_ = dirty_pages_ = allocated_pages_ = 0;
}

void ExtentMap::MarkExtent(uint32_t start, uint32_t length, ExtentKind kind) {
  const uint32_t last = start + length - 1;
  records_[start] = PageRecord{};
  records_[start].length = length;
  records_[start].kind = kind;
  records_[start].edges = length == 1 ? kFirstPage | kLastPage : kFirstPage;
  if (length == 1) return;
  records_[last] = PageRecord{};
  records_[last].length = length;
  records_[last].kind = kind;
  records_[last].edges = kLastPage;
}

void ExtentMap::ClearEdges(uint32_t start, uint32_t length) {
  records_[start] = PageRecord{};
  records_[start + length - 1] = PageRecord{};
}

int ExtentMap::FirstBinFrom(const uint64_t (&bits)[kBinWords], int from) {
  for (int word = from / 64; word < kBinWords; word++) {
    uint64_t set = bits[word];
    if (word == from / 64) set &= ~uint64_t{0} << (from % 64);
    if (set != 0) return word * 64 + __builtin_ctzll(set);
  }
  return -1;
}

// A bin's dirty extents are in front, its clean ones at the back: its head
// says whether it has any dirty, its tail whether it has any clean.
void ExtentMap::UpdateBinBits(int bin) {
  const uint64_t bit = uint64_t{1} << (bin % 64);
  const uint32_t head = bin_head_[bin], tail = bin_tail_[bin];
  const auto set = [bit](uint64_t& word, bool on) { word = on ? word | bit : word & ~bit; };
  set(bin_bits_[bin / 64], head != kNone);
  set(dirty_bin_bits_[bin / 64], head != kNone && records_[head].dirty != 0);
  set(clean_bin_bits_[bin / 64], tail != kNone && records_[tail].dirty == 0);
}

// Set bits of a word. (Not __builtin_popcountll: without -mpopcnt, the
// x86-64 baseline, that is a call into libgcc's table walk, which showed
// in the profile of blocks of 256 KiB-1 MiB; all ones or none, the words
// of a freed block or of pages given back, short-cut.)
uint32_t CountBits(uint64_t x) {
  if (x == 0 || x == ~uint64_t{0}) return x == 0 ? 0 : 64;
  x -= (x >> 1) & 0x5555555555555555ull;
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
  return static_cast<uint32_t>((x * 0x0101010101010101ull) >> 56);
}

// The bits of [first, end), a word at a time, f(word index, mask), until f
// returns true.
template <typename F>
__attribute__((always_inline)) inline void ForBitWordsUntil(uint32_t first, uint32_t end, F f) {
  if (first >= end) return;
  const uint32_t first_word = first / 64, last_word = (end - 1) / 64;
  const uint64_t head = ~uint64_t{0} << (first % 64);
  const uint64_t tail = ~uint64_t{0} >> (63 - (end - 1) % 64);
  if (first_word == last_word) {
    f(first_word, head & tail);
    return;
  }
  if (f(first_word, head)) return;
  for (uint32_t w = first_word + 1; w < last_word; w++) {
    if (f(w, ~uint64_t{0})) return;
  }
  f(last_word, tail);
}

uint32_t ExtentMap::CountDirty(Span span) const {
  uint32_t n = 0;
  ForBitWordsUntil(span.first, span.end, [this, &n](uint32_t w, uint64_t mask) {
    n += CountBits(dirty_bits_[w] & mask);
    return false;
  });
  return n;
}

void ExtentMap::SetDirty(Span span) {
  ForBitWordsUntil(span.first, span.end, [this](uint32_t w, uint64_t mask) {
    dirty_bits_[w] |= mask;
    return false;
  });
}

void ExtentMap::ClearDirty(Span span) {
  ForBitWordsUntil(span.first, span.end, [this](uint32_t w, uint64_t mask) {
    dirty_bits_[w] &= ~mask;
    return false;
  });
}

uint32_t ExtentMap::PastDirty(Span span, uint32_t count) const {
  if (count == 0) return span.first;
  uint32_t seen = 0, past = span.end;
  ForBitWordsUntil(span.first, span.end, [&](uint32_t w, uint64_t mask) {
    uint64_t bits = dirty_bits_[w] & mask;
    const uint32_t here = CountBits(bits);
    if (seen + here < count) {
      seen += here;
      return false;
    }
    for (uint32_t k = seen; k + 1 < count; k++) bits &= bits - 1;  // drop all but the count-th
    past = w * 64 + static_cast<uint32_t>(__builtin_ctzll(bits)) + 1;
    return true;
  });
  return past;
}

uint32_t ExtentMap::NextPage(Span within, uint32_t from, bool dirty) const {
  uint32_t found = within.end;
  ForBitWordsUntil(from, within.end, [&](uint32_t w, uint64_t mask) {
    const uint64_t bits = (dirty ? dirty_bits_[w] : ~dirty_bits_[w]) & mask;
    if (bits == 0) return false;
    found = w * 64 + static_cast<uint32_t>(__builtin_ctzll(bits));
    return true;
  });
  return found;
}

uint32_t ExtentMap::CleanRun(Span within, uint32_t length) const {
  for (uint32_t run = within.first; run < within.end && within.end - run >= length;) {
    const uint32_t dirty = NextPage(within, run, /*dirty=*/true);
    if (dirty - run >= length) return run;
    run = NextPage(within, dirty, /*dirty=*/false);
  }
  return kNone;
}

ExtentMap::Span ExtentMap::DirtySpanOf(uint32_t start) const {
  const PageRecord& r = records_[start];
  if (r.dirty == 0) return Span{};
  if (r.length == 1) return Span{start, start + 1};
  const PageRecord& last = records_[start + r.length - 1];
  return Span{last.dirty_first, last.dirty_end};
}

// Writes the free extent's records and links it: into its bin (in front if
// it has dirty pages, else at the back) and, if dirty, onto the age list
// right after `age_after` (kNone: at the head), or at the tail if
// `age_at_tail`. Its dirty span goes to its last page's record.
void ExtentMap::Link(uint32_t start, uint32_t length, uint32_t dirty, Span span,
                     uint32_t freed_ms, uint32_t age_after, bool age_at_tail) {
  MarkExtent(start, length, kFree);
  PageRecord& r = records_[start];
  if (dirty != 0 && span.empty()) Broken();
  if (dirty > span.length()) dirty = span.length();
  r.dirty = dirty;
  if (length > 1 && dirty != 0) {
    records_[start + length - 1].dirty_first = span.first;
    records_[start + length - 1].dirty_end = span.end;
  }
  r.freed_ms = freed_ms;
  const int bin = BinOf(length);
  if (bin_head_[bin] == kNone) {
    r.bin_prev = r.bin_next = kNone;
    bin_head_[bin] = bin_tail_[bin] = start;
  } else if (dirty != 0) {
    r.bin_prev = kNone;
    r.bin_next = bin_head_[bin];
    records_[bin_head_[bin]].bin_prev = start;
    bin_head_[bin] = start;
  } else {
    r.bin_next = kNone;
    r.bin_prev = bin_tail_[bin];
    records_[bin_tail_[bin]].bin_next = start;
    bin_tail_[bin] = start;
  }
  UpdateBinBits(bin);
  r.age_prev = r.age_next = kNone;
  if (dirty != 0) {
    if (age_at_tail) age_after = age_tail_;
    r.age_prev = age_after;
    r.age_next = age_after == kNone ? age_head_ : records_[age_after].age_next;
    (age_after == kNone ? age_head_ : records_[age_after].age_next) = start;
    (r.age_next == kNone ? age_tail_ : records_[r.age_next].age_prev) = start;
  }
  free_pages_ += length;
  dirty_pages_ += dirty;
}

void ExtentMap::Unlink(uint32_t start) {
  PageRecord& r = records_[start];
  const int bin = BinOf(r.length);
  (r.bin_prev == kNone ? bin_head_[bin] : records_[r.bin_prev].bin_next) = r.bin_next;
  (r.bin_next == kNone ? bin_tail_[bin] : records_[r.bin_next].bin_prev) = r.bin_prev;
  UpdateBinBits(bin);
  if (r.dirty != 0) {
    (r.age_prev == kNone ? age_head_ : records_[r.age_prev].age_next) = r.age_next;
    (r.age_next == kNone ? age_tail_ : records_[r.age_next].age_prev) = r.age_prev;
  }
  free_pages_ -= r.length;
  dirty_pages_ -= r.dirty;
}

// Frees [start, start + length) (its records already clear), `dirty` of its
// pages perhaps resident, merged with the free extents on either side. Its
// age: now if it adds dirty pages; else (pages added or purged, clean) that
// of its dirtiest-recent neighbour, which keeps its place on the age list.
void ExtentMap::Release(uint32_t start, uint32_t length, bool dirty_pages, uint32_t now_ms) {
  const uint32_t dirty = dirty_pages ? length : 0;
  if (dirty_pages) SetDirty(Span{start, start + length});
  uint32_t left = kNone, right = kNone;
  if (start > 0 && records_[start - 1].kind == kFree) {
    left = start - records_[start - 1].length;
  }
  if (start + length < pages_ && records_[start + length].kind == kFree) right = start + length;
  const uint32_t neighbours[2] = {left, right};
  // The neighbour whose age the merged extent keeps: the one with the most
  // dirty pages, if it has more than the pages freed now (ties: the newer).
  // So a block freed next to a big free extent does not make all of it
  // young again (where blocks churn next to it, it would never age), and a
  // big block freed next to a small old extent is not given back early.
  uint32_t keep = kNone;
  for (uint32_t n : neighbours) {
    if (n == kNone || records_[n].dirty == 0 || records_[n].dirty < dirty) continue;
    if (records_[n].dirty == dirty && dirty != 0) continue;  // a tie with now: now
    if (keep == kNone || records_[n].dirty > records_[keep].dirty ||
        (records_[n].dirty == records_[keep].dirty &&
         Later(records_[n].freed_ms, records_[keep].freed_ms))) {
      keep = n;
    }
  }
  uint32_t merged_start = start, merged_length = length, merged_dirty = dirty;
  Span merged_span = dirty != 0 ? Span{start, start + length} : Span{};
  // Takes neighbour `n` into the merged extent; returns its record.
  const auto absorb = [&](uint32_t n) {
    const PageRecord r = records_[n];
    merged_span = Join(merged_span, DirtySpanOf(n));
    Unlink(n);
    ClearEdges(n, r.length);
    merged_dirty += r.dirty;
    merged_length += r.length;
    if (n < merged_start) merged_start = n;
    return r;
  };
  for (uint32_t n : neighbours) {  // the kept one last: its place stays valid
    if (n != kNone && n != keep) absorb(n);
  }
  uint32_t freed_ms = now_ms, age_after = kNone;
  bool age_at_tail = true;
  if (keep != kNone) {
    const PageRecord r = absorb(keep);
    freed_ms = r.freed_ms;
    age_after = r.age_prev;
    age_at_tail = false;
  }
  Link(merged_start, merged_length, merged_dirty, merged_span, freed_ms, age_after, age_at_tail);
}

void ExtentMap::Add(uint32_t start, uint32_t length, uint32_t now_ms) {
  if (length == 0 || start >= pages_ || pages_ - start < length) Broken();
  Release(start, length, false, now_ms);
}

uint32_t ExtentMap::AllocatedLength(uint32_t page) const {
  if (page >= pages_) return 0;
  const PageRecord& r = records_[page];
  return r.kind == kAllocated && (r.edges & kFirstPage) ? r.length : 0;
}

// Splits [at, at + length) out of the free extent at `start` (still
// linked; the range within it) and returns how many of its pages may be
// dirty (0: they read zero), their bits cleared; its records are left
// clear for the caller. The pages before and after it stay free, with the
// extent's age and place on the age list, each with the part of the dirty
// span within it and the count of its bits. (Bits counted in the block and
// the shorter side's part of the span only: a block carved from the front
// or end of a long span counts a few words.)
uint32_t ExtentMap::Carve(uint32_t start, uint32_t at, uint32_t length) {
  const PageRecord r = records_[start];
  const uint32_t end = start + r.length;
  if (at < start || length == 0 || length > end - at) Broken();
  const Span span = DirtySpanOf(start);
  const Span taken = Clip(span, at, at + length);
  const Span before = Clip(span, start, at), after = Clip(span, at + length, end);
  uint32_t taken_dirty, before_dirty, after_dirty;
  if (r.dirty == span.length()) {  // a span all dirty (a freed block's, merged ones'): no count
    taken_dirty = taken.length();
    before_dirty = before.length();
    after_dirty = after.length();
  } else {
    taken_dirty = CountDirty(taken);
    if (before.length() <= after.length()) {
      before_dirty = CountDirty(before);
      after_dirty = r.dirty - taken_dirty - before_dirty;
    } else {
      after_dirty = CountDirty(after);
      before_dirty = r.dirty - taken_dirty - after_dirty;
    }
  }
  ClearDirty(taken);
  Unlink(start);
  ClearEdges(start, r.length);
  uint32_t age_after = r.age_prev;
  if (at > start) {
    Link(start, at - start, before_dirty, before, r.freed_ms, age_after, /*age_at_tail=*/false);
    if (before_dirty != 0) age_after = start;
  }
  if (at + length < end) {
    Link(at + length, end - (at + length), after_dirty, after, r.freed_ms, age_after,
         /*age_at_tail=*/false);
  }
  return taken_dirty;
}

uint32_t ExtentMap::TakeFront(uint32_t start, uint32_t length) {
  return Carve(start, start, length);
}

uint32_t ExtentMap::FindFit(uint32_t length, uint32_t* extent_dirty, bool prefer_clean) const {
  if (length == 0) return kNone;
  // Within its own bin first (lengths up to 1/8 apart): an extent there
  // that fits leaves the least behind. Bounded: a long bin of extents just
  // too short is not walked.
  uint32_t start = kNone;
  const int own = BinOf(length);
  const int fitting = FirstFittingBin(length);
  if (own != fitting) {
    int looked = 0;
    for (uint32_t s = bin_head_[own]; s != kNone && looked < 16; s = records_[s].bin_next) {
      looked++;
      if (records_[s].length >= length) {
        start = s;
        break;
      }
    }
  }
  if (start == kNone) {
    const int bin = fitting < kBins ? FirstBinFrom(bin_bits_, fitting) : -1;
    if (bin < 0) return kNone;
    start = prefer_clean ? bin_tail_[bin] : bin_head_[bin];
  }
  // Resident pages (for calloc, pages that read zero) from a bigger extent
  // before the best-sized one without: pages faulted in cost more than
  // the split. (With one big chunk, the rest of its pages never touched,
  // ring2's 0.25-6 MB buffers faulted 240K -> 460K times, size first.)
  if ((records_[start].dirty == 0) != prefer_clean && fitting < kBins) {
    const int bin = FirstBinFrom(prefer_clean ? clean_bin_bits_ : dirty_bin_bits_, fitting);
    if (bin >= 0) start = prefer_clean ? bin_tail_[bin] : bin_head_[bin];
  }
  *extent_dirty = records_[start].dirty;
  return start;
}

uint32_t ExtentMap::AllocateAt(uint32_t start, uint32_t length) {
  const PageRecord& r = records_[start];
  if (r.kind != kFree || !(r.edges & kFirstPage) || r.length < length || length == 0) Broken();
  const uint32_t taken_dirty = TakeFront(start, length);
  MarkExtent(start, length, kAllocated);
  allocated_pages_ += length;
  return taken_dirty;
}

uint32_t ExtentMap::AllocateIn(uint32_t start, uint32_t length, bool prefer_clean,
                               uint32_t* dirty, uint32_t room, uint32_t align) {
  const PageRecord& r = records_[start];
  if (r.kind != kFree || !(r.edges & kFirstPage) || r.length < length || length == 0 ||
      align == 0 || (align & (align - 1)) != 0) {
    Broken();
  }
  const uint32_t end = start + r.length;
  if (room < length) room = length;
  if (room > r.length) room = r.length;
  const Span span = DirtySpanOf(start);
  uint32_t at = start;
  if (!span.empty()) {
    if (!prefer_clean) {
      // On its resident pages: from the span's start, or as far in as the
      // room allows.
      at = span.first <= end - room ? span.first : end - room;
    } else if (span.first - start < room) {
      // Clean pages after the span if not enough lie before it, else a
      // clean run within it (a merged span may reach over clean pages):
      // clearing its dirty ones would fault in any the program never
      // touched (50 tables of 4 MB calloc'd in rounds, 5% written: the
      // span of the chunk's one free extent reached from its front to its
      // end, and 25 -> 198 MB).
      if (end - span.end >= room) {
        at = span.end;
      } else {
        const uint32_t run = CleanRun(Span{start, end}, room);
        if (run != kNone) at = run;
      }
    }
  }
  if (align > 1) {
    // The first aligned page from there if the block fits after it, else
    // the extent's first (the caller's fit allowed for it).
    const auto align_up = [align](uint32_t page) { return (page + align - 1) & ~(align - 1); };
    at = align_up(at) + length <= end ? align_up(at) : align_up(start);
    if (at + length > end) Broken();
  }
  *dirty = Carve(start, at, length);
  MarkExtent(at, length, kAllocated);
  allocated_pages_ += length;
  return at;
}

uint32_t ExtentMap::Allocate(uint32_t length, uint32_t* dirty) {
  uint32_t extent_dirty;
  const uint32_t start = FindFit(length, &extent_dirty);
  if (start == kNone) return kNone;
  const uint32_t taken_dirty = AllocateAt(start, length);
  if (dirty != nullptr) *dirty = taken_dirty;
  return start;
}

void ExtentMap::Free(uint32_t start, uint32_t now_ms, bool dirty) {
  const uint32_t length = AllocatedLength(start);
  if (length == 0) Broken();
  ClearEdges(start, length);
  allocated_pages_ -= length;
  Release(start, length, dirty, now_ms);
}

bool ExtentMap::InsideAllocated(uint32_t page) const {
  if (page >= pages_) return false;
  // Interior pages' records are zero: the first record at or before `page`
  // is its extent's first page, or its last (then `page` is that last page).
  uint32_t at = page;
  while (at > 0 && records_[at].kind == 0) at--;
  const PageRecord& r = records_[at];
  if (r.kind != kAllocated) return false;
  if (at == page) return !(r.edges & kFirstPage);
  return (r.edges & kFirstPage) && page < at + r.length;
}

bool ExtentMap::Resize(uint32_t start, uint32_t length, uint32_t now_ms, uint32_t* dirty) {
  const uint32_t old = AllocatedLength(start);
  if (old == 0 || length == 0) Broken();
  if (dirty != nullptr) *dirty = 0;
  if (length == old) return true;
  if (length < old) {
    ClearEdges(start, old);
    MarkExtent(start, length, kAllocated);
    allocated_pages_ -= old - length;
    Release(start + length, old - length, true, now_ms);
    return true;
  }
  const uint32_t next = start + old;
  const uint32_t more = length - old;
  if (next >= pages_ || records_[next].kind != kFree || records_[next].length < more) {
    return false;
  }
  const uint32_t taken_dirty = TakeFront(next, more);
  ClearEdges(start, old);
  MarkExtent(start, length, kAllocated);
  allocated_pages_ += more;
  if (dirty != nullptr) *dirty = taken_dirty;
  return true;
}

uint32_t ExtentMap::CarveForPurge(uint32_t start, uint32_t at, uint32_t length) {
  const uint32_t dirty = Carve(start, at, length);
  // Neither free (no merge may take it) nor allocated (no free may).
  MarkExtent(at, length, kPurging);
  return dirty;
}

bool ExtentMap::BeginPurge(uint32_t now_ms, uint32_t wait_ms, uint32_t* start,
                           uint32_t* length, uint32_t max_length, uint32_t* dirty) {
  const uint32_t oldest = age_head_;
  if (oldest == kNone || now_ms - records_[oldest].freed_ms < wait_ms || max_length == 0) {
    return false;
  }
  // From the front of its dirty span, the pages that hold `max_length` of
  // its dirty ones (all of them if it has no more). Its pages before that
  // span are clean and stay free, clean; those after it stay free with
  // their age.
  const PageRecord r = records_[oldest];
  const Span span = DirtySpanOf(oldest);
  const uint32_t n =
      (max_length >= r.dirty ? span.end : PastDirty(span, max_length)) - span.first;
  const uint32_t taken_dirty = CarveForPurge(oldest, span.first, n);
  if (dirty != nullptr) *dirty = taken_dirty;
  *start = span.first;
  *length = n;
  return true;
}

bool ExtentMap::BeginPurgeWindow(uint32_t window, const uint64_t* candidates, uint32_t* start,
                                 uint32_t now_ms, uint32_t min_age_ms) {
  if (window == 0) return false;
  int looked = 0;
  for (uint32_t e = age_head_; e != kNone && looked < 8; e = records_[e].age_next, looked++) {
    if (now_ms - records_[e].freed_ms < min_age_ms) break;  // (the rest are younger)
    const uint64_t end = uint64_t{e} + records_[e].length;
    const Span span = DirtySpanOf(e);
    for (uint64_t w = (uint64_t{e} + window - 1) / window; (w + 1) * window <= end; w++) {
      if ((candidates[w / 64] >> (w % 64) & 1) == 0) continue;
      if ((w + 1) * window <= span.first || w * window >= span.end) continue;  // reads zero
      const uint32_t at = static_cast<uint32_t>(w * window);
      CarveForPurge(e, at, window);
      *start = at;
      return true;
    }
  }
  return false;
}

bool ExtentMap::BeginPurgeExactly(uint32_t at, uint32_t length) {
  if (length == 0 || at >= pages_ || length > pages_ - at) return false;
  uint32_t extent = kNone;
  const PageRecord& first = records_[at];
  const PageRecord& last = records_[at + length - 1];
  if (first.kind == kFree && (first.edges & kFirstPage) && first.length >= length) {
    extent = at;
  } else if (last.kind == kFree && (last.edges & kLastPage) && last.length >= length) {
    extent = at + length - last.length;
  }
  if (extent == kNone) return false;
  CarveForPurge(extent, at, length);
  return true;
}

void ExtentMap::EndPurge(uint32_t start, uint32_t length, uint32_t now_ms, bool given_back) {
  const PageRecord& r = records_[start];
  if (r.kind != kPurging || r.length != length || !(r.edges & kFirstPage)) Broken();
  ClearEdges(start, length);
  Release(start, length, !given_back, now_ms);
}

void ExtentMap::MakeHole(uint32_t start) {
  const PageRecord& r = records_[start];
  if (r.kind != kFree || !(r.edges & kFirstPage)) Broken();
  const uint32_t length = r.length;
  ClearDirty(DirtySpanOf(start));  // (its pages go)
  Unlink(start);
  ClearEdges(start, length);
  MarkExtent(start, length, kHole);
}

void ExtentMap::FillHole(uint32_t start, uint32_t now_ms) {
  const PageRecord& r = records_[start];
  if (r.kind != kHole || !(r.edges & kFirstPage)) Broken();
  const uint32_t length = r.length;
  ClearEdges(start, length);
  Release(start, length, false, now_ms);
}

bool ExtentMap::OldestDirtyAge(uint32_t now_ms, uint32_t* age_ms) const {
  if (age_head_ == kNone) return false;
  *age_ms = now_ms - records_[age_head_].freed_ms;
  return true;
}

void ExtentMap::CheckInvariantsForTesting() const {
  uint64_t free_pages = 0, dirty_pages = 0, allocated_pages = 0, free_extents = 0;
  bool previous_free = false;
  for (uint32_t p = 0; p < pages_;) {
    const PageRecord& r = records_[p];
    if (r.kind == 0) {  // not added yet
      if (CountDirty(Span{p, p + 1}) != 0) Broken();
      previous_free = false;
      p++;
      continue;
    }
    if (!(r.edges & kFirstPage) || r.length == 0 || r.length > pages_ - p) Broken();
    const uint32_t last = p + r.length - 1;
    const PageRecord& l = records_[last];
    if (l.kind != r.kind || l.length != r.length || !(l.edges & kLastPage)) Broken();
    if ((r.length == 1) != ((r.edges & kLastPage) != 0)) Broken();
    for (uint32_t q = p + 1; q < last; q++) {
      if (records_[q].kind != 0 || records_[q].length != 0) Broken();
    }
    if (r.kind == kFree) {
      if (previous_free) Broken();  // two free extents side by side
      if (r.dirty > r.length) Broken();
      if (r.dirty != 0) {  // its dirty span: within it, holding every dirty bit
        const Span span = DirtySpanOf(p);
        if (span.first < p || span.end > p + r.length || CountDirty(span) != r.dirty) Broken();
      }
      if (CountDirty(Span{p, p + r.length}) != r.dirty) Broken();  // its count: its bits
      free_pages += r.length;
      dirty_pages += r.dirty;
      free_extents++;
      // On its bin's list.
      const int bin = BinOf(r.length);
      if (!(bin_bits_[bin / 64] >> (bin % 64) & 1)) Broken();
      if ((r.bin_prev == kNone) != (bin_head_[bin] == p)) Broken();
      if ((r.bin_next == kNone) != (bin_tail_[bin] == p)) Broken();
      if (r.bin_next != kNone && records_[r.bin_next].bin_prev != p) Broken();
    } else if (r.kind == kAllocated) {
      allocated_pages += r.length;
    }
    if (r.kind != kFree && CountDirty(Span{p, p + r.length}) != 0) Broken();  // bits: free only
    previous_free = r.kind == kFree;
    p = last + 1;
  }
  if (free_pages != free_pages_ || dirty_pages != dirty_pages_ ||
      allocated_pages != allocated_pages_) {
    Broken();
  }
  // The bins hold exactly the free extents, dirty ones in front.
  uint64_t binned = 0;
  for (int bin = 0; bin < kBins; bin++) {
    const auto bit = [bin](const uint64_t (&bits)[kBinWords]) {
      return (bits[bin / 64] >> (bin % 64) & 1) != 0;
    };
    if (bit(bin_bits_) != (bin_head_[bin] != kNone)) Broken();
    bool seen_clean = false, seen_dirty = false;
    for (uint32_t s = bin_head_[bin]; s != kNone; s = records_[s].bin_next) {
      if (records_[s].kind != kFree || BinOf(records_[s].length) != bin) Broken();
      if (records_[s].dirty == 0) seen_clean = true;
      else if (seen_clean) Broken();
      else seen_dirty = true;
      if (++binned > free_extents) Broken();
    }
    if (bit(dirty_bin_bits_) != seen_dirty || bit(clean_bin_bits_) != seen_clean) Broken();
  }
  if (binned != free_extents) Broken();
  // The age list: exactly the dirty free extents, oldest first.
  uint64_t aged = 0, dirty_extents = 0;
  for (uint32_t p = 0; p < pages_; p++) {
    if (records_[p].kind == kFree && (records_[p].edges & kFirstPage) && records_[p].dirty != 0) {
      dirty_extents++;
    }
  }
  uint32_t previous = kNone;
  for (uint32_t s = age_head_; s != kNone; s = records_[s].age_next) {
    const PageRecord& r = records_[s];
    if (r.kind != kFree || r.dirty == 0 || r.age_prev != previous) Broken();
    if (previous != kNone && Later(records_[previous].freed_ms, r.freed_ms)) Broken();
    previous = s;
    if (++aged > dirty_extents) Broken();
  }
  if (aged != dirty_extents || age_tail_ != previous) Broken();
}

}  // namespace hakmem
