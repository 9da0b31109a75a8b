#include "hakmem/tiny/heap.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#if defined(__SSE2__) && defined(__x86_64__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <new>

#include "hakmem/config.h"
#include "hakmem/registry/registry.h"
#include "hakmem/superslab/slab_pool.h"
#include "hakmem/tiny/tiny_alloc.h"
#include "hakmem/tiny/transfer_cache.h"

namespace hakmem {

Slab kEmptySlab{};
// Constant-initialized: the first malloc may come from another library's
// constructor, before any of ours has run. Page-aligned: every class's pop
// reads its heads and slot 0 of row 0, one page (never written).
alignas(4096) HAKMEM_BIG_BSS Heap kEmptyHeap;
static_assert((Heap(), true), "Heap() must stay a constant expression");
__thread Heap* tl_heap __attribute__((tls_model("initial-exec"))) = &kEmptyHeap;
HAKMEM_STARTUP_DATA uint64_t g_free_key = 0;

namespace {

// ---- Heap pool: heaps are made once and recycled across threads ------------
pthread_mutex_t g_pool_lock = PTHREAD_MUTEX_INITIALIZER;
// Abandoned heaps, waiting for a thread. Written under the lock; stored
// atomically because ReclaimAbandonedHeaps looks without it.
Heap* g_pool = nullptr;
// Whether a pooled heap may hold blocks on its queue that no reclaim has
// drained: set by a thread that pushes onto the queue of a heap it sees
// pooled and does not drain it itself (FlushOutgoing, FreeRemote), and by
// a pooling that finds the heap's queue not empty once its state says
// pooled (the queue's seq_cst push and EmptyOrdered against the state's
// seq_cst store and load: one side sees the other). ReclaimAbandonedHeaps
// walks the pool only then, or for a trim: at every slab pool miss, a walk
// of thousands of pooled heaps made a burst of threads quadratic (2,000
// threads at once; a helper's hunt, session 37).
std::atomic<bool> g_pooled_queue_pending{false};
Heap* g_all_heaps = nullptr;     // every heap ever made
uint64_t g_heaps_created = 0;
uint64_t g_heaps_pooled = 0;
uint64_t g_heaps_leaked = 0;  // in a fork child (HeapState::kLeaked)
uint64_t g_heaps_of_dead_threads = 0;  // see PoolHeapsOfDeadThreads
// Heap storage: a few static heaps, then mapped chunks of them.
// (Raw zeroed storage, bss: each Heap is 69 KiB, mostly bin rows that stay
// untouched until their class is used.)
constexpr int kStaticHeaps = 4;
// Page-aligned, as the mapped ones: a heap's first page holds its fields
// and slot 0 of row 0, which every dormant bin's pop reads (BinDormant).
constexpr size_t kHeapStep = (sizeof(Heap) + platform::kPageSize - 1) & ~(platform::kPageSize - 1);
// (2,944 today, the slab lists being past the rows.)
static_assert(offsetof(Heap, bin_slots) + sizeof(Block*) <= platform::kPageSize,
              "slot 0 of row 0 shares the heads' page");
alignas(4096) HAKMEM_BIG_BSS char g_static_heaps[kStaticHeaps][kHeapStep];
int g_static_used = 0;
char* g_chunk = nullptr;
size_t g_chunk_left = 0;

HAKMEM_STARTUP_DATA pthread_key_t g_thread_key;

// Set once this thread's heap was handed back at thread exit. A later
// allocation (a TLS destructor of another library, in the last destructor
// round) is served from the orphan heap, under its lock: a new heap would
// never be handed back, as no destructor round is left to do it.
__thread bool tl_thread_exited __attribute__((tls_model("initial-exec"))) = false;
pthread_mutex_t g_orphan_lock = PTHREAD_MUTEX_INITIALIZER;
Heap* g_orphan = nullptr;
// Heaps listed as active (by thread id): written under the pool lock, read
// without it (see StartsShared).
uint32_t g_active_heaps = 0;
uint32_t g_shared_start_heaps_for_testing = 0;  // atomic access; 0: kSharedStartHeaps
HAKMEM_STARTUP_DATA pthread_mutex_t g_init_lock = PTHREAD_MUTEX_INITIALIZER;
HAKMEM_STARTUP_DATA bool g_initialized = false;

void OnThreadExit(void* heap);

// Marks a slow path of `h`'s thread (see Heap::beat).
inline void Beat(Heap* h) { __atomic_store_n(&h->beat, h->beat + 1, __ATOMIC_RELAXED); }

// Adds `n` to one of `h`'s counters (see HeapCounters): written by one
// thread at a time, read by the stats at any time.
inline void Count(uint64_t& counter, uint64_t n = 1) {
  __atomic_store_n(&counter, counter + n, __ATOMIC_RELAXED);
}

// The bytes by which `h`'s bins of class `c`'s kind (big or small; mid
// bins do not grow) have grown past their starting limits.
uint64_t& BinsGrownOf(Heap* h, int c) {
  return c >= kFirstBigClass ? h->big_bins_grown : h->small_bins_grown;
}

// Moves class `c`'s bin (a small class's) to the row that `limit` needs:
// its wide row past kBinMaxBlocks (mapping the heap's wide rows at the
// first such growth), back to its own row once limit and blocks fit there.
// Returns the limit its row allows (kBinMaxBlocks if the mapping failed).
uint32_t PlaceBin(Heap* h, int c, uint32_t limit) {
  const uint32_t n = BinCount(h, c);
  const bool wide = limit > kBinMaxBlocks || n > kBinMaxBlocks;
  if (wide == h->bin_wide[c]) return limit;
  if (wide && h->wide_rows == nullptr) {
    // A mapping that failed is tried again after the next upkeep, not at
    // every swing (a review: 4,569 failed mmap calls in one run). None
    // where mappings are scarce: under mlockall(MCL_FUTURE) the 1.2 MiB
    // would be faulted in and locked whole, for each heap.
    if (h->wide_rows_refused || platform::MappingsScarce()) {
      return kBinMaxBlocks;  // (n fits: the bin is not wide)
    }
    h->wide_rows = static_cast<Block**>(platform::MapSparse(kWideRowsBytes));
    if (h->wide_rows == nullptr) {
      h->wide_rows_refused = true;
      return kBinMaxBlocks;
    }
  }
  Block* const* const from = BinSlot(h, c, 1);
  h->bin_wide[c] = wide;
  if (wide) h->wide_rows_used = true;
  // The blocks, then the top: a fork child finds the bin in either row.
  memcpy(BinSlot(h, c, 1), from, n * sizeof(Block*));
  SetBinCount(h, c, n);
  return limit;
}

// All heaps' small_bins_grown, summed (see kAllHeapsSmallBinGrowthBudget).
uint64_t g_small_bins_grown = 0;  // atomic access

// Sets class `c`'s bin limit, counting its growth past BinLimitOf(c).
void SetGrownBinLimit(Heap* h, int c, uint32_t limit) {
  const uint32_t start = BinLimitOf(c), old = BinLimit(h, c);
  if (c < kFirstMidClass) limit = PlaceBin(h, c, limit);  // (its end set below)
  uint64_t& grown = BinsGrownOf(h, c);
  const uint64_t before = grown;
  if (old > start) grown -= uint64_t{old - start} * ClassSizeOf(c);
  if (limit > start) grown += uint64_t{limit - start} * ClassSizeOf(c);
  if (c < kFirstBigClass && grown != before) {
    __atomic_add_fetch(&g_small_bins_grown, grown - before, __ATOMIC_RELAXED);  // (mod 2^64)
  }
  SetBinLimit(h, c, limit);
}

// A bin's limit and refill size as a new heap starts them.
void ResetBinSizing(Heap* h, int c) {
  SetGrownBinLimit(h, c, BinLimitOf(c));
  h->bin_refill[c] = FirstRefillOf(c);
  h->bin_overflowed[c] = false;
  h->bin_forwards[c] = 0;
}

// A class a heap has not used yet has a dormant bin: top and end 0 (slot
// 0 of row 0, null, as in kEmptyHeap), so both fast paths go slow, and the
// first of them wakes it. So a class's row is first touched by the refill's
// stores: one page fault for the row's page, not a read fault (the pop's
// look at a row never touched maps the zero page) and then a write fault
// (the one-malloc start-up program: 4 of its classes, 4 faults fewer).
// And it takes the next row then (AssignBinRow): a heap's rows are in the
// order its classes were first used, four to a page, the first beside its
// fields. By class, the few classes a thread uses lay a page apart:
// tests/findings/hunt37/manythreads.c (2,000 threads, each using 14 classes
// of 16 B-128 KiB), one round: 51.8K -> 35.8K page faults and peak RSS 208
// -> 144 MB, 8 pages fewer a heap.
inline bool BinDormant(const Heap* h, int c) { return h->bin_end[c] == 0; }
void WakeBin(Heap* h, int c) {
  SetBinCount(h, c, 0);
  ResetBinSizing(h, c);
}

// Doubles class `c`'s bin limit, up to `most`, if the heap's budget for
// bins of its kind allows; a bin fills its own row before it goes wide (the
// phase9 lane's start-up swing then maps no wide rows: its process had
// made one mmap more than mimalloc's).
void GrowBin(Heap* h, int c, uint32_t most, uint64_t budget) {
  const uint32_t limit = BinLimit(h, c);
  uint32_t wanted = limit * 2 < most ? limit * 2 : most;
  if (limit < kBinMaxBlocks && wanted > kBinMaxBlocks) wanted = kBinMaxBlocks;
  if (wanted <= limit) return;
  const uint64_t more = uint64_t{wanted - limit} * ClassSizeOf(c);
  if (BinsGrownOf(h, c) + more > budget) return;
  if (c < kFirstBigClass && __atomic_load_n(&g_small_bins_grown, __ATOMIC_RELAXED) + more >
                                kAllHeapsSmallBinGrowthBudget) {
    return;
  }
  SetGrownBinLimit(h, c, wanted);
}

// Pool lock held.
Heap* NewHeapLocked() {
  void* mem;
  if (g_static_used < kStaticHeaps) {
    mem = g_static_heaps[g_static_used++];
  } else {
    constexpr size_t kChunk = 256 * 1024;  // a few heaps; pages touched as used
    if (g_chunk_left < sizeof(Heap)) {
      g_chunk = static_cast<char*>(platform::MapSparse(kChunk));
      if (g_chunk == nullptr) return nullptr;
      g_chunk_left = kChunk;
    }
    mem = g_chunk;
    g_chunk += kHeapStep;
    g_chunk_left = g_chunk_left >= kHeapStep ? g_chunk_left - kHeapStep : 0;
  }
  Heap* h = new (mem) Heap(ZeroedMemory{});
  h->free_key = HeapFreeKey(g_heaps_created + 1);  // its bins are dormant (BinDormant)
  for (int c = 0; c < kNumClasses; c++) h->bin_words[c] = StoredKey(BinKey(h, c));
  h->all_next = g_all_heaps;
  g_all_heaps = h;
  // Read by TinyUpkeep and KeyBitsMarkFree.
  __atomic_store_n(&g_heaps_created, g_heaps_created + 1, __ATOMIC_RELAXED);
  return h;
}

// Every heap's slabs come from here (see slab_pool.h).
SlabPool g_slab_pool;
static_assert((SlabPool(), true), "SlabPool() must stay a constant expression");
// Every class's SuperSlabs have a shape list in the cache (see SuperSlabAcquire).
static_assert(SuperSlabShapeOf(kBigSlabShift, kNumClasses - 1) < kRegionShapes &&
                  SuperSlabShapeOf(kMidSlabShift, 0) < kRegionShapes,
              "a SuperSlab shape without a list");

// `give_back_big_blocks`: also the pages of their free big blocks and of
// their bin rows (a trim).
void ReclaimAbandonedHeaps(bool give_back_big_blocks = false);
void ReclaimHeapLocked(Heap* h);
void DrainPooledHeapLocked(Heap* h);
void NotePooledQueue(const Heap* h);

// The slab shift of every SuperSlab whose slabs hold class `size_class`.
constexpr int SlabShiftOfClass(int size_class) {
  return size_class >= kFirstBigClass   ? kBigSlabShift
         : size_class >= kFirstMidClass ? kMidSlabShift
                                        : kSmallSlabShift;
}

Slab* NewSlab(Heap* h, int size_class) {
  const int shift = SlabShiftOfClass(size_class);
  const uint32_t size = ClassSizeOf(size_class);
  if (Slab* s = g_slab_pool.Take(size_class, size, shift, h, /*may_map=*/false)) return s;
  // Exited threads' heaps may hold slabs that would come back empty.
  ReclaimAbandonedHeaps();
  return g_slab_pool.Take(size_class, size, shift, h, /*may_map=*/true);
}

[[noreturn]] void ReportDoubleFreeInBins(const Block* b) {
  platform::ReportAndAbort("free(): double free", b,
                           "a block was freed twice (found twice in bins or lists)");
}

// A slab whose count says "all free" must have every carved block on its
// list: each carries the list key. A block freed twice that the fast path
// let through (it only catches the immediate one) leaves another block
// counted free but not listed: still live, in a bin (any heap's: it has
// that bin's key) or on a queue. It is reported before the slab can be
// reused for anything else. A scan by address, not a walk of the list: its
// loads do not wait for each other (the walk was 12% of a 16 B build and
// tear-down). From the top down: the blocks freed last first, a little
// faster on 64 B tear-downs than bottom up.
void CheckEmptySlab(const Slab* s) {
  const size_t size = InfoOf(s)->block_size;
  const uintptr_t start = SlabStart(s);
  const uintptr_t end = start + SlabCarved(s) * size;
  const uint64_t list_word = StoredKey(g_free_key);  // compared as stored: no multiply a block
  uintptr_t at = end;
  uint64_t bad = 0;
#if defined(__SSE2__) && defined(__x86_64__)
  // Four blocks a step, two to an SSE2 register: each block's key word XOR
  // its address XOR the list word, ORed together, the same check as the
  // loop below in about 4.6 instructions a block instead of 7 (callgrind,
  // session 37).
  const __m128i lw = _mm_set1_epi64x(static_cast<long long>(list_word));
  const __m128i step2 = _mm_set1_epi64x(static_cast<long long>(2 * size));
  __m128i acc = _mm_setzero_si128();
  if (at - start >= 4 * size) {
    // Lanes: the blocks at `at - size` and `at - 2 * size`, then 2 below.
    __m128i addr_hi = _mm_set_epi64x(static_cast<long long>(at - 2 * size),
                                     static_cast<long long>(at - size));
    __m128i addr_lo = _mm_sub_epi64(addr_hi, step2);
    const __m128i step4 = _mm_add_epi64(step2, step2);
    const ptrdiff_t key = offsetof(Block, key), sz = static_cast<ptrdiff_t>(size);
    const ptrdiff_t o1 = key - sz, o2 = key - 2 * sz, o3 = key - 3 * sz, o4 = key - 4 * sz;
    const uintptr_t stop = start + 4 * size;
    do {
      const char* const a = reinterpret_cast<const char*>(at);
      __m128i k_hi = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(a + o1));
      __m128i k_lo = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(a + o3));
      k_hi = _mm_castpd_si128(
          _mm_loadh_pd(_mm_castsi128_pd(k_hi), reinterpret_cast<const double*>(a + o2)));
      k_lo = _mm_castpd_si128(
          _mm_loadh_pd(_mm_castsi128_pd(k_lo), reinterpret_cast<const double*>(a + o4)));
      acc = _mm_or_si128(acc, _mm_xor_si128(_mm_xor_si128(k_hi, addr_hi), lw));
      acc = _mm_or_si128(acc, _mm_xor_si128(_mm_xor_si128(k_lo, addr_lo), lw));
      addr_hi = _mm_sub_epi64(addr_hi, step4);
      addr_lo = _mm_sub_epi64(addr_lo, step4);
      at -= 4 * size;
    } while (at >= stop);
  }
  bad = static_cast<uint64_t>(_mm_cvtsi128_si64(_mm_or_si128(acc, _mm_unpackhi_epi64(acc, acc))));
#endif
  while (at > start) {
    at -= size;
    bad |= KeyWord(reinterpret_cast<const Block*>(at)) ^ list_word;
  }
  if (HAKMEM_LIKELY(bad == 0)) return;
  for (uintptr_t block = start; block < end; block += size) {
    if (KeyOf(reinterpret_cast<const Block*>(block)) != g_free_key) {
      platform::ReportAndAbort("free(): double free", reinterpret_cast<const Block*>(block),
                               "a block was freed twice (its slab counts it free, but it is "
                               "not on the slab's list)");
    }
  }
}

// ---- Emptied slabs ----------------------------------------------------------
// A slab whose count reaches 0 goes back to the slab pool (its SuperSlab
// perhaps to the cache, or unmapped at once if the cache keeps none). A
// copy of a block freed twice may still wait on the owner's queue, or
// further on in the batch of frees that emptied the slab (a flush's
// blocks, a drain's chain); its key is checked when it is reached, but in
// unmapped memory that read would crash instead of reporting the double
// free. So the slabs that a batch of frees empties wait on this thread's
// list until the outermost batch is over (EndFreeBatch), and each goes
// back after a drain of its owner's queue. (Batches do not outlive a lock
// they run under: a flush ends its batch before it lets the pool lock go,
// and FlushOutgoing does not reclaim a pooled heap inside one.) A copy in
// another thread's bin or outgoing batch, or in the transfer cache, is not
// covered here: an evicted SuperSlab keeps its address space, its pages
// reading zero, so that copy's key check reports it when it leaves (see
// superslab.cc, retained address space); where retention is off or was
// undone, it crashes then (tests/FINDINGS.md, F12).
__thread Slab* tl_emptied_slabs __attribute__((tls_model("initial-exec"))) = nullptr;
__thread uint32_t tl_free_batches __attribute__((tls_model("initial-exec"))) = 0;

void DrainRemote(Heap* h);

inline Heap* OwnerOfSlab(const Slab* s) {
  return static_cast<Heap*>(const_cast<void*>(InfoOf(s)->owner));
}

// Gives `s`, a slab of `owner` whose count reached 0 and which is on no
// list, back to the slab pool, after a drain of `owner`'s queue and the
// checks.
void ReturnEmptySlab(Heap* owner, Slab* s) {
  if (!owner->remote.Empty()) DrainRemote(owner);
  CheckEmptySlab(s);
  g_slab_pool.Return(s);
}

inline void BeginFreeBatch() { tl_free_batches++; }
void EndFreeBatch() {
  if (tl_free_batches > 1) {
    tl_free_batches--;
    return;
  }
  // Still counted as a batch meanwhile: slabs that the drains below empty
  // join the list.
  while (Slab* s = tl_emptied_slabs) {
    tl_emptied_slabs = s->next;
    ReturnEmptySlab(OwnerOfSlab(s), s);
  }
  tl_free_batches = 0;
}

// Makes `s` (a real slab or kEmptySlab) the current slab of class `c`.
void SetCurrent(Heap* h, int c, Slab* s) {
  Slab*& slot = h->current[c];
  if (slot != &kEmptySlab) slot->role = kSlabDetached;
  if (s != &kEmptySlab) s->role = kSlabCurrent;
  slot = s;
}

// Returns the current slabs that are empty. Run by the time-gated upkeep
// (at most every 100 ms), so a class that keeps emptying and refilling its
// slab does not churn.
void CollectRetired(Heap* h) {
  for (int c = 0; c < kNumClasses; c++) {
    Slab* s = h->current[c];
    if (s == &kEmptySlab || s->used != 0) continue;
    SetCurrent(h, c, &kEmptySlab);
    ReturnEmptySlab(h, s);
  }
}

// Gives up every current slab of `h`, whose thread exits: an empty one goes
// back to the slab pool, the others onto the lists, as for any slab not
// current. So a slab of a pooled heap that empties later (freed into by
// other threads' flushes, see MayFreeIntoPooled) goes back at once, not
// at the next reclaim.
void GiveUpCurrentSlabs(Heap* h) {
  for (int c = 0; c < kNumClasses; c++) {
    Slab* s = h->current[c];
    if (s == &kEmptySlab) continue;
    SetCurrent(h, c, &kEmptySlab);
    if (s->used == 0) {
      ReturnEmptySlab(h, s);
    } else if (s->free != nullptr) {
      h->partial[c].Push(s);
      s->role = kSlabPartial;
    } else if (SlabCanCarve(s)) {
      h->carvable[c].Push(s);
      s->role = kSlabCarvable;
    }
  }
}

// ---- Idle big blocks ------------------------------------------------------
// A big slab (40-256 KiB blocks, one per SuperSlab) that keeps one block in
// use keeps the pages of all its free ones: freeing all but one block in 64
// of 2,048 left 60-68 MiB resident instead of 5-11 (as regions of their
// own, before session 12). So the pages of free big blocks that stay on
// their slabs' lists go back: the owner's upkeep (every 100 ms) marks
// the blocks it finds listed, and gives back the pages of those it finds
// again, marked, at a later upkeep (listed for at least 100 ms: a program
// that churns blocks does not fault them in again at once); a trim gives
// back all of them. The block's first page stays: its list link, key and
// mark. (The mark is a word past Block, which malloc does not clear: a
// block handed out and freed again may keep it and lose its pages one
// upkeep early, which costs a fault, nothing else. A remote free writes its
// look-ahead there (RemoteBlock), which reads as no mark. TakeFromSlabs
// clears the marks, so a block reused is looked at again.) The walk is not
// bounded by a budget: one pointer per free big block listed, every 100 ms.
// It checks each block's list key before it touches the block, and takes at
// most as many steps as the slab has carved blocks: a list head freed again
// can come back onto its list under other blocks (FlushBin compares the
// head's address only; a remote free's drain likewise), which makes a
// cycle, and a copy of it may be handed out while it is still listed.
// Reported here, not walked forever nor given back under the program.
// The mark is kept XOR the block's address, as the key (see KeyOf): a
// mark the program copied elsewhere as indeterminate bytes (a big block's
// memory carved again for smaller blocks) means nothing at its new
// address; a discarded one there had calloc skip clearing a block whose
// pages were never given back (tests/FINDINGS.md F20).
struct BigBlockMark {
  Block block;
  uint64_t mark;
  uint64_t Get() const { return mark ^ reinterpret_cast<uintptr_t>(this); }
  void Set(uint64_t m) { mark = m ^ reinterpret_cast<uintptr_t>(this); }
};
inline uint64_t SeenMark() { return g_free_key ^ 0x5eea; }
inline uint64_t DiscardedMark() { return g_free_key ^ 0xd15c; }  // they read zero
// The kernel refused them (locked memory: see platform::DiscardPages): not
// tried again, and not zero.
inline uint64_t KeptMark() { return g_free_key ^ 0x6e9b; }
// At most this many blocks' pages go back per upkeep (a trim: all): up to
// 64 MiB of madvise in one slow path.
constexpr int kDiscardBlocksPerUpkeep = 256;

// The listed blocks of `s` (blocks of `size` bytes); `*budget` counts the
// blocks whose pages go back.
void DiscardListedBigBlocks(Slab* s, uint32_t size, bool now, int* budget) {
  uint32_t steps_left = SlabCarved(s);
  for (Block* b = s->free; b != nullptr && *budget > 0; b = b->next) {
    if (KeyOf(b) != g_free_key || steps_left-- == 0) ReportDoubleFreeInBins(b);
    BigBlockMark* const marked = reinterpret_cast<BigBlockMark*>(b);
    const uint64_t mark = marked->Get();
    if (mark == DiscardedMark() || mark == KeptMark()) continue;
    if (!now && mark != SeenMark()) {
      marked->Set(SeenMark());
      continue;
    }
    --*budget;
    const uintptr_t at = reinterpret_cast<uintptr_t>(b);
    const uintptr_t start = at + platform::kPageSize;  // big blocks are page-aligned
    const uintptr_t end = (at + size) & ~(platform::kPageSize - 1);
    const bool given_back =
        end <= start || platform::DiscardPages(reinterpret_cast<void*>(start), end - start);
    marked->Set(given_back ? DiscardedMark() : KeptMark());
  }
}

void DiscardIdleBigBlocks(Heap* h, bool now) {
  int budget = now ? INT32_MAX : kDiscardBlocksPerUpkeep;
  for (int c = kFirstBigClass; c < kNumClasses && budget > 0; c++) {
    const uint32_t size = ClassSizeOf(c);
    if (h->current[c] != &kEmptySlab) DiscardListedBigBlocks(h->current[c], size, now, &budget);
    for (Slab* s = h->partial[c].head; s != nullptr && budget > 0; s = s->next) {
      DiscardListedBigBlocks(s, size, now, &budget);
    }
  }
}

// Big blocks going from their slab to a bin, all keyed `bin_key`: `listed`
// of them off its list, then `carved` fresh ones. Unmarked (a SuperSlab
// from the cache may hold old marks), so that they are looked at again
// once listed again; and keyed as zero-tail (kZeroTailKeyBit) if their
// bytes past the first page read zero: a listed block whose pages were
// given back, a carved one at or past `zero_from` (see BigSlabZeroFrom).
void TakeBigBlocks(Block* const* blocks, uint32_t listed, uint32_t carved, uintptr_t zero_from,
                   uint64_t bin_key) {
  const uint64_t zero_tail_key = ZeroTailKey(bin_key);
  for (uint32_t i = 0; i < listed + carved; i++) {
    BigBlockMark* b = reinterpret_cast<BigBlockMark*>(blocks[i]);
    const bool tail_zero = i < listed ? b->Get() == DiscardedMark()
                                      : reinterpret_cast<uintptr_t>(b) >= zero_from;
    if (tail_zero) SetKey(&b->block, zero_tail_key);
    b->mark = 0;
  }
}

// What follows a local free into a slab that is not current: it became
// empty, or had no free block before.
HAKMEM_NOINLINE void AfterLocalFree(Heap* h, Slab* s) {
  const int c = InfoOf(s)->size_class;
  if (s->role == kSlabPartial && s->used != 0) return;
  if (s->role == kSlabPartial) h->partial[c].Remove(s);
  if (s->role == kSlabCarvable) h->carvable[c].Remove(s);
  if (s->used == 0) {
    s->role = kSlabDetached;
    // (Every caller runs inside a batch today: a flush, a drain, SendHome.)
    if (tl_free_batches != 0) {  // see EndFreeBatch
      s->next = tl_emptied_slabs;
      tl_emptied_slabs = s;
      return;
    }
    ReturnEmptySlab(h, s);
  } else {
    h->partial[c].Push(s);
    s->role = kSlabPartial;
  }
}

// Puts `n` blocks of `s`, linked from `first` to `last` and carrying the
// list key, on s's list, whose head is `head`. (The callers checked that
// none is the head.) Inline: the flush calls it per run, once per block
// where the program frees in no order.
HAKMEM_ALWAYS_INLINE void LocalFreeChain(Heap* h, Slab* s, Block* head, Block* first,
                                         Block* last, uint32_t n) {
  // More frees than blocks out: copies of one were in bins (or one in a
  // bin, one on this list).
  if (s->used < n) ReportDoubleFreeInBins(first);
  last->next = head;
  s->free = first;
  s->used -= n;
  if (HAKMEM_UNLIKELY((s->used == 0 || head == nullptr) && s->role != kSlabCurrent)) {
    AfterLocalFree(h, s);
  }
}

// Puts `b`, already carrying the list key, on s's list. (Inline in the
// drain of remote frees and in SendHome, which call it once a block: 8
// instructions a drained block less, remote90 under callgrind.)
HAKMEM_ALWAYS_INLINE void LocalFreeKeyed(Heap* h, Slab* s, Block* b) {
  if (b == s->free) ReportDoubleFreeInBins(b);  // it is on this list
  LocalFreeChain(h, s, s->free, b, b, 1);
}

HAKMEM_ALWAYS_INLINE void LocalFree(Heap* h, Slab* s, Block* b) {
  SetKey(b, g_free_key);
  LocalFreeKeyed(h, s, b);
}

// Whether block `b` has a word past Block for RemoteBlock::ahead (see
// RemoteBatch): blocks of 32 B and up.
constexpr bool HasLookAheadWord(uint32_t block_size) { return block_size > sizeof(Block); }
inline bool HasLookAheadWord(const Block* b) { return HasLookAheadWord(SlabInfoOf(b)->block_size); }

void DrainRemote(Heap* h) {
  Block* b = h->remote.TakeAll();
  const uint64_t remote_key = RemoteFreeKey();
  uint64_t drained = 0;
  BeginFreeBatch();
  while (b != nullptr) {
    drained++;
    // Checked before its link is followed: a block freed again by its owner
    // while it waited here has a local link and the local key.
    if (KeyOf(b) != remote_key) {
      platform::ReportAndAbort("free(): double free", b,
                               "a block freed by another thread was freed again");
    }
    // And it is still a block of ours: a copy of a block freed twice may
    // have waited here while its SuperSlab was evicted and made again, and
    // the block freed to another heap since (its link is that heap's
    // chain). The same line as the block size below.
    const SlabInfo* info = SlabInfoOf(b);
    if (HAKMEM_UNLIKELY(__atomic_load_n(&info->owner, __ATOMIC_RELAXED) != h ||
                        !IsBlockStart(info, b))) {
      platform::ReportAndAbort("free(): double free", b,
                               "a block freed by another thread was freed again (it is no "
                               "longer a block of the heap it was queued for)");
    }
    if (HasLookAheadWord(info->block_size)) {
      platform::Prefetch(reinterpret_cast<RemoteBlock*>(b)->ahead);
    }
    Block* next = b->next;
    LocalFree(h, SlabOf(b), b);
    b = next;
  }
  EndFreeBatch();
  Count(h->counters.blocks_drained, drained);
}

// Lets go of the shared (orphan) heap's lock. A pusher whose try-lock
// failed while it was held left its blocks on the queue (see FlushOutgoing):
// looked at after the unlock, and drained if the lock can be had again
// (else its new holder looks in turn). PushChain and EmptyOrdered are
// seq_cst: the pusher's try comes after its push.
void UnlockShared(Heap* shared) {
  for (;;) {
    platform::UnlockMutex(&g_orphan_lock);
    if (shared == nullptr || tl_free_batches != 0 || shared->remote.EmptyOrdered()) return;
    if (platform::TryLockMutex(&g_orphan_lock) != 0) return;
    DrainRemote(shared);
  }
}

// Pushes the batch of blocks freed for another heap.
HAKMEM_NOINLINE void FlushOutgoing(Heap* h) {
  RemoteBatch& batch = h->outgoing;
  if (batch.count == 0) return;
  Heap* owner = batch.owner;
  owner->remote.PushChain(batch.first, batch.last);
  batch = RemoteBatch{};
  // The owner thread is gone: free the blocks now rather than when a new
  // thread adopts its heap (never, perhaps). Not inside a batch of frees,
  // whose emptied slabs would go back after the lock is let go (see
  // EndFreeBatch): the reclaim of exited threads' heaps does it then, or
  // the next flush that frees into the heap.
  const HeapState state = owner->state.load(std::memory_order_seq_cst);
  // The shared heap has no thread to drain its queue: the pusher does, if
  // the lock is free (else the upkeep or the heap's next take).
  if (state == HeapState::kOrphan) {
    if (tl_free_batches == 0 && platform::TryLockMutex(&g_orphan_lock) == 0) {
      DrainRemote(owner);
      UnlockShared(owner);
    }
    return;
  }
  if (state != HeapState::kAbandoned) return;
  if (tl_free_batches == 0 && platform::TryLockMutex(&g_pool_lock) == 0) {
    if (owner->state.load(std::memory_order_relaxed) == HeapState::kAbandoned) {
      DrainPooledHeapLocked(owner);
    }
    platform::UnlockMutex(&g_pool_lock);
    return;
  }
  g_pooled_queue_pending.store(true, std::memory_order_seq_cst);
}

// Adds `b` (a block of `owner`'s, already marked free) to the batch of
// `h`, a heap with bins, for its owner; `look_ahead`: HasLookAheadWord(b).
// Inline where a flush sends a bin's blocks home, one call each: the call
// and the look-ahead test were most of what a flush spent per block it
// sent (remote90 under callgrind: 54 instructions a block, FreeRemote's
// 45 and its call's 9; inline, 20).
HAKMEM_ALWAYS_INLINE void AddToOutgoing(Heap* h, Heap* owner, Block* b, bool look_ahead) {
  Count(h->counters.blocks_sent_to_owners);
  RemoteBatch& batch = h->outgoing;
  if (HAKMEM_UNLIKELY(batch.owner != owner)) {
    FlushOutgoing(h);
    batch.owner = owner;
    batch.last = b;
    b->next = nullptr;
  } else {
    b->next = batch.first;
  }
  batch.first = b;
  Block*& linked_before = batch.recent[batch.count % kRemoteLookAhead];
  if (look_ahead) {
    reinterpret_cast<RemoteBlock*>(b)->ahead = linked_before;  // null for the first few
  }
  linked_before = b;
  if (HAKMEM_UNLIKELY(++batch.count == RemoteBatch::kMaxBlocks)) FlushOutgoing(h);
}

// Queues `b` (a block of `owner`'s, already marked free) for its owner;
// `look_ahead`: HasLookAheadWord(b).
HAKMEM_ALWAYS_INLINE void FreeRemote(Heap* h, Heap* owner, Block* b, bool look_ahead) {
  if (h == &kEmptyHeap) {  // a thread that never allocated has no batch
    owner->remote.Push(b);
    if (owner->state.load(std::memory_order_seq_cst) == HeapState::kAbandoned) {
      g_pooled_queue_pending.store(true, std::memory_order_seq_cst);
    }
    return;
  }
  AddToOutgoing(h, owner, b, look_ahead);
}

// The heap whose slab holds `b` (nullptr: a free slab).
inline Heap* OwnerOf(const Block* b) {
  // (The block's own SlabInfo copy: from its address alone, no load of the
  // SuperSlab's geometry.)
  return static_cast<Heap*>(
      const_cast<void*>(__atomic_load_n(&SlabInfoOf(b)->owner, __ATOMIC_ACQUIRE)));
}

// ---- Transfer cache ----------------------------------------------------------
// Batches of other heaps' blocks, per small class, for whichever heap runs
// dry next (as tcmalloc's central lists). A bin that overflows with blocks
// of heaps whose threads stay behind (with more threads running than CPUs,
// owners wait for the CPU while their queues pile up: see the gate below)
// puts them here instead of on their queues, and an empty bin takes a
// batch before it carves. Otherwise blocks go home as before: with a core
// per thread the cache measured no faster, with more RSS.
// Bounded (kTransferBatches and kTransferMaxBytes per class, see
// transfer_cache.h: the blocks pin their slabs); batches older than
// kTransferMaxAgeNs go home (checked by the upkeep), so an idle program's
// slabs can still empty; malloc_trim sends everything home.
constexpr uint64_t kTransferMaxAgeNs = RegionCache::kCheckIntervalNs;
// A flush sends at most half a bin of its own row (a wide bin's flush, which
// comes in parts of kBinMaxBlocks, goes home where a part is more than a
// batch holds), and a batch must fit any heap's empty bin (TransferPush).
static_assert(kTransferBatchMax == kBinMaxBlocks / 2 + 1, "a batch is half a bin");
HAKMEM_BIG_BSS TransferCache g_transfer;  // each block in it carries TransferKey()

// Adds `count` blocks of class `c` (keyed) as a batch if there is room;
// false otherwise. A batch must fit any heap's empty bin.
bool TransferPush(int c, Block* const* blocks, uint32_t count) {
  if (count > BinLimitOf(c)) return false;  // (Push refuses mid classes)
  return g_transfer.Push(c, blocks, count, platform::NowNs());
}

// Takes `n` blocks out of the transfer state, giving them `key`. Each must
// still carry the transfer key: a block freed again while it waited (a
// double free) carries another key, and so does the second copy of a block
// that sits in two batches once the first was claimed. Checked and re-keyed
// in one atomic step: with a load and a store, a thread that frees the
// block again between them (its fast path writes its key without reading)
// and mallocs it at once would have it live when the store re-keys it for
// this claim, and both would hand it out. (A lock around plain loads and
// stores does not help: frees and mallocs never take it.)
void ClaimFromTransfer(Block* const* blocks, uint32_t n, uint64_t key) {
  const uint64_t transfer_key = TransferKey();
  for (uint32_t i = 0; i < n; i++) {
    const uintptr_t at = reinterpret_cast<uintptr_t>(blocks[i]);  // see KeyOf
    const uint64_t was = __atomic_exchange_n(&blocks[i]->key, StoredKey(key) ^ at, __ATOMIC_RELAXED);
    if (KeyFromStored(was ^ at) != transfer_key) {
      ReportDoubleFreeInBins(blocks[i]);
    }
  }
}

// Takes the newest batch of class `c` into `out`, with `h`'s bin key;
// returns how many (0: none cached).
uint32_t TransferPop(Heap* h, int c, Block** out) {
  if (g_transfer.SeemsEmpty(c)) return 0;  // (without a call)
  const uint32_t n = g_transfer.PopNewest(c, out);
  if (n != 0) Count(h->counters.transfer_batches_taken);
  // The exchanges below are locked instructions: each waits for its block's
  // line, which another core wrote last, and none starts before the one
  // ahead of it is done. Asked for all at once first, the misses overlap
  // (8 threads on 2 cores, 90% remote frees: +12%).
  for (uint32_t i = 0; i < n; i++) platform::PrefetchForWrite(out[i]);
  ClaimFromTransfer(out, n, BinKey(h, c));
  // A block of a slab that went free meanwhile (a double free raced with
  // the slab's emptying; a whole flush does not look at every block's
  // slab, see FlushWholeBinToTransfer).
  // And a block of another class: a stale copy of a block freed twice whose
  // slab was carved again for another class, the address freed into the
  // cache as a block of that class (the transfer key holds no class).
  for (uint32_t i = 0; i < n; i++) {
    if (OwnerOf(out[i]) == nullptr || SlabInfoOf(out[i])->size_class != c) {
      ReportDoubleFreeInBins(out[i]);
    }
  }
  return n;
}

// Sends `n` blocks, marked with the transfer key, to their owners. Each is
// claimed straight into the key it goes home with (the list key for this
// heap's own, the remote key for others') and linked without another store
// to its key: a store after the claim could re-key a block that a thread
// freed again meanwhile (a double free) and allocated at once.
void SendHome(Heap* h, int c, Block* const* blocks, uint32_t n) {
  const bool look_ahead = HasLookAheadWord(ClassSizeOf(c));
  BeginFreeBatch();
  for (uint32_t i = 0; i < n; i++) {
    Block* b = blocks[i];
    Heap* owner = OwnerOf(b);
    if (owner == nullptr || SlabInfoOf(b)->size_class != c) ReportDoubleFreeInBins(b);
    ClaimFromTransfer(&b, 1, owner == h ? g_free_key : RemoteFreeKey());
    if (owner == h) {  // a whole flush's batch holds the flushing heap's too
      LocalFreeKeyed(h, SlabOf(b), b);
      continue;
    }
    FreeRemote(h, owner, b, look_ahead);
  }
  EndFreeBatch();
  FlushOutgoing(h);
}

// Sends home the batches pushed before `cutoff_ns` (all for UINT64_MAX).
// A few batches at a time: the upkeep runs this on any thread's stack.
void TransferSendHome(uint64_t cutoff_ns) {
  constexpr uint32_t kBatchesPerRound = 4;
  for (int c = 0; c < kTransferClasses; c++) {
    // Bounded rounds: other threads may push meanwhile.
    for (uint32_t round = 0; round <= kTransferBatches / kBatchesPerRound; round++) {
      Block* old[kBatchesPerRound * kTransferBatchMax];
      uint32_t taken = 0;
      const uint32_t n = g_transfer.TakeOlderThan(c, cutoff_ns, kBatchesPerRound, old, &taken);
      if (n != 0) {
        if (tl_heap != &kEmptyHeap) Count(tl_heap->counters.transfer_blocks_sent_home, n);
        SendHome(tl_heap, c, old, n);
      }
      if (taken < kBatchesPerRound) break;
    }
  }
}

// The gate. The cache pays with more threads running than CPUs (8 threads
// on 2 cores, 50% remote frees: ~60 -> ~75 Mops/s), where owners spend
// most of the time off the CPU and their queues pile up. With a core per
// thread it does not (2 threads: no faster, RSS up to 1 MiB higher), and
// no per-owner signal told the two apart there: an owner drains lazily
// (when a refill finds its current slab empty), so "its queue is not empty"
// or "not drained since our last push" held for 95% of remote50's flushes;
// "no slow path since our last look" for 36-77%, and once batches went
// through the cache, bins overflowed more often and it held for 98% (the
// gate stayed open); the owner's silence in time was 10-250 us in both
// cases (the benchmark's threads yield to each other). So two conditions:
//  - the process runs more threads than CPUs: a census every
//    kCensusIntervalNs counts the heaps whose beat moved since the last
//    one (threads that ran a slow path) against the CPUs this process may
//    use;
//  - then, per class, kTransferEngageFlushes flushes in a row found an
//    owner of their blocks behind: blocks wait on its queue and it has run
//    no slow path since `h`'s previous look (at an earlier flush). Once
//    engaged, it stays so while whole flushes find room in the cache.
constexpr uint64_t kCensusIntervalNs = 10 * 1000 * 1000;
HAKMEM_STARTUP_DATA uint32_t g_cpus = 0;  // sched_getaffinity's count; 0: unknown
uint32_t g_cpus_for_testing = 0;    // atomic access; if set, no census but the tests'
bool g_oversubscribed = false;       // atomic access
// Censuses to come that still count as oversubscribed, after the last one
// that found more threads running than CPUs (see BigBinsMayGrow).
constexpr uint8_t kOversubscribedCensuses = 10;  // 100 ms
uint8_t g_oversubscribed_recently = 0;  // atomic access
uint64_t g_census_next_ns = 0;       // atomic access
int g_transfer_mode = -1;            // atomic access; see TinySetTransferModeForTesting

// Sets g_oversubscribed and g_oversubscribed_recently from a census. (A
// census preempted for 10 ms overlaps the next one: its count down is a
// CAS, so it never undoes a later census's finding.)
void NoteCensus(bool oversubscribed) {
  __atomic_store_n(&g_oversubscribed, oversubscribed, __ATOMIC_RELAXED);
  if (oversubscribed) {
    __atomic_store_n(&g_oversubscribed_recently, kOversubscribedCensuses, __ATOMIC_RELAXED);
    return;
  }
  uint8_t recently = __atomic_load_n(&g_oversubscribed_recently, __ATOMIC_RELAXED);
  if (recently != 0) {
    __atomic_compare_exchange_n(&g_oversubscribed_recently, &recently,
                                static_cast<uint8_t>(recently - 1), false, __ATOMIC_RELAXED,
                                __ATOMIC_RELAXED);
  }
}

// Counts the CPUs the process may run on, at start-up: later, a process
// that sandboxed itself (seccomp) may be killed for the call. A fixed mask
// for up to 8,192 CPUs (no allocation: CPU_ALLOC mallocs); glibc's
// cpu_set_t holds 1,024, and the call fails on machines whose kernel
// counts more. If it fails anyway, the count stays 0 and the gate closed.
void CountCpus() {
  uint64_t mask[128];
  const int saved = errno;
  const long bytes = syscall(SYS_sched_getaffinity, 0, sizeof(mask), mask);
  errno = saved;
  uint32_t counted = 0;
  for (long i = 0; i < bytes / 8; i++) counted += __builtin_popcountll(mask[i]);
  __atomic_store_n(&g_cpus, counted, __ATOMIC_RELAXED);
}

// Counts the heaps whose threads ran since the last census; sets
// g_oversubscribed. Skipped if the pool lock is busy (it guards the list
// of heaps).
uint32_t Census() {
  if (platform::TryLockMutex(&g_pool_lock) != 0) return 0;
  uint32_t running = 0;
  for (Heap* h = g_all_heaps; h != nullptr; h = h->all_next) {
    // (Pooled heaps do not run; a fork child's leaked ones are not touched.)
    if (h->state.load(std::memory_order_relaxed) != HeapState::kActive) continue;
    const uint64_t beat = __atomic_load_n(&h->beat, __ATOMIC_RELAXED);
    if (beat != h->census_beat) running++;
    h->census_beat = beat;
  }
  platform::UnlockMutex(&g_pool_lock);
  // One running heap never oversubscribes.
  if (running < 2) {
    NoteCensus(false);
    return running;
  }
  const uint32_t for_testing = __atomic_load_n(&g_cpus_for_testing, __ATOMIC_RELAXED);
  const uint32_t cpus = for_testing != 0 ? for_testing : __atomic_load_n(&g_cpus, __ATOMIC_RELAXED);
  NoteCensus(cpus != 0 && running > cpus);
  return running;
}

bool TransferEngageable() {
  const int mode = __atomic_load_n(&g_transfer_mode, __ATOMIC_RELAXED);
  return mode < 0 ? __atomic_load_n(&g_oversubscribed, __ATOMIC_RELAXED) : mode != 0;
}

// Whether `h`'s big bins may grow (see kBigBinGrowthBudget): yes while
// their overflows send no block to other heaps (a thread that frees its
// own big blocks, whatever it does with small ones); otherwise not while
// the process runs more threads than CPUs, nor within 100 ms (10
// censuses) of a census that found it so. With more threads than CPUs, a
// thread waiting for one holds its bins idle, and the blocks other threads
// free for it wait on its queue; grown bins of threads that pass blocks
// around only add to that (tests/FINDINGS.md F15). One census is not
// enough: with 3 threads on 2 cores, one of them often misses a whole 10 ms
// interval, which then counts 2 running. (Tests force it as they force the
// transfer cache: never engaged, bins grow; always, they do not.)
bool BigBinsMayGrow(const Heap* h) {
  if (h->sends_big_blocks == 0) return true;
  const int mode = __atomic_load_n(&g_transfer_mode, __ATOMIC_RELAXED);
  if (mode >= 0) return mode == 0;
  return __atomic_load_n(&g_oversubscribed_recently, __ATOMIC_RELAXED) == 0;
}

bool OwnerStillBehind(Heap* h, const Heap* owner) {
  const uint64_t beat = __atomic_load_n(&owner->beat, __ATOMIC_RELAXED);
  const uint64_t hash = (reinterpret_cast<uintptr_t>(owner) >> 6) * 0x9e3779b97f4a7c15ull;
  OwnerSeen& seen = h->owners_seen[hash >> (64 - kOwnersSeenBits)];
  if (seen.owner == owner && seen.flush == h->flushes) return false;  // looked already
  const bool behind = seen.owner == owner && seen.beat == beat && !owner->remote.Empty();
  seen.owner = owner;
  seen.beat = beat;
  seen.flush = h->flushes;
  return behind;
}


// An overflow flush takes half a grown bin, which TransferPush takes as a
// batch only if it fits any heap's bin (TransferCache::SeemsToHaveRoom
// does not look at that).
constexpr bool OverflowFlushesFitABin() {
  for (int c = 0; c < kFirstMidClass; c++) {
    if (BinGrownLimitOf(c) / 2 > BinLimitOf(c) || BinGrownLimitOf(c) / 2 > kTransferBatchMax) {
      return false;
    }
  }
  return true;
}
static_assert(OverflowFlushesFitABin(), "a whole flush must fit a transfer batch");

// While the transfer cache is engaged for class `c` (see FlushBin), puts
// all `k` blocks of a flush into it as one batch, this heap's too, instead
// of sorting them out by owner: this heap's to their slabs' lists (a slab
// record written per run, and its list head read, misses with more threads
// than CPUs), others' to their owners. Whoever refills next takes the batch
// either way. Owners are looked up only up to the first other heap's
// block: a lookup for every block cost 8% at 8 threads. (A block of a free
// slab among those looked at is left to FlushBin, which reports it; one
// among the others is reported when TransferPop or SendHome takes it.)
// Returns false, with the blocks as they were, if the cache is not
// engaged, the blocks are all this heap's, or the cache is full.
// 8 threads on 2 cores, 50% / 90% remote frees: +5% / +6% alone; +14% / +19%
// with TransferPop's overlapped misses and the larger cache (32M
// iterations, 9 reps).
// Once engaged, a whole flush does not ask whether that owner is still
// behind: until session 11 it did, and an owner that had run one slow path
// since the last look sent the flush down the sorted path and disengaged
// the class, which then took kTransferEngageFlushes flushes (their other
// heaps' blocks sent home, each claimed with an exchange) to engage again.
// Without the question (16-1024 B, 32M iterations, interleaved medians of
// 7, 50% / 90% remote): 3 threads on 2 cores +30% / +52%, 4 threads +25% /
// +14%, 8 threads +4.5% / +6%, 16 threads +3.6% / +12% (a first run of 5-11
// reps: 8 threads +8% / +15%); peak RSS lower in each (4 threads 20 -> 17
// MiB). The gate closes when the cache is full and a flush sorted by owner
// finds none of them behind, and at the thread's upkeep (every 100 ms; its
// flush is sorted) likewise; or when the census finds no more threads
// running than CPUs. A thread that takes over a pooled heap starts closed.
bool FlushWholeBinToTransfer(Heap* h, int c, Block** out, uint32_t k) {
  // (A bin grown while the cache could not engage flushes more than a
  // batch may hold, until the upkeep resets it.)
  if (h->behind_flushes[c] < kTransferEngageFlushes || k > kTransferBatchMax ||
      k > BinLimitOf(c)) {
    return false;
  }
  bool others = false;
  for (uint32_t i = 0; i < k && !others; i++) {
    const Heap* owner = OwnerOf(out[i]);
    if (owner == nullptr) return false;
    others = owner != h;
  }
  if (!others) return false;  // all this heap's: to their slabs
  // Keyed before the push (a refill may pop them at once), so a full
  // cache would have them keyed for nothing; the push decides.
  if (!g_transfer.SeemsToHaveRoom(c, k)) return false;
  // Loaded once: the stores into blocks could alias them.
  const uint64_t bin_key = BinKey(h, c), transfer_key = TransferKey();
  for (uint32_t i = 0; i < k; i++) {
    // Handed out again meanwhile (through another copy: a double free).
    if (KeyOf(out[i]) != bin_key) ReportDoubleFreeInBins(out[i]);
    SetKey(out[i], transfer_key);
  }
  if (TransferPush(c, out, k)) {
    Count(h->counters.transfer_batches_pushed);
    return true;
  }
  // Back to the bin's key. A block that lost the transfer key meanwhile
  // was popped from the cache through another copy (a double free).
  ClaimFromTransfer(out, k, BinKey(h, c));
  return false;
}

// A flush's hold on the pool lock (see MayFreeIntoPooled): not asked for
// yet, held, or found busy (not asked for again in that flush).
enum class PoolLock { kNotTried, kHeld, kBusy };

// Whether a flush may put blocks of `owner`, another heap, on their slabs'
// lists itself: `owner`'s thread exited (its heap waits in the pool) and
// the flush holds the pool lock, which guards pooled heaps (taken here,
// never waited for). A thread that frees what an exited thread built (a
// loader thread's structure, freed by main) then skips the way through the
// owner's queue: linking the blocks for it, and a drain that walks them
// again, with a look at every class of the pooled heap each time. 1M x
// 64 B built by a thread that exited, freed by another, 7 paired rounds:
// in address order 9.5 -> 5.5 ns a free, in random order 19.1 -> 17.3
// (jemalloc 5.8 and 7.5, tcmalloc 5.5 and 18.8, mimalloc 7.6 and 32.2).
// (A block waiting on the owner's queue and freed again is reported by the
// drain that runs before a slab the flush empties goes back: see
// EndFreeBatch.)
HAKMEM_NOINLINE bool LockPoolToFreeInto(Heap* owner, PoolLock* lock) {
  if (*lock == PoolLock::kBusy) return false;
  if (*lock == PoolLock::kNotTried) {
    if (platform::TryLockMutex(&g_pool_lock) != 0) {
      *lock = PoolLock::kBusy;
      return false;
    }
    *lock = PoolLock::kHeld;
  }
  // Adopted by a new thread before the lock was taken?
  return owner->state.load(std::memory_order_relaxed) == HeapState::kAbandoned;
}
HAKMEM_ALWAYS_INLINE bool MayFreeIntoPooled(Heap* owner, PoolLock* lock) {
  if (HAKMEM_LIKELY(owner->state.load(std::memory_order_relaxed) != HeapState::kAbandoned)) {
    return false;
  }
  return LockPoolToFreeInto(owner, lock);
}

// Why a bin is flushed: it overflowed (its blocks may go to the transfer
// cache as one batch), or its blocks are to go back to their slabs (the
// upkeep, thread exit, reclaim, trim: memory to give back).
enum class FlushFor { kOverflow, kReturn };

// Sends `k` blocks (at most kBinMaxBlocks) that were the oldest of bin `c`
// back, for FlushBin.
template <bool kBig>
uint32_t SendBack(Heap* h, int c, Block** out, uint32_t k, FlushFor why) {
  uint32_t sent = 0;
  Block* others[kBinSlots];  // other heaps' blocks
  bool behind = false;       // one of their owners is still behind
  // Whether the transfer cache may take them (it holds small classes only).
  // If not, they go home at once, as if there were no cache.
  const bool gated = c < kFirstMidClass && TransferEngageable();
  Heap* last_owner = nullptr;
  // Loaded once: the loop's stores into blocks could alias them.
  const uint64_t bin_key = BinKey(h, c), list_key = g_free_key;
  // The slab of a block from its address and the class alone, not from its
  // SuperSlab's header: a line less per block. (A slab keeps its class
  // while a block of it sits in a bin: the block counts as in use. Only a
  // double free breaks that: two copies in a bin, the first flushed and
  // its slab emptied and given back; the second is reported when it leaves
  // by its key, which holds the class: an address carved again for
  // another class and freed into this heap carries another key, F16.)
  const int slab_shift = SlabShiftOfClass(c);
  const size_t slab_bytes = size_t{1} << slab_shift;
  const bool look_ahead = HasLookAheadWord(ClassSizeOf(c));
  // Either of the bin's keys (big blocks may carry the zero-tail one; a
  // smaller block never does, unless the program wrote it, which it cannot
  // know). One compare under a mask: a register less in the loop below.
  // Below big classes (kBig false: no zero-tail keys there) compared as
  // stored, no multiply a block: 21 -> 19 instructions a block in the
  // loop below (a block carrying the zero-tail variant there is reported).
  const uint64_t bin_word = h->bin_words[c];
  const auto has_bin_key = [bin_key, bin_word](const Block* b) {
    static_assert(ZeroTailKey(0) == kZeroTailKeyBit, "the variants differ in that bit");
    if (!kBig) return KeyWord(b) == bin_word;
    return ((KeyOf(b) ^ bin_key) & ~kZeroTailKeyBit) == 0;
  };
  PoolLock pool_lock = PoolLock::kNotTried;
  h->flushes++;
  if (gated && why == FlushFor::kOverflow && FlushWholeBinToTransfer(h, c, out, k)) {
    uint8_t& streak = h->behind_flushes[c];
    if (streak < 255) streak++;
    return k;
  }
  // This heap's blocks go on their slabs' lists in runs: the blocks of one
  // slab that follow each other in the bin (frees in address order, as in
  // a tear-down, make long runs) are linked in the bin's order and put on
  // the list at once. (Linked the other way round, the last freed first, a
  // 16 B tear-down's mallocs ran 4% slower.) A second copy in the run fails
  // the key check (the first copy's key changed). Nor may the list's head
  // be in the run: freed again (a double free), it would be linked to
  // itself. Compared by address: reading the head's key instead (a block
  // freed a while ago, cold once the program frees in no order) took half
  // the time of a tear-down in random order. (A head freed again whose
  // copy leaves in a later flush, under other blocks, sits on the list
  // twice, in a cycle: its slab then counts a live block free, which the
  // scan reports when the count reaches 0; every walk of a list checks
  // each block's key before it follows the link (TakeFromSlabs,
  // DiscardListedBigBlocks, which is also bounded), and a copy handed out
  // while still listed has lost that key.)
  // Where the program frees in no order, each block is a run of its own:
  // that path is kept short (the slab from the class's shift, the head
  // read once and handed to LocalFreeChain inline, one masked key compare):
  // 2M x 64 B freed in random order, 78 -> 52 instructions a block in this
  // loop.
  Block* const* const end = out + k;
  BeginFreeBatch();
  for (Block* const* at = out; at != end;) {
    Block* const b = *at;
    // Handed out again meanwhile (through another copy: a double free), or
    // its slab went away while it sat here (likewise).
    if (!has_bin_key(b)) ReportDoubleFreeInBins(b);
    Heap* owner = OwnerOf(b);
    if (owner == nullptr) ReportDoubleFreeInBins(b);
    if (owner == h || MayFreeIntoPooled(owner, &pool_lock)) {
      Slab* const s = SlabOfWithShift(b, slab_shift);
      Block* const head = s->free;
      if (b == head) ReportDoubleFreeInBins(b);
      SetKey(b, list_key);
      Block* last = b;
      const uintptr_t slab_low = reinterpret_cast<uintptr_t>(b) & ~(slab_bytes - 1);
      Block* const* run = at + 1;
      while (run != end && reinterpret_cast<uintptr_t>(*run) - slab_low < slab_bytes) {
        Block* const next = *run++;
        if (!has_bin_key(next) || next == head) ReportDoubleFreeInBins(next);
        SetKey(next, list_key);
        last->next = next;
        last = next;
      }
      LocalFreeChain(owner, s, head, b, last, static_cast<uint32_t>(run - at));
      at = run;
      continue;
    }
    if (!gated) {
      SetKey(b, RemoteFreeKey());
      AddToOutgoing(h, owner, b, look_ahead);
      sent++;
    } else {
      if (owner != last_owner) {
        last_owner = owner;
        if (OwnerStillBehind(h, owner)) behind = true;
      }
      SetKey(b, TransferKey());  // at once: a second copy here fails the check
      others[sent++] = b;
    }
    at++;
  }
  if (gated && sent != 0) {
    // Engaged from the kTransferEngageFlushes-th flush in a row that found
    // an owner behind; the first sorted flush that finds none disengages.
    uint8_t& streak = h->behind_flushes[c];
    streak = behind ? static_cast<uint8_t>(streak < 255 ? streak + 1 : 255) : 0;
    if (streak < kTransferEngageFlushes) {
      SendHome(h, c, others, sent);
    } else if (TransferPush(c, others, sent)) {
      Count(h->counters.transfer_batches_pushed);
    } else {  // the cache is full
      Count(h->counters.transfer_blocks_sent_home, sent);
      SendHome(h, c, others, sent);
    }
  } else if (!gated && c < kFirstMidClass) {
    h->behind_flushes[c] = 0;  // counted only while the cache may engage
  }
  EndFreeBatch();  // under the pool lock, if held: pooled heaps' slabs too
  if (pool_lock == PoolLock::kHeld) platform::UnlockMutex(&g_pool_lock);
  FlushOutgoing(h);
  return sent;
}

// Sends the oldest `k` blocks of bin `c` back: this heap's, and those of
// heaps whose threads exited (see MayFreeIntoPooled), to their slabs;
// other heaps' to their owners (pushed before returning); or, on overflow,
// all of them to the transfer cache (a wide bin's, kBinMaxBlocks at a
// time). Returns how many went to other heaps or the cache.
uint32_t FlushBin(Heap* h, int c, uint32_t k, FlushFor why) {
  const uint32_t n = BinCount(h, c);
  if (k > n) k = n;
  // Out of the bin first: a fork child must not find a block in the bin
  // and on a slab's list at once. (The bin reads empty until its newer
  // blocks have moved down.)
  Block** const slots = BinSlot(h, c, 1);
  SetBinCount(h, c, 0);
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  uint32_t sent = 0;
  for (uint32_t done = 0; done < k;) {
    Block* out[kBinSlots];
    const uint32_t m = std::min(k - done, kBinMaxBlocks);
    memcpy(out, slots + done, m * sizeof(Block*));
    sent += c >= kFirstBigClass ? SendBack<true>(h, c, out, m, why)
                                : SendBack<false>(h, c, out, m, why);
    done += m;
  }
  // The newer blocks move down, once. (Written as a loop, the compiler
  // could not tell the ranges apart and moved one slot at a time: 7
  // instructions a slot, a quarter of a 16 B tear-down's flush.)
  memmove(slots, slots + k, (n - k) * sizeof(Block*));
  SetBinCount(h, c, n - k);
  return sent;
}

// Whether class `c`'s bin forwards other heaps' blocks (see
// kForwardingOverflows); its limit is ForwardingLimitOf(c) meanwhile.
inline bool BinForwarding(const Heap* h, int c) {
  return h->bin_forwards[c] >= kForwardingOverflows;
}
void StopForwarding(Heap* h, int c) {
  if (BinForwarding(h, c)) SetGrownBinLimit(h, c, BinLimitOf(c));
  h->bin_forwards[c] = 0;
}
// Counts an overflow flush of class `c`'s bin that sent `mostly_others`'
// blocks, or not; returns true if the bin starts forwarding with it (what
// it still holds sent home too, its limit ForwardingLimitOf(c)).
bool NoteForwardingFlush(Heap* h, int c, bool mostly_others) {
  if (!mostly_others) {
    StopForwarding(h, c);
    return false;
  }
  if (c < kFirstMidClass || BinForwarding(h, c) || h->bin_refilled[c] != 0) return false;
  if (++h->bin_forwards[c] < kForwardingOverflows) return false;
  if (BinCount(h, c) != 0) FlushBin(h, c, BinCount(h, c), FlushFor::kOverflow);
  SetGrownBinLimit(h, c, ForwardingLimitOf(c));
  return true;
}

// `keep_forwarding` (the upkeep): forwarding bins, emptied, stay forwarding
// (reset, they would fill a whole bin twice again to learn it).
void FlushAllBins(Heap* h, bool keep_forwarding = false) {
  for (int c = 0; c < kNumClasses; c++) {
    h->shared_takes[c] = 0;  // (see StartsShared; its bin may be dormant)
    if (BinDormant(h, c)) continue;
    if (BinCount(h, c) != 0) FlushBin(h, c, BinCount(h, c), FlushFor::kReturn);
    if (keep_forwarding && BinForwarding(h, c)) continue;
    ResetBinSizing(h, c);  // slow start again, ungrown
  }
}

// Makes a slab of class `size_class` with room current and returns it, or
// nullptr (out of memory). Called when the current slab lists no free
// block, and either cannot carve or other slabs have free blocks: a
// partial slab's blocks come first; then carving, by a carvable slab, the
// current one, or a new one. A current slab it leaves waits on the
// carvable list if it can still carve; a full one stays off the lists until
// a free gives it a block.
Slab* Refill(Heap* h, int size_class) {
  Slab* const old = h->current[size_class];
  const bool old_can_carve = old != &kEmptySlab && SlabCanCarve(old);
  Slab* next = h->partial[size_class].head;
  if (next != nullptr) {
    h->partial[size_class].Remove(next);
  } else if ((next = h->carvable[size_class].head) != nullptr) {
    h->carvable[size_class].Remove(next);
  } else if (old_can_carve) {
    return old;
  } else if ((next = NewSlab(h, size_class)) == nullptr) {
    return nullptr;
  }
  SetCurrent(h, size_class, next);
  if (old_can_carve) {
    h->carvable[size_class].Push(old);
    old->role = kSlabCarvable;
  }
  return next;
}

// Frees what an exited thread's heap still holds idle: pending remote
// frees, its bins. (It has no current slab: its thread gave them up, see
// DetachHeap, or PoolHeapsOfDeadThreadsLocked did.) Pool lock held.
void ReclaimHeapLocked(Heap* h) {
  if (!h->remote.Empty()) DrainRemote(h);
  FlushAllBins(h);
}

// What a pooled heap holds for a reclaim: the blocks other threads freed to
// it since it was pooled (its queue). Its bins went back when it was pooled
// (DetachHeap, PoolHeapsOfDeadThreadsLocked), and nothing pushes onto a
// pooled heap's bins. (Flushing its 65 empty bins again at each reclaim,
// under the pool lock, made every slab pool miss cost pooled heaps x 65: a
// burst of 1,000 threads at once, five times, 2.9 s, glibc 0.4; a
// helper's hunt, session 37.) Pool lock held.
void DrainPooledHeapLocked(Heap* h) {
  if (!h->remote.EmptyOrdered()) DrainRemote(h);
}

// After a pooling's seq_cst store of `h`'s state (see
// g_pooled_queue_pending).
void NotePooledQueue(const Heap* h) {
  if (!h->remote.EmptyOrdered()) g_pooled_queue_pending.store(true, std::memory_order_seq_cst);
}

// Gives back the pages of `h`'s wide rows, used since it last did (its
// bins must be in their own rows).
void DiscardWideRows(Heap* h) {
  if (!h->wide_rows_used) return;
  h->wide_rows_used = false;
  platform::DiscardPages(h->wide_rows, kWideRowsBytes);
}

// A pooled heap's bin rows (65 KiB, and its wide rows), empty once
// reclaimed: their whole pages go back, and read zero again (every row's
// slot 0, the sentinel, stays null). A burst of 1,000 threads that each
// used every class kept 73 MiB resident after a trim (FINDINGS F10).
void DiscardBinRows(Heap* h) {
  if (h->bin_rows_discarded) return;  // not used since: a trim again costs nothing
  h->bin_rows_discarded = true;
  constexpr uintptr_t kPageMask = platform::kPageSize - 1;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(h->bin_slots) + kPageMask) & ~kPageMask;
  // (The rows taken only: the others were never touched. Not the page the
  // slab lists after the rows share.)
  const uintptr_t end = std::min(
      reinterpret_cast<uintptr_t>(h->bin_slots + h->bin_rows_taken * kBinSlots) + kPageMask,
      reinterpret_cast<uintptr_t>(h->bin_slots + kNumClasses * kBinSlots)) & ~kPageMask;
  if (end > begin) platform::DiscardPages(reinterpret_cast<void*>(begin), end - begin);
  DiscardWideRows(h);
}

void ReclaimAbandonedHeaps(bool give_back_big_blocks) {
  if (__atomic_load_n(&g_pool, __ATOMIC_RELAXED) == nullptr) return;
  if (!give_back_big_blocks && !g_pooled_queue_pending.load(std::memory_order_relaxed)) return;
  platform::LockMutex(&g_pool_lock);
  g_pooled_queue_pending.store(false, std::memory_order_seq_cst);
  for (Heap* h = g_pool; h != nullptr; h = h->pool_next) {
    DrainPooledHeapLocked(h);
    if (give_back_big_blocks) {
      DiscardIdleBigBlocks(h, /*now=*/true);
      DiscardBinRows(h);
    }
  }
  platform::UnlockMutex(&g_pool_lock);
}

void InitFreeKey(uint64_t random_bits) {
  // (Once AT_RANDOM's first 8 bytes: glibc's stack canary, which a key
  // read back from a free block gave away, XOR a load address.)
  uint64_t key = random_bits;
  key ^= reinterpret_cast<uintptr_t>(&g_free_key);
  // Odd: so is every key, and no live block's word, cleared to 0 by
  // malloc, decodes as one (see KeyOf).
  g_free_key = key | 1;
}

// The active heaps by thread id, for FindHeapOfDeadThreadLocked: a heap is
// in its bucket (linked by thread_next) while active. Every heap ever made
// walked at each thread's first allocation made a burst of threads
// quadratic (2,000 threads at once: a quarter of the time; session 37).
// Pool lock held.
constexpr int kThreadBucketBits = 9;
Heap* g_active_by_thread[1 << kThreadBucketBits] = {};
Heap*& ThreadBucket(uintptr_t thread_id) {
  return g_active_by_thread[(thread_id * 0x9e3779b97f4a7c15ull) >> (64 - kThreadBucketBits)];
}
void AddActiveLocked(Heap* h) {
  Heap*& bucket = ThreadBucket(h->thread_id);
  h->thread_next = bucket;
  bucket = h;
  __atomic_store_n(&g_active_heaps, g_active_heaps + 1, __ATOMIC_RELAXED);
}
void RemoveActiveLocked(Heap* h) {
  for (Heap** at = &ThreadBucket(h->thread_id); *at != nullptr; at = &(*at)->thread_next) {
    if (*at == h) {
      *at = h->thread_next;
      h->thread_next = nullptr;
      __atomic_store_n(&g_active_heaps, g_active_heaps - 1, __ATOMIC_RELAXED);
      return;
    }
  }
}

// A heap still marked active for this thread's pthread_t, or nullptr. Such a
// heap belonged to an exited thread whose descriptor this thread reuses: its
// last allocations came after its last TLS destructor round, so nothing
// handed the heap back. Pool lock held.
Heap* FindHeapOfDeadThreadLocked(uintptr_t self) {
  for (Heap* h = ThreadBucket(self); h != nullptr; h = h->thread_next) {
    if (h->thread_id == self && h->state.load(std::memory_order_relaxed) == HeapState::kActive) {
      return h;
    }
  }
  return nullptr;
}

// A thread whose first allocator call comes in the last round of its TLS
// destructors attaches a heap (perhaps a pooled one, with slabs full of
// blocks other threads still hold) that no destructor of its hands back:
// its blocks freed by others then waited on its queue for good (a helper's
// hunt, session 22: 325 MiB after a trim, glibc 12). So each thread holds
// its heap's robust `alive` mutex while it has the heap; the kernel marks a
// robust mutex whose owner died, and a try-lock then says EOWNERDEAD: a
// dead thread's heap told from a live one's without a syscall. Such heaps
// are pooled as an exited thread's would be, with their bins, queue and
// slabs as they are (a pooled heap's reclaim and its next thread take them
// so). Under the pool lock, for time-gated callers: a try-lock per active
// heap. (A kernel without robust futexes marks nothing: such heaps stay
// as they were, for a later thread with the same pthread_t.)
void PoolHeapsOfDeadThreadsLocked() {
  for (Heap* h = g_all_heaps; h != nullptr; h = h->all_next) {
    if (h == tl_heap || h->state.load(std::memory_order_relaxed) != HeapState::kActive) continue;
    const int locked = pthread_mutex_trylock(&h->alive);
    if (locked == 0) pthread_mutex_unlock(&h->alive);  // (held by none: not ours to judge)
    if (locked != EOWNERDEAD) continue;                 // EBUSY: its thread lives
    pthread_mutex_consistent(&h->alive);
    pthread_mutex_unlock(&h->alive);
    RemoveActiveLocked(h);
    h->state.store(HeapState::kAbandoned, std::memory_order_seq_cst);
    h->pool_next = g_pool;
    __atomic_store_n(&g_pool, h, __ATOMIC_RELAXED);
    g_heaps_pooled++;
    g_heaps_of_dead_threads++;
    // What its thread's exit would have done (DetachHeap): its emptied
    // current slabs kept their memory until a thread adopted the heap (a
    // review: 7.4 MiB against 2.0 after a trim).
    ReclaimHeapLocked(h);
    GiveUpCurrentSlabs(h);
    NotePooledQueue(h);
  }
}

void PoolHeapsOfDeadThreads() {
  platform::LockMutex(&g_pool_lock);
  PoolHeapsOfDeadThreadsLocked();
  platform::UnlockMutex(&g_pool_lock);
}

// `h`'s `alive` mutex made anew (see PoolHeapsOfDeadThreads), for the
// thread that takes the heap: the last one may have died holding it. Pool
// lock held, so that no try-lock finds the heap active with a dead owner's
// mark. The thread locks it once the pool lock is let go: under it, a lock
// order pool -> alive against alive -> pool (every later slow path of the
// thread) is a cycle to TSan, though the mutex is never contended but by a
// try-lock, which returns at once.
void RenewHeapAlive(Heap* h) {
  pthread_mutexattr_t robust;
  pthread_mutexattr_init(&robust);
  pthread_mutexattr_setrobust(&robust, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&h->alive, &robust);
  pthread_mutexattr_destroy(&robust);
}

Heap* AttachHeap() {
  TinyGlobalInit();
  const uintptr_t self = static_cast<uintptr_t>(pthread_self());
  platform::LockMutex(&g_pool_lock);
  Heap* h = FindHeapOfDeadThreadLocked(self);  // (active: in its bucket already)
  bool listed = h != nullptr;
  if (h == nullptr && g_pool != nullptr) {
    h = g_pool;
    __atomic_store_n(&g_pool, h->pool_next, __ATOMIC_RELAXED);
    g_heaps_pooled--;
  } else if (h == nullptr) {
    h = NewHeapLocked();
  }
  if (h != nullptr) {
    h->thread_id = self;
    if (!listed) AddActiveLocked(h);
    h->last_slow_ns = 0;  // its pauses are this thread's own
    h->bin_rows_discarded = false;
    // The transfer cache's gate starts closed: an engaged class would send
    // this thread's first flushes to the cache whole, with no sign yet
    // that any owner of their blocks is behind.
    memset(h->behind_flushes, 0, sizeof(h->behind_flushes));
    for (OwnerSeen& seen : h->owners_seen) seen = OwnerSeen{};
    h->sends_big_blocks = 0;  // likewise (see BigBinsMayGrow)
    h->sends_small_blocks = 0;
  }
  // State changes happen under the pool lock: FlushOutgoing drains a heap
  // it saw abandoned only after re-checking under that lock.
  if (h != nullptr) {
    RenewHeapAlive(h);
    h->state.store(HeapState::kActive, std::memory_order_relaxed);
  }
  platform::UnlockMutex(&g_pool_lock);
  if (h == nullptr) return nullptr;
  // (A try-lock meanwhile finds it free: alive, as far as it can tell.)
  pthread_mutex_lock(&h->alive);
  h->pool_next = nullptr;
  tl_heap = h;
  // Keys below PTHREAD_KEY_2NDLEVEL_SIZE never allocate here.
  pthread_setspecific(g_thread_key, h);
  if (!h->remote.Empty()) DrainRemote(h);
  return h;
}

enum class SharedDrain { kUpkeep, kThreadExit, kTrim };
void DrainSharedHeap(SharedDrain when);

void DetachHeap(Heap* h) {
  FlushAllBins(h);
  DrainRemote(h);
  GiveUpCurrentSlabs(h);
  // The thread is gone: its free big blocks are idle. Here, on the exiting
  // thread and unlocked; what other threads free into the pooled heap
  // later waits for a trim or the heap's next thread. (Under the pool lock
  // in every reclaim, it cost frees of an exited thread's blocks up to 15x.)
  DiscardIdleBigBlocks(h, /*now=*/true);
  SuperSlabCacheEnforceLimits();
  tl_heap = &kEmptyHeap;
  platform::LockMutex(&g_pool_lock);
  RemoveActiveLocked(h);
  h->state.store(HeapState::kAbandoned, std::memory_order_seq_cst);
  pthread_mutex_unlock(&h->alive);
  h->pool_next = g_pool;
  __atomic_store_n(&g_pool, h, __ATOMIC_RELAXED);
  g_heaps_pooled++;
  NotePooledQueue(h);
  platform::UnlockMutex(&g_pool_lock);
  // The shared heap's slabs that this thread's blocks emptied (its current
  // ones are kept until the upkeep otherwise, which an idle program never
  // runs).
  DrainSharedHeap(SharedDrain::kThreadExit);
}

void OnThreadExit(void* heap) {
  Heap* h = static_cast<Heap*>(heap);
  tl_thread_exited = true;
  if (h != nullptr && h == tl_heap) DetachHeap(h);
}

// A bin of a mid class pins the 512 KiB slabs of the blocks it holds. A
// class the thread stopped allocating keeps its bin full until
// the next upkeep: 4,000 vectors grown by realloc to ~20 KB left the bins
// of the 6-16 KiB classes holding blocks whose slabs held nothing else,
// 60-100 slabs (tests/FINDINGS.md F46). So before the heap takes a fresh
// slab, the bins of those classes not refilled during its last
// kIdleSlabTakes such takes go back to their slabs; slabs that empty go
// back to the pool, for this take if of their geometry, or any other.
// (Such a bin refills from those slabs' lists if the class is wanted
// again.) Not 2: a young heap takes a fresh slab for each class it
// meets, and its bins of classes it uses now and then went back over and
// over, their emptied slabs for others to carve again: 64 threads of mixed
// blocks (hunt28/thrpool.cpp) 56 -> 117 MB; 8 read 74, 32 the same as none.
// Not the big classes' bins (a 2 MiB slab each, their free blocks' pages
// given back when idle, see DiscardIdleBigBlocks): with them, 100 vectors
// grown by realloc through every size in rounds (realloc_grow) 158 -> 165
// MB, their next round's blocks gone back and carved again.
constexpr uint32_t kIdleSlabTakes = 32;
void FlushIdleBins(Heap* h, int for_class) {
  const uint32_t takes = ++h->fresh_slab_takes;
  for (int c = kFirstMidClass; c < kFirstBigClass; c++) {
    if (c == for_class || BinCount(h, c) == 0) continue;
    if (takes - h->refilled_at_take[c - kFirstMidClass] <= kIdleSlabTakes) continue;
    FlushBin(h, c, BinCount(h, c), FlushFor::kReturn);
  }
}

// Takes up to `max` blocks of `size_class` from `h`'s slabs (refilling the
// current slab as needed) into `out`, in the order they are to be handed
// out; returns how many (0: out of memory). They get the heap's free key.
// With `kStep` -1 into `out`, `out[-1]` and on down (an empty bin's slots,
// from the top: RefillBinAndPop; classes below kFirstBigClass only, whose
// blocks need no TakeBigBlocks).
template <int kStep>
uint32_t TakeFromSlabsTo(Heap* h, int size_class, Block** out, uint32_t max) {
  static_assert(kStep == 1 || kStep == -1, "forward or top down");
  // (Big blocks need TakeBigBlocks, which only the forward take runs.)
  if (kStep == -1 && HAKMEM_UNLIKELY(size_class >= kFirstBigClass)) __builtin_trap();
  const auto slot = [out](uint32_t i) -> Block*& { return out[kStep * static_cast<ptrdiff_t>(i)]; };
  uint32_t n = 0;
  while (n < max) {
    Slab* s = h->current[size_class];
    if (s->free == nullptr && !h->remote.Empty()) {
      // Blocks other threads gave back come before fresh ones. (Draining
      // may put blocks on the current slab's list.)
      DrainRemote(h);
      s = h->current[size_class];
    }
    // A fresh slab comes next (see Refill): idle bins give back theirs first.
    if (s->free == nullptr && h->partial[size_class].head == nullptr &&
        h->carvable[size_class].head == nullptr && (s == &kEmptySlab || !SlabCanCarve(s))) {
      FlushIdleBins(h, size_class);
      s = h->current[size_class];
    }
    // Free blocks before fresh ones (see Refill): 8 threads on 2 cores,
    // half the frees remote, RSS 51.7 -> 46.6 MiB.
    const bool others_have_blocks = h->partial[size_class].head != nullptr;
    if (s->free == nullptr &&
        (s == &kEmptySlab || !SlabCanCarve(s) || others_have_blocks)) {
      s = Refill(h, size_class);
      if (s == nullptr) break;
    }
    Block* b = s->free;
    const uint32_t first = n;
    const uint64_t list_key = g_free_key, bin_key = BinKey(h, size_class);  // loaded once
    const uint64_t list_word = StoredKey(list_key);  // compared as stored: no multiply a block
    // The walk waits for each block's line to learn the next one: on a list
    // that went cold (a structure freed a while ago), a miss after a miss.
    // Lists are mostly runs in address order (FlushBin links a run of one
    // slab's blocks in the bin's order, and frees in address order, as in a
    // tear-down, make them ascending), so the walk asks for the line 4
    // blocks (at least 2 KiB) ahead, a block of this walk or the next
    // refill's. Where the list is in no order, that line is another block
    // of the slab, perhaps live, or (past the slab's end) other memory:
    // read, not taken for writing (a core writing it keeps a copy and asks
    // for it again, rather than losing it).
    // Measured (malloc after freeing every other block of a structure
    // bigger than the caches, ns a call, 5 interleaved runs, mimalloc in
    // brackets): 16 B 8.1 -> 6.9 (4.1), 64 B 32.6 -> 30.0 (34.0), 256 B
    // 53.1 -> 41.0 (42.3), 1 KiB 98.7 -> 50.9 (77.0), 4 KiB 141 -> 81
    // (115), 16 KiB 115 -> 63 (100), 64 KiB 173 -> 103 (151); Python with
    // PYTHONMALLOC=malloc building and dropping dicts: this walk 5.0 ->
    // 2.8% of the samples, 3.16 -> 3.02 s (2.98), 7 noisy runs. The random
    // lanes and Larson's loop: within noise. (At least 2 KiB ahead: 4
    // blocks or 512 B gave 16 B blocks nothing, 4 KiB no more; a prefetch
    // for writing measured the same.)
    // And in such a run the next block is the last one's distance further
    // on: the walk goes on from that guess when the link confirms it, so
    // that the next block's loads do not wait for this one's (the branch
    // is predicted; the loads of a run overlap). Measured as above, 5-7
    // paired runs against the walk by link alone: 16 B 1.03x (mimalloc
    // still 1.36x faster), 64 B 1.34x, 256 B 1.55x, 1 KiB 1.18x, 4 KiB
    // 1.65x (now 1.3-2.1x faster than mimalloc from 64 B up); lists in no
    // order (Larson's loop, the random lanes) within noise.
    const uintptr_t ahead = std::max<uintptr_t>(4 * ClassSizeOf(size_class), 2048);
    uintptr_t stride = 0;
    while (b != nullptr && n < max) {
      platform::Prefetch(reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(b) + ahead));
      if (KeyWord(b) != list_word) ReportCorruptFreeList(b);
      slot(n++) = b;
      Block* const next = b->next;
      uintptr_t at = reinterpret_cast<uintptr_t>(b);
      if (reinterpret_cast<uintptr_t>(next) == at + stride) {
        // (Hidden from the compiler, which would take `next` for the sum.)
        asm("" : "+r"(at));
        b = reinterpret_cast<Block*>(at + stride);
      } else {
        stride = reinterpret_cast<uintptr_t>(next) - at;
        b = next;
      }
    }
    s->free = b;
    // Unlinked before their keys change: a fork child never finds a block
    // with a bin's key on a slab's list.
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    for (uint32_t i = first; i < n; i++) SetKey(slot(i), bin_key);
    const uint32_t listed = n;
    // Then fresh blocks, carved straight into `out` (one store each: no
    // list to build and walk again).
    uintptr_t zero_from = UINTPTR_MAX;
    if (b == nullptr && n < max && h->partial[size_class].head == nullptr) {
      if (size_class >= kFirstBigClass) zero_from = BigSlabZeroFrom(s);
      n += SlabCarve(s, &slot(n), max - n, bin_key, kStep);
    }
    if (kStep == 1 && size_class >= kFirstBigClass) {
      TakeBigBlocks(out + first, listed - first, n - listed, zero_from, bin_key);
    }
    s->used += n - first;
  }
  return n;
}

uint32_t TakeFromSlabs(Heap* h, int size_class, Block** out, uint32_t max) {
  return TakeFromSlabsTo<1>(h, size_class, out, max);
}

// Pops one block of `size_class` from `h`'s slabs, or nullptr (for the
// orphan heap, which does not use its bins).
void* PopFromHeap(Heap* h, int size_class, bool* tail_zero) {
  Block* b;
  if (TakeFromSlabs(h, size_class, &b, 1) == 0) return nullptr;
  // (Big blocks: TakeBigBlocks keyed it zero-tail if its tail reads zero.)
  *tail_zero = KeyOf(b) == ZeroTailKey(BinKey(h, size_class));
  b->key = 0;
  return b;
}

// Refills the empty bin of `size_class` (see FirstRefillOf) and pops one
// block; nullptr if out of memory. `*tail_zero`: see
// TinyMallocTellingZeroTail.
void* RefillBinAndPop(Heap* h, int size_class, bool* tail_zero) {
  if (BinDormant(h, size_class)) WakeBin(h, size_class);
  Count(h->counters.refills);
  StopForwarding(h, size_class);  // it allocates after all
  h->bin_refilled[size_class] = 2;
  if (size_class >= kFirstMidClass && size_class < kFirstBigClass) {
    h->refilled_at_take[size_class - kFirstMidClass] = h->fresh_slab_takes;  // see FlushIdleBins
  }
  if (h->bin_overflowed[size_class]) {  // full, then empty: it swings
    h->bin_overflowed[size_class] = false;
    // Not while the transfer cache may engage: half a grown bin is more
    // than a batch may hold (it must fit any heap's bin, see TransferPush),
    // so the bin's overflows could not go there whole.
    // A heap whose small bins send blocks to other heaps grows them less
    // (see SendingSmallBinMaxLimitOf).
    if (size_class < kFirstMidClass && !TransferEngageable()) {
      const bool sends = h->sends_small_blocks != 0;
      GrowBin(h, size_class,
              sends ? SendingSmallBinMaxLimitOf(size_class) : SmallBinMaxLimitOf(size_class),
              sends ? kSendingSmallBinGrowthBudget : kSmallBinGrowthBudget);
    }
  }
  Block* taken[kBinSlots];
  // Slow start: a class brings few blocks at first, twice as many on each
  // refill up to half its bin, so a class used a little touches little.
  // At most kBinMaxBlocks / 2 + 1, a wide bin's too: a bin held to its most
  // (SmallBinMaxLimitOf, or the budget's share) by a class whose live
  // blocks swing by more than half of that would otherwise refill half a
  // bin, overflow and send half back at every swing (a request arena's 384-512
  // B classes, 645 blocks a request: a refill and a flush of 511 blocks
  // each, every request); it refills only what its swing lacks.
  uint32_t n = TransferPop(h, size_class, taken);  // other heaps' blocks first
  if (n == 0) {
    const uint32_t most = std::min(BinLimit(h, size_class), kBinMaxBlocks) / 2;
    // (Within the limit: big bins start at 2 blocks.)
    const uint32_t want = std::min<uint32_t>(h->bin_refill[size_class], most + 1);
    h->bin_refill[size_class] = static_cast<uint8_t>(want * 2 < most ? want * 2 : most);
    if (size_class < kFirstBigClass) {
      // Straight into the bin, which is empty and stays so meanwhile (its
      // count says 0: a fork child finds none of them there): the i-th
      // block taken into slot want - i, the first (slot want, then n)
      // handed out now, without the reversed copy below (4.4 instructions
      // fewer a block refilled, session 37). Fewer than `want` (out of
      // memory): moved down to slots 1 to n.
      Block** const top = BinSlot(h, size_class, want);
      n = TakeFromSlabsTo<-1>(h, size_class, top, want);
      if (n == 0) return nullptr;
      if (n < want) memmove(BinSlot(h, size_class, 1), top - (n - 1), n * sizeof(Block*));
      Block* const b = *BinSlot(h, size_class, n);
      SetBinCount(h, size_class, n - 1);
      *tail_zero = false;  // (no zero-tail keys below big classes)
      b->key = 0;
      return b;
    }
    n = TakeFromSlabs(h, size_class, taken, want);
  }
  if (n == 0) return nullptr;
  // taken[0] is handed out now, taken[1] next: it goes on top.
  Block** slots = BinSlot(h, size_class, 0);
  CopyBlocksReversed(slots + 1, taken + 1, n - 1);  // slots[n - i] = taken[i]
  SetBinCount(h, size_class, n - 1);
  *tail_zero = KeyOf(taken[0]) == ZeroTailKey(BinKey(h, size_class));
  taken[0]->key = 0;
  return taken[0];
}

void* OrphanMalloc(int size_class, bool* tail_zero) {
  platform::LockMutex(&g_orphan_lock);
  if (g_orphan == nullptr) {
    platform::LockMutex(&g_pool_lock);
    Heap* const orphan = NewHeapLocked();
    platform::UnlockMutex(&g_pool_lock);
    if (orphan != nullptr) {
      orphan->state.store(HeapState::kOrphan, std::memory_order_relaxed);
      __atomic_store_n(&g_orphan, orphan, __ATOMIC_RELEASE);  // see DrainSharedHeap
    }
  }
  void* p = g_orphan != nullptr ? PopFromHeap(g_orphan, size_class, tail_zero) : nullptr;
  UnlockShared(g_orphan);
  return p;
}

// Shared starts. While the process runs kSharedStartHeaps threads or more,
// a heap with no slab of a class takes its first kSharedStartBlocks blocks
// of it from the orphan heap (under its lock) instead of a slab of its own:
// every thread's first blocks of a class share slabs, as glibc's arenas
// share them. A thread that allocates a class a few times (a burst of
// short-lived threads, a pool of mostly idle workers) then costs no slab,
// page and SuperSlab of its own per class: each mid class took a 512 KiB
// slab and each big one a whole 2 MiB SuperSlab, mapped for that thread,
// unmapped or given back after it, past what the cache holds (F75). One
// that keeps allocating it refills its bin from its own slab from the third
// block on, as before. Not with fewer threads: a single-threaded program
// would map the orphan heap's slabs besides its own. Only classes whose
// blocks are whole cache lines (multiples of 64 B; slab colours are too):
// two threads' first 16 B blocks side by side in a line, each written by
// its own thread, took 0.49 -> 0.95 s (a review's false-sharing test).
// tests/findings/hunt37/manythreads.c (threads alive at once, each
// allocating a block of 20 classes of 16 B-128 KiB and freeing another's),
// paired runs: 3 rounds of 2,000 threads 6.5-7.7 -> 1.9 s, peak RSS 383 ->
// 250 MB (every class shared: 1.8 s, 240 MB; mid and big classes only:
// 2.5 s, 272 MB); 20 rounds of 500 9.9 -> 1.4 s; 50 rounds of 100 1.6 ->
// 0.6 s. Those two peak higher, 106 -> 134 and 35 -> 46 MB: the fewer
// SuperSlabs all fit the cache and keep their pages for the decay time
// (within HAKMEM_SUPERSLAB_RESIDENT_MB), where the threads' own were
// unmapped past its count.
constexpr uint32_t kSharedStartHeaps = 32;
constexpr uint8_t kSharedStartBlocks = 2;
bool StartsShared(const Heap* h, int c) {
  // The thread count first: with few threads (most programs) a refill
  // looks no further.
  const uint32_t for_testing = __atomic_load_n(&g_shared_start_heaps_for_testing, __ATOMIC_RELAXED);
  const uint32_t from = for_testing != 0 ? for_testing : kSharedStartHeaps;
  return __atomic_load_n(&g_active_heaps, __ATOMIC_RELAXED) >= from &&
         h->shared_takes[c] < kSharedStartBlocks && (ClassSizeOf(c) & 63) == 0 &&
         h->current[c] == &kEmptySlab && h->partial[c].head == nullptr &&
         h->carvable[c].head == nullptr;
}
void* SharedStartMalloc(Heap* h, int c, bool* tail_zero) {
  h->shared_takes[c]++;
  void* p = OrphanMalloc(c, tail_zero);
  if (p != nullptr) Count(h->counters.shared_start_blocks);
  return p;
}
// Blocks freed to the orphan heap wait on its queue until a pusher that
// finds its lock free (FlushOutgoing, UnlockShared) or its next take
// drains them; the upkeep, a thread's exit and a trim too, and they give
// its empty current slabs back, so that its SuperSlabs can empty. The
// upkeep only tries the lock (it may run under others); the exit and the
// trim hold none. Its free big blocks' pages go back as a thread's upkeep
// gives back its own (no thread runs one for this heap): marked at one
// upkeep, given back at the next; at once at a trim.
void DrainSharedHeap(SharedDrain when) {
  Heap* const shared = __atomic_load_n(&g_orphan, __ATOMIC_ACQUIRE);
  if (shared == nullptr || tl_free_batches != 0) return;
  if (when != SharedDrain::kUpkeep) {
    platform::LockMutex(&g_orphan_lock);
  } else if (platform::TryLockMutex(&g_orphan_lock) != 0) {
    return;
  }
  if (!shared->remote.Empty()) DrainRemote(shared);
  CollectRetired(shared);
  if (when != SharedDrain::kThreadExit) {
    DiscardIdleBigBlocks(shared, /*now=*/when == SharedDrain::kTrim);
  }
  UnlockShared(shared);
}

}  // namespace

// A thread whose previous slow path is this old was paused (see TinyUpkeep).
constexpr uint64_t kPauseNs = RegionCache::kCheckIntervalNs;
// Idle slabs whose pages one upkeep gives back at most: 16 MiB of small
// slabs per 100 ms (neighbours in one madvise).
constexpr int kPurgeSlabs = 256;

namespace {
UpkeepHook g_upkeep_hook = nullptr;  // atomic access
}  // namespace

void TinySetUpkeepHook(UpkeepHook hook) {
  platform::StoreIfChanged(&g_upkeep_hook, hook);  // (by every large malloc)
}

void TinyUpkeep(uint64_t now) {  // (one clock read for all of it)
  static uint64_t next_reclaim_ns = 0;  // atomic access
  SuperSlabCacheMaybeEnforceLimits(now);
  if (UpkeepHook hook = __atomic_load_n(&g_upkeep_hook, __ATOMIC_RELAXED)) hook(now);
  // The census: one thread, every kCensusIntervalNs.
  uint64_t census_ns = __atomic_load_n(&g_census_next_ns, __ATOMIC_RELAXED);
  // (A single-threaded program, which never made a second heap, skips it.)
  if (now >= census_ns && __atomic_load_n(&g_heaps_created, __ATOMIC_RELAXED) > 1 &&
      __atomic_load_n(&g_cpus_for_testing, __ATOMIC_RELAXED) == 0 &&
      __atomic_compare_exchange_n(&g_census_next_ns, &census_ns,
                                  now + kCensusIntervalNs, false, __ATOMIC_RELAXED,
                                  __ATOMIC_RELAXED)) {
    Census();
  }
  // Back after a pause: the blocks in this thread's bins were freed since
  // its last slow path, but the SuperSlabs they pin empty only now (the
  // flush below). Those count as freed since that slow path, so the TTL
  // runs from when the program freed them: a program that freed
  // everything, slept past the TTL and calls again gives it back then.
  // (Measured: 4 threads' 300 MiB freed, 2 s idle, TTL 1 s: 30-41 MiB were
  // still resident, in 14-18 SuperSlabs emptied by that call; now 6 MiB.)
  // A thread that ran only fast paths meanwhile may have freed some blocks
  // just now, and a SuperSlab that flush empties may hold slabs other
  // threads gave back just now (or an exited thread's heap, reclaimed by the
  // flush, blocks other threads freed): such a SuperSlab goes back up to one
  // TTL early (at most an unmap, and a map again if it is needed, per TTL).
  Heap* h = tl_heap;
  uint64_t paused_since = 0;
  if (h != &kEmptyHeap) {
    if (h->last_slow_ns != 0 && now - h->last_slow_ns >= kPauseNs) paused_since = h->last_slow_ns;
    h->last_slow_ns = now;
  }
  // This thread's bins and empty current slabs pin memory: at most every
  // 100 ms, per thread. (A busy class refills its bin at once: a few
  // hundred block moves per 100 ms at most.)
  if (h != &kEmptyHeap && now >= h->next_upkeep_ns) {
    h->next_upkeep_ns = now + RegionCache::kCheckIntervalNs;
    if (h->sends_big_blocks != 0) h->sends_big_blocks--;
    if (h->sends_small_blocks != 0) h->sends_small_blocks--;
    for (uint8_t& refilled : h->bin_refilled) {
      if (refilled != 0) refilled--;
    }
    if (paused_since != 0) SuperSlabSetReleaseDate(paused_since);
    FlushAllBins(h, /*keep_forwarding=*/true);
    h->wide_rows_refused = false;
    CollectRetired(h);
    DiscardIdleBigBlocks(h, /*now=*/false);
    if (paused_since != 0) SuperSlabSetReleaseDate(0);
  }
  if (now < __atomic_load_n(&next_reclaim_ns, __ATOMIC_RELAXED)) return;
  __atomic_store_n(&next_reclaim_ns, now + RegionCache::kCheckIntervalNs,
                   __ATOMIC_RELAXED);
  TransferSendHome(now - kTransferMaxAgeNs);
  PoolHeapsOfDeadThreads();
  ReclaimAbandonedHeaps();
  DrainSharedHeap(SharedDrain::kUpkeep);
  // Free slabs give their pages back once idle for the decay time while
  // they and the cached SuperSlabs together keep more resident than the
  // budget (see slab_pool.h); a batch per 100 ms.
  const uint64_t budget = GetOption(Option::kSuperslabResidentMb) << 20;
  const uint64_t cached = SuperSlabCacheResidentBytes();
  g_slab_pool.PurgeIdle(now, budget > cached ? budget - cached : 0, DecayNs(), kPurgeSlabs);
}

void TinyGlobalInit() {
  if (__atomic_load_n(&g_initialized, __ATOMIC_ACQUIRE)) return;
  platform::LockMutex(&g_init_lock);
  const bool first = !g_initialized;
  if (first) {
    InitConfigFromEnvironment();
    uint64_t random[2];
    platform::RandomWords(random, 2);
    InitFreeKey(random[0]);
    // Every system call hakmem makes besides memory mappings, at start-up
    // (see platform::ReadIdleMappingBudget).
    platform::ReadIdleMappingBudget();
    CountCpus();
    platform::RandomizeMapHints(random[1]);
    pthread_key_create(&g_thread_key, &OnThreadExit);
    const uint64_t prewarm = GetOption(Option::kSuperslabPrewarm);
    if (prewarm != 0) SuperSlabPrewarm(prewarm);
    __atomic_store_n(&g_initialized, true, __ATOMIC_RELEASE);
  }
  platform::UnlockMutex(&g_init_lock);
  // Outside the lock: the hook may allocate.
  if (first && OnAllocatorInit != nullptr) OnAllocatorInit();
}

namespace {
// Pops the top block `b` of the bin of `c` (not empty), telling whether it
// carried the zero-tail key.
Block* PopTellingZeroTail(Heap* h, int c, BinOffset top, Block* b, bool* tail_zero) {
  *tail_zero = KeyOf(b) == ZeroTailKey(BinKey(h, c));
  return PopFromBin(h, c, top, b);
}

void* MallocSlow(int size_class, bool* tail_zero) {
  Heap* h = tl_heap;
  void* p;
  *tail_zero = false;
  if (h == &kEmptyHeap && tl_thread_exited) {
    p = OrphanMalloc(size_class, tail_zero);
  } else {
    if (h == &kEmptyHeap) h = AttachHeap();
    if (h == nullptr) {
      errno = ENOMEM;
      return nullptr;
    }
    Beat(h);
    FlushOutgoing(h);
    h->mallocs_to_upkeep = kMallocsBetweenUpkeeps;
    TinyUpkeep();
    // A heap just adopted (a dead thread's) may come with blocks in its
    // bins, and one whose fast path counted down to its upkeep has some.
    const BinOffset top = h->bin_top[size_class];
    if (Block* b = *BinSlotAt(h, top)) return PopTellingZeroTail(h, size_class, top, b, tail_zero);
    p = StartsShared(h, size_class) ? SharedStartMalloc(h, size_class, tail_zero) : nullptr;
    if (p == nullptr) p = RefillBinAndPop(h, size_class, tail_zero);
    if (p == nullptr && OnOutOfMemory != nullptr && OnOutOfMemory()) {
      p = RefillBinAndPop(h, size_class, tail_zero);
    }
  }
  if (p == nullptr) errno = ENOMEM;
  return p;
}
}  // namespace

void* TinyMallocSlow(size_t size_class) {
  bool tail_zero;
  return MallocSlow(size_class, &tail_zero);
}

void* TinyMallocTellingZeroTail(int size_class, bool* tail_zero) {
  Heap* h = tl_heap;
  const BinOffset top = h->bin_top[size_class];
  Block* b = *BinSlotAt(h, top);
  // Counted as the fast path counts (calloc of the big classes pops only
  // here: a review found such a churn never ran the upkeep).
  if (b != nullptr && !UpkeepDueAtThisMalloc(h)) {
    return PopTellingZeroTail(h, size_class, top, b, tail_zero);
  }
  return MallocSlow(size_class, tail_zero);  // (an upkeep due: see Heap::mallocs_to_upkeep)
}

bool KeyBitsMarkFree(uint64_t bits) {
  if ((bits & ~uint64_t{6}) == 0) return bits != 6;  // list, remote, transfer
  if ((bits & 7) != 0) return false;
  if (((bits & kClassKeyBits) >> kClassKeyShift) >= static_cast<uint64_t>(kNumClasses)) {
    return false;
  }
  // Heap ids run from 1 (see HeapFreeKey). A block whose key another thread
  // wrote was freed after that thread's heap was made, and its count with it.
  const uint64_t id = (bits & kHeapKeyBits) >> kHeapKeyShift;
  return id != 0 && id <= __atomic_load_n(&g_heaps_created, __ATOMIC_RELAXED);
}

Block* PopZeroTailBlock(Block* b, uint64_t bin_word) {
  if (KeyOf(b) != ZeroTailKey(KeyFromStored(bin_word))) ReportCorruptFreeList(b);
  __atomic_store_n(&b->key, 0, __ATOMIC_RELEASE);
  return b;
}

void ReportCorruptFreeList(const void* block) {
  platform::ReportAndAbort("malloc(): double free detected", block,
                           "a block was freed twice (found on a free list twice)");
}

namespace {
// Owner of the slab holding `p`, after checking that `p` is a carved block
// start of a slab in use; reports and aborts otherwise.
Heap* CheckedOwner(const void* p, const char* operation) {
  const SlabInfo* info = SlabInfoOf(p);
  Heap* owner = static_cast<Heap*>(
      const_cast<void*>(__atomic_load_n(&info->owner, __ATOMIC_ACQUIRE)));
  if (owner == nullptr) {
    platform::ReportAndAbort(operation, p,
                             "not a live block (its slab is free: double free?)");
  }
  if (!IsBlockStart(info, p)) {
    platform::ReportAndAbort(operation, p,
                             "not the start of a block (interior pointer?)");
  }
  return owner;
}
}  // namespace

void TinyCheckLiveBlock(const void* p, const char* operation) {
  CheckedOwner(p, operation);
  const uint64_t key = KeyOf(static_cast<const Block*>(p));
  if (KeyMarksFree(key)) {
    platform::ReportAndAbort(operation, p, "block is free (use after free?)");
  }
}

void TinyFreeSlow(void* p) {
  platform::NoteMemoryFreed();
  Heap* owner = CheckedOwner(p, "free(): invalid pointer");
  Block* b = static_cast<Block*>(p);
  Heap* h = tl_heap;
  if (h == &kEmptyHeap && !tl_thread_exited) {
    // A thread that only frees (a consumer) gets a heap too: its bins batch
    // what it sends back.
    h = AttachHeap();
    if (h == nullptr) h = &kEmptyHeap;
  }
  // The block carries a free key: it is in some thread's bin, on its slab's
  // list, or waiting for its owner. (Or the program stored the 64-bit
  // secret there, which it has no way to learn short of reading freed
  // memory; no bin or list of another thread can be searched safely.)
  if (KeyMarksFree(KeyOf(b))) {
    platform::ReportAndAbort("free(): double free", p, "block is already free");
  }
  if (h == &kEmptyHeap) {  // no heap, no bins (an exited thread, no memory)
    SetKey(b, RemoteFreeKey());
    FreeRemote(h, owner, b, HasLookAheadWord(b));
    return;
  }
  Beat(h);
  const int c = SlabInfoOf(p)->size_class;
  if (BinDormant(h, c)) WakeBin(h, c);
  if (BinCount(h, c) >= BinLimit(h, c)) TinyUpkeep();  // a thread that only frees gets it too
  if (BinCount(h, c) >= BinLimit(h, c)) {
    // A bin that overflows with other threads' blocks grows: each overflow
    // sends blocks across, and a small bin overflows every few operations
    // in a steady flow between threads (measured, 1-2 KiB blocks, 90%
    // remote: 16-block bins ran at half the speed of 63-block ones, with
    // more RSS, as blocks piled up in transit). The upkeep shrinks it back.
    const uint32_t limit = BinLimit(h, c);
    Count(h->counters.overflow_flushes);
    // A forwarding bin sends all: none of it would be reused here.
    const bool forwarding = BinForwarding(h, c);
    const uint32_t flushed = forwarding ? limit : limit / 2;
    const uint32_t sent = FlushBin(h, c, flushed, FlushFor::kOverflow);
    h->bin_overflowed[c] = sent == 0;  // a swing of its own (SmallBinMaxLimitOf)
    const uint32_t grown = BinGrownLimitOf(c);
    if (c >= kFirstBigClass && sent != 0) h->sends_big_blocks = 2;  // see BigBinsMayGrow
    if (c < kFirstMidClass && sent != 0) h->sends_small_blocks = 2;  // (SendingSmallBinMaxLimitOf)
    if (NoteForwardingFlush(h, c, sent * 2 >= flushed) || forwarding) {
      // forwarding now or until now: no growth
    } else if (c >= kFirstBigClass) {
      // (Big classes' grown limit is their limit.) A big bin that
      // overflowed doubles its limit, up to BigBinMaxLimitOf, while the
      // heap's big bins together stay within kBigBinGrowthBudget of their
      // starting limits (the upkeep resets them); not for a heap that
      // sends big blocks to others while the process runs more threads
      // than CPUs (BigBinsMayGrow).
      if (BigBinsMayGrow(h)) GrowBin(h, c, BigBinMaxLimitOf(c), kBigBinGrowthBudget);
    } else if (sent != 0 && limit < grown) {
      SetGrownBinLimit(h, c, limit * 2 < grown ? limit * 2 : grown);
    }
  }
  PushOnBin(h, c, h->bin_top[c], b);
}

void TinyReclaimExitedThreads() {
  PoolHeapsOfDeadThreads();
  ReclaimAbandonedHeaps();
  DrainSharedHeap(SharedDrain::kUpkeep);
}

void TinyTrim() {
  Heap* h = tl_heap;
  if (h != &kEmptyHeap) {
    FlushAllBins(h);
    DiscardWideRows(h);  // (its bins are back in their own rows)
  }
  TransferSendHome(UINT64_MAX);  // everything home, this heap's blocks too
  if (h != &kEmptyHeap) {
    DrainRemote(h);
    CollectRetired(h);
    DiscardIdleBigBlocks(h, /*now=*/true);
  }
  PoolHeapsOfDeadThreads();
  ReclaimAbandonedHeaps(/*give_back_big_blocks=*/true);
  DrainSharedHeap(SharedDrain::kTrim);
  // Every idle slab's pages too (those idle since before the trim: a busy
  // program keeps returning slabs meanwhile).
  const uint64_t start = platform::NowNs();
  while (g_slab_pool.PurgeIdle(start, 0, 0, kPurgeSlabs) != 0) {
  }
}

uint32_t TinyTransferCachedBlocks(int size_class) {
  return g_transfer.CachedBlocks(size_class);
}

uint32_t TinyTransferBehindFlushes(int size_class) {
  const Heap* h = tl_heap;
  return size_class < kFirstMidClass ? h->behind_flushes[size_class] : 0;
}

uint32_t TinyRunCensusForTesting() { return Census(); }
void TinySetCpusForTesting(uint32_t cpus) {
  __atomic_store_n(&g_cpus_for_testing, cpus, __ATOMIC_RELAXED);
}
void TinySetSharedStartHeapsForTesting(uint32_t heaps) {
  __atomic_store_n(&g_shared_start_heaps_for_testing, heaps, __ATOMIC_RELAXED);
}

uint32_t TinyActiveHeaps() { return __atomic_load_n(&g_active_heaps, __ATOMIC_RELAXED); }

void TinySetTransferModeForTesting(int mode) {
  __atomic_store_n(&g_transfer_mode, mode, __ATOMIC_RELAXED);
}
bool TinyOversubscribed() { return __atomic_load_n(&g_oversubscribed, __ATOMIC_RELAXED); }
uint64_t TinySmallBinsGrown() { return __atomic_load_n(&g_small_bins_grown, __ATOMIC_RELAXED); }
uint32_t TinyCountedCpus() { return __atomic_load_n(&g_cpus, __ATOMIC_RELAXED); }

void TinyThreadExit() {
  Heap* h = tl_heap;
  if (h != &kEmptyHeap) DetachHeap(h);
}

void TinyLockForFork() {
  platform::LockMutex(&g_orphan_lock);
  platform::LockMutex(&g_pool_lock);
  g_slab_pool.LockForFork();
  g_transfer.LockAll();  // leaves: last
}

void TinyUnlockAfterFork(bool in_child) {
  if (!in_child) {
    g_transfer.UnlockAll();
    g_slab_pool.UnlockAfterFork(false);
    platform::UnlockMutex(&g_pool_lock);
    platform::UnlockMutex(&g_orphan_lock);
    return;
  }
  g_transfer.ResetLocksInChild();
  g_slab_pool.UnlockAfterFork(true);
  // A thread of the parent may have pushed onto a pooled heap's queue and
  // not yet said so (g_pooled_queue_pending) when the fork came: the
  // child's next reclaim walks the pool (a review, session 37).
  g_pooled_queue_pending.store(true, std::memory_order_relaxed);
  pthread_mutex_init(&g_pool_lock, nullptr);
  pthread_mutex_init(&g_orphan_lock, nullptr);
  // Only the forking thread lives on in the child. Every other active heap
  // is left as it is, for good: its thread owned it without a lock and may
  // have been in the middle of a slow path (a slab list half linked). Pooled
  // heaps are consistent (changed only under the pool lock, held here).
  for (Heap* h = g_all_heaps; h != nullptr; h = h->all_next) {
    if (h->state.load(std::memory_order_relaxed) == HeapState::kActive &&
        h != tl_heap) {
      RemoveActiveLocked(h);  // (a thread of the child may get its thread id)
      h->state.store(HeapState::kLeaked, std::memory_order_relaxed);
      g_heaps_leaked++;
      // Its bins never shrink again: their growth leaves the budget.
      g_small_bins_grown -= h->small_bins_grown;
    }
  }
}

namespace {
// A slab's Slab record and its (first) SlabInfo sit at the same index only
// in a SuperSlab of 32 slabs (see SlabRecordIndexOf, kInfoChunkShift).
void CountSlabs(SuperSlab* ss, void* arg) {
  TinyStats* stats = static_cast<TinyStats*>(arg);
  // Read once: a cached SuperSlab may be formatted meanwhile.
  const int shift = __atomic_load_n(&ss->slab_shift, __ATOMIC_RELAXED);
  if (shift != kSmallSlabShift && shift != kMidSlabShift && shift != kBigSlabShift) return;
  const int copies = 1 << (shift - kInfoChunkShift);
  const int first_record = static_cast<int>(SlabRecordIndexOf(ss, shift));
  for (int i = 0; i < kMaxSlabsPerSuperSlab / copies; i++) {
    const Slab& s = ss->slabs[first_record + i];
    const SlabInfo& info = ss->infos[i * copies];
    if (__atomic_load_n(&info.owner, __ATOMIC_RELAXED) == nullptr) continue;
    stats->slabs_in_use[info.size_class]++;
    stats->blocks_in_use[info.size_class] += __atomic_load_n(&s.used, __ATOMIC_RELAXED);
  }
}
}  // namespace

void GetTinyStats(TinyStats* stats) {
  // This thread's pending remote frees are free blocks: taken in first, as
  // its next slow path would (a worker freed this thread's blocks and
  // exited: they counted as in use, FINDINGS F35). Other threads' queues
  // still count until their owners take them in.
  Heap* self = tl_heap;
  if (self != &kEmptyHeap && !self->remote.Empty()) DrainRemote(self);
  *stats = TinyStats{};
  platform::LockMutex(&g_pool_lock);
  stats->heaps_created = g_heaps_created;
  stats->heaps_pooled = g_heaps_pooled;
  stats->heaps_leaked_by_fork = g_heaps_leaked;
  stats->heaps_of_dead_threads = g_heaps_of_dead_threads;
  HeapCounters& sum = stats->counters;
  for (const Heap* h = g_all_heaps; h != nullptr; h = h->all_next) {
    const HeapCounters& c = h->counters;
    sum.refills += __atomic_load_n(&c.refills, __ATOMIC_RELAXED);
    sum.overflow_flushes += __atomic_load_n(&c.overflow_flushes, __ATOMIC_RELAXED);
    sum.blocks_sent_to_owners += __atomic_load_n(&c.blocks_sent_to_owners, __ATOMIC_RELAXED);
    sum.blocks_drained += __atomic_load_n(&c.blocks_drained, __ATOMIC_RELAXED);
    sum.transfer_batches_pushed += __atomic_load_n(&c.transfer_batches_pushed, __ATOMIC_RELAXED);
    sum.transfer_batches_taken += __atomic_load_n(&c.transfer_batches_taken, __ATOMIC_RELAXED);
    sum.transfer_blocks_sent_home +=
        __atomic_load_n(&c.transfer_blocks_sent_home, __ATOMIC_RELAXED);
    sum.shared_start_blocks += __atomic_load_n(&c.shared_start_blocks, __ATOMIC_RELAXED);
  }
  platform::UnlockMutex(&g_pool_lock);
  ForEachSuperSlab(&CountSlabs, stats);
  // Blocks in this thread's bins and in the transfer cache are free (other
  // threads' bins are not read).
  const Heap* h = tl_heap;
  // (Read after the slabs: another thread may have moved blocks into the
  // cache meanwhile, so the difference is clamped at 0.)
  for (int c = 0; c < kNumClasses; c++) {
    const uint64_t free_here = BinCount(h, c) + TinyTransferCachedBlocks(c);
    uint64_t& in_use = stats->blocks_in_use[c];
    in_use = in_use > free_here ? in_use - free_here : 0;
  }
}

}  // namespace hakmem
