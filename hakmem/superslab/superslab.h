// SuperSlab arena: 2 MiB aligned regions carved into slabs.
//
// A SuperSlab has one slab geometry, its "slab shift", chosen when it is
// formatted and recorded as its registry tag:
//
//   shift 16  32 slabs of 64 KiB, for small classes.
//   shift 19  4 slabs of 512 KiB, for mid classes (2.5-32 KiB blocks, so a
//             slab holds 15 or more).
//   shift 21  one slab of 2 MiB, for big classes (40-256 KiB blocks, 7 to
//             51 of them).
//
// In the first, slab 0 holds the header and is never carved: untouched, it
// costs address space only. In the others, slab 0's blocks start past the
// header's page (SlabFirstBlockOffset).
// Either way every block's offset in its slab stays below the slab size,
// which the block-start test below relies on.
//
// The header (first page) holds the RegionHeader and two arrays of 32
// records, the arrays apart so that the two kinds never share a cache line:
// a SlabInfo per 64 KiB of the SuperSlab (a slab's, in each 64 KiB it
// spans: see kInfoChunkShift) and a Slab per slab (which one:
// SlabRecordIndexOf):
//   SlabInfo  read-mostly, 32 bytes: owner, geometry, carved extent. Any
//             thread that frees a block reads it; only slab set-up,
//             carving and return write it (every copy).
//   Slab      owner-written, a cache line each: free list, count, list
//             links. Only the owner thread touches it, and neighbouring
//             slabs may have different owners.
// A thread freeing another thread's block thus never pulls a line that the
// owner writes on every malloc (the owner would pay a miss to take it back).
// Slab starts are slab-size aligned (64 KiB or more), and first blocks
// start at a multiple of their natural alignment, so a block of size S is
// aligned to the largest power of two dividing S, which aligned allocation
// relies on. Slabs are carved lazily: an untouched tail
// costs no memory.
//
// Each slab in use belongs to one owner (a thread heap, see hakmem/tiny),
// recorded in its SlabInfo; only the owner touches its free list. Other
// threads hand blocks back through the owner's RemoteQueue
// (remote_queue.h). The SuperSlab itself belongs to whoever hands out its
// slabs (the slab pool, slab_pool.h), and its slabs may go to different
// heaps.
#ifndef HAKMEM_SUPERSLAB_SUPERSLAB_H_
#define HAKMEM_SUPERSLAB_SUPERSLAB_H_

#include <stddef.h>
#include <stdint.h>

#include <atomic>

#include "hakmem/platform.h"
#include "hakmem/registry/region.h"
#include "hakmem/registry/region_cache.h"

namespace hakmem {

constexpr int kSmallSlabShift = 16;  // 64 KiB slabs
constexpr int kMidSlabShift = 19;    // 512 KiB slabs
constexpr int kBigSlabShift = 21;    // one slab of a whole SuperSlab
constexpr size_t kSmallSlabSize = size_t{1} << kSmallSlabShift;
constexpr int kMaxSlabsPerSuperSlab =
    static_cast<int>(kRegionAlign >> kSmallSlabShift);
constexpr size_t kSuperSlabSize = kRegionAlign;
// SlabInfo records start here in every region header (a large block's header
// leaves this area zero, so its "slabs" look unowned to the free fast path).
constexpr size_t kSlabInfosOffset = 128;
constexpr size_t kSlabInfoSize = 32;
constexpr size_t kSlabRecordSize = 64;
constexpr size_t kSlabsOffset =
    kSlabInfosOffset + kMaxSlabsPerSuperSlab * kSlabInfoSize;

// A free block. `key` marks blocks that are free: free() writes a key
// derived from the process secret there and malloc() clears it (see
// hakmem/tiny/tiny_alloc.h).
struct Block {
  Block* next;
  uint64_t key;
};
// The key word holds StoredKey(key) XOR the block's own address (KeyOf,
// SetKey): a key left in memory that later became part of a live block of
// another geometry (a slab carved again for another class), and copied from
// there by the program as indeterminate bytes into a live block's second
// word, must not read as a key at its new address: such a live block was
// taken for a free one (tests/FINDINGS.md F19). Read at B, a word written at
// A decodes as KeyFromStored(StoredKey(key) ^ (A ^ B)), a multiplication by
// an odd constant and its inverse: unlike any map linear in the bits, whose
// blind spot is a set of distances (XOR alone: every copy within 32 GiB
// changed only a key's heap id bits, and two heaps sufficed; halves
// swapped: every multiple of 4 GiB, both from reviews), it scatters every
// distance over all 64 bits, so a copy reads as a key about as rarely as
// random data does. A live block's word, cleared to 0 by malloc, decodes as
// its address times the constant, a multiple of 16 where every key is odd
// (the secret's bit 0 is set, and no key varies in it). The fast paths
// keep their bins' keys stored: an XOR with the address and a compare.
constexpr uint64_t kKeyMultiplier = 0x9e3779b97f4a7c15ull;  // odd
constexpr uint64_t InverseOf(uint64_t odd) {  // mod 2^64 (Newton's iteration)
  uint64_t inverse = odd;
  for (int i = 0; i < 6; i++) inverse *= 2 - odd * inverse;
  return inverse;
}
static_assert(kKeyMultiplier * InverseOf(kKeyMultiplier) == 1, "inverses");
constexpr uint64_t StoredKey(uint64_t key) { return key * InverseOf(kKeyMultiplier); }
constexpr uint64_t KeyFromStored(uint64_t word) { return word * kKeyMultiplier; }
// The word as stored, the address taken out: StoredKey(key).
HAKMEM_ALWAYS_INLINE uint64_t KeyWord(const Block* b) {
  return b->key ^ reinterpret_cast<uintptr_t>(b);
}
HAKMEM_ALWAYS_INLINE void SetKeyWord(Block* b, uint64_t word) {
  b->key = word ^ reinterpret_cast<uintptr_t>(b);
}
HAKMEM_ALWAYS_INLINE uint64_t KeyOf(const Block* b) { return KeyFromStored(KeyWord(b)); }
HAKMEM_ALWAYS_INLINE void SetKey(Block* b, uint64_t key) { SetKeyWord(b, StoredKey(key)); }

// What a slab is to its owner heap (see hakmem/tiny/heap.h).
enum SlabRole : uint8_t {
  kSlabDetached = 0,  // full, or being set up
  kSlabPartial = 1,   // on the owner's "has free blocks listed" list
  kSlabCurrent = 2,   // the one its class's bin refills from
  kSlabCarvable = 3,  // on the owner's "room to carve, no free block" list
};

// A slab's read-mostly metadata (see the top of this file).
struct SlabInfo {
  const void* owner;       // owning heap while the slab is in use, else null
  uint64_t divisor_magic;  // see IsBlockStart
  uint32_t carved_limit;   // see IsBlockStart (at most the slab size); 0 while free
  uint32_t first_block_low32;  // the low 32 bits of the slab's first block's address
  uint32_t block_size;     // at most 256 KiB
  uint8_t size_class;
  uint8_t slab_shift;      // the SuperSlab's
};
// Two a line: neighbouring slabs' owners may both carve (a store to
// carved_limit per refill that carves) and share that line; a line each would
// not fit the header page (128 + 32 * (64 + 64) > 4096).
static_assert(sizeof(SlabInfo) == kSlabInfoSize, "two records a line");

// A slab's owner-written metadata; a heap's current[c] points at one. A
// line of its own: the slab next to it may belong to another thread.
struct alignas(64) Slab {
  Block* free;             // free list
  uint32_t used;           // blocks handed out and not freed back here
  uint8_t role;            // SlabRole: what the owner heap uses it as
  // While the slab is free: whether it is on the slab pool's idle list
  // (its pages may be resident), its links there, and since when it is free
  // (see slab_pool.h). Only the pool touches these, under its lock.
  uint8_t idle;
  Slab* prev;              // owner's per-class list links
  Slab* next;
  Slab* idle_prev;
  Slab* idle_next;
  uint64_t idle_since_ns;
  // How far from its start the slab's blocks were ever carved since its
  // pages last read zero (mapped, given back, or from the cache): what a
  // take of this slab finds resident. Kept across set-ups, so that a take
  // prefers the given-back slab that faults least (SlabPool::Take).
  uint32_t touched_bytes;
};
static_assert(sizeof(Slab) == kSlabRecordSize, "a line each");

struct SuperSlab {
  RegionHeader region;  // magic, kind, size, LRU links
  const void* owner;    // who hands out its slabs (the slab pool), null when cached
  uint32_t used_slabs;  // bit i set: slab i is in use (or reserved)
  uint32_t full_mask;   // used_slabs == full_mask: no free slab left
  SuperSlab* prev;      // the slab pool's list links
  SuperSlab* next;
  SuperSlab* all_prev;  // list of every mapped SuperSlab (for stats)
  SuperSlab* all_next;
  uint8_t slab_shift;   // kSmallSlabShift, kMidSlabShift or kBigSlabShift
  // In a SuperSlab of one slab (big classes), the offset from which its
  // memory reads zero: pages not written since they were mapped or given
  // back (carving moves it up). kSuperSlabSize when nothing is known.
  uint32_t zero_from;
  // infos: one per 64 KiB (SlabInfoOf), slab i's copies from SlabInfoAt
  // on; slabs: indexed by SlabRecordIndexOf, not by slab index (see there).
  alignas(64) SlabInfo infos[kMaxSlabsPerSuperSlab];
  alignas(64) Slab slabs[kMaxSlabsPerSuperSlab];
};
static_assert(offsetof(SuperSlab, infos) == kSlabInfosOffset &&
                  offsetof(SuperSlab, slabs) == kSlabsOffset,
              "slab records at fixed offsets");
static_assert(kSlabInfosOffset % 64 == 0 && kSlabsOffset % 64 == 0,
              "an info and an owner record never share a cache line");
static_assert(sizeof(SuperSlab) <= platform::kPageSize, "header fits a page");

HAKMEM_ALWAYS_INLINE SuperSlab* SuperSlabOf(const void* p) {
  return reinterpret_cast<SuperSlab*>(RegionBaseOf(p));
}

// Which of its SuperSlab's Slab records belongs to the slab
// holding `p`, given the SuperSlab's slab shift (its registry tag): the
// address bits from the shift up, modulo the 32 records. With 32 slabs
// that is the slab's index; with 4 (mid) or 1 (big), bits of the
// SuperSlab's own address also choose among 8 or 32 sets of records.
// Why: SuperSlabs are 2 MiB aligned, so one fixed record would sit at the
// same offset in every SuperSlab, in the same L1 set (an L1 way spans
// 4 KiB) and L2 set (a way spans 64 KiB or more). A heap of more big
// SuperSlabs than ways missed both on most frees (cachegrind, 32-256 KiB
// buffers: 0.74 L1 and 0.45 L2 misses a free on the record's line).
HAKMEM_ALWAYS_INLINE uintptr_t SlabRecordIndexOf(const void* p, int slab_shift) {
  return (reinterpret_cast<uintptr_t>(p) >> slab_shift) & (kMaxSlabsPerSuperSlab - 1);
}
// SlabInfos are kept per 64 KiB of a SuperSlab, whatever its geometry: a
// small slab has one, a mid slab 8 copies, a big slab 32, all alike (every
// change writes each). So the SlabInfo of the slab holding `p` follows from
// the address bits of `p` alone, without the SuperSlab's slab shift: free
// loads it at once, not after the registry byte, which only says that the
// region is ours (a chain of dependent loads one shorter: Larson's loop
// 1.09x, the 16-1024 lane 1.014x). They also spread over the page: a free
// reads the copy for its block's 64 KiB. A large region's header leaves all
// 32 zero (unowned).
constexpr int kInfoChunkShift = kSmallSlabShift;
HAKMEM_ALWAYS_INLINE SlabInfo* SlabInfoOf(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  return reinterpret_cast<SlabInfo*>((a & ~kRegionMask) + kSlabInfosOffset +
                                     ((a >> kInfoChunkShift) & (kMaxSlabsPerSuperSlab - 1)) *
                                         kSlabInfoSize);
}
HAKMEM_ALWAYS_INLINE Slab* SlabOfWithShift(const void* p, int slab_shift) {
  const uintptr_t base = reinterpret_cast<uintptr_t>(p) & ~kRegionMask;
  return reinterpret_cast<Slab*>(base + kSlabsOffset +
                                 SlabRecordIndexOf(p, slab_shift) * kSlabRecordSize);
}
// The records of slab `index` (0 for a SuperSlab of one slab) of `ss`.
inline int FirstSlabRecord(const SuperSlab* ss) {
  return static_cast<int>(SlabRecordIndexOf(ss, ss->slab_shift));
}
inline Slab* SlabAt(SuperSlab* ss, int index) { return &ss->slabs[FirstSlabRecord(ss) + index]; }
// How many SlabInfo copies a slab of `ss` has (see kInfoChunkShift).
inline int InfoCopiesPerSlab(const SuperSlab* ss) {
  return 1 << (ss->slab_shift - kInfoChunkShift);
}
// The first of slab `index`'s SlabInfo copies; the others follow it.
inline SlabInfo* SlabInfoAt(SuperSlab* ss, int index) {
  return &ss->infos[index * InfoCopiesPerSlab(ss)];
}

inline Slab* SlabOf(const void* p) {
  return SlabOfWithShift(p, SuperSlabOf(p)->slab_shift);
}

inline int SlabIndex(const Slab* s) {
  const SuperSlab* ss = SuperSlabOf(s);
  return static_cast<int>(s - ss->slabs) - FirstSlabRecord(ss);
}

// The (first) SlabInfo of a real slab (not kEmptySlab).
inline SlabInfo* InfoOf(const Slab* s) {
  return SlabInfoAt(SuperSlabOf(s), SlabIndex(s));
}

// True if `p` is the start of a block that was carved from the slab of
// `info`, with one multiply and one compare. With d = block_size and
// m = divisor_magic (the smallest m > 2^64/d, see DivisorMagic), and n the
// offset of `p` from the first block modulo 2^32 (from the addresses' low
// 32 bits: no mask of `p` on the fast path) (Lemire et al., "Faster
// remainder by direct computation"):
//   n = k*d      gives  n*m mod 2^64 = k*e,  with e = d*m - 2^64 in [1, d];
//   otherwise           n*m mod 2^64 >= m - 1 >= 2^46 (d <= 2^18).
// So "n*m < carved_blocks*e" holds exactly for the carved block starts, and
// carved_blocks*e <= carved_blocks*d fits 32 bits. `p` must lie in the
// slab, so that n is below the slab size (or, in the gap before the first
// block, at most 256 KiB, wraps to a 32-bit n whose quotient, at least
// 2^14 - 1, exceeds any block count).
// False for every pointer into a free slab (carved_limit 0), and into a
// large region (its zeroed records).
HAKMEM_ALWAYS_INLINE bool IsBlockStart(const SlabInfo* info, const void* p) {
  const uint64_t offset = static_cast<uint32_t>(
      static_cast<uint32_t>(reinterpret_cast<uintptr_t>(p)) - info->first_block_low32);
  return offset * info->divisor_magic <
         __atomic_load_n(&info->carved_limit, __ATOMIC_RELAXED);
}

// Magic for IsBlockStart: ceil(2^64 / d), plus one when d divides 2^64 (so
// that e is never 0).
inline uint64_t DivisorMagic(uint32_t block_size) {
  uint64_t m = UINT64_MAX / block_size + 1;
  if (m * block_size == 0) m++;
  return m;
}

// e of IsBlockStart: what one block adds to carved_limit.
inline uint32_t CarveStep(const SlabInfo* info) {
  return static_cast<uint32_t>(info->divisor_magic * uint64_t{info->block_size});
}

// Address of the slab's first block.
inline uintptr_t SlabStart(const Slab* s) {
  const uintptr_t base = reinterpret_cast<uintptr_t>(SuperSlabOf(s));
  return base + (InfoOf(s)->first_block_low32 - static_cast<uint32_t>(base));
}

// The slab's size.
inline uint32_t SlabLimit(const Slab* s) {
  return uint32_t{1} << InfoOf(s)->slab_shift;
}

// Bytes between the slab's start and its first block (see SlabColor).
inline uint32_t SlabColorOf(const Slab* s) {
  return InfoOf(s)->first_block_low32 & (SlabLimit(s) - 1);
}

inline uint32_t SlabCapacity(const Slab* s) {
  return (SlabLimit(s) - SlabColorOf(s)) / InfoOf(s)->block_size;
}

// Cache colouring: a slab's first block starts this far into the slab. A
// class's busy blocks are its first few, and slab starts are 64 KiB aligned,
// so without it every class's busy blocks would share the same few L1 sets
// (an L1 way spans 4 KiB). The offset keeps every block aligned to the
// largest power of two dividing the block size, as aligned allocation needs.
inline uint32_t SlabColor(int size_class, uint32_t block_size) {
  const uint32_t natural = block_size & (0u - block_size);
  const uint32_t step = natural < 64 ? 64 : natural;
  if (step >= 4096) return 0;
  const uint32_t colors = 4096 / step;
  return static_cast<uint32_t>(size_class) * 37 % colors * step;
}

// Where slab `index`'s first block starts, from the slab's start. Slab 0 is
// carved only in SuperSlabs of mid and big slabs, whose header takes its
// first page: the blocks start past it, at their natural alignment, or
// coloured as in other slabs where that is below a page. (Big classes are
// multiples of 8 KiB: this costs no class a block, e.g. 256 KiB blocks
// from 256 KiB on, 7 of them, as 7 fit after the page. Mid classes lose a
// block or two of slab 0's.)
inline uint32_t SlabFirstBlockOffset(int index, int size_class, uint32_t block_size) {
  if (index != 0) return SlabColor(size_class, block_size);
  const uint32_t natural = block_size & (0u - block_size);
  if (natural >= platform::kPageSize) return natural;
  return static_cast<uint32_t>(platform::kPageSize) + SlabColor(size_class, block_size);
}

// In a SuperSlab of one slab: the address from which the slab's memory
// reads zero (see SuperSlab::zero_from). Blocks carved from there on have
// zero bytes but for what the carve writes into their first page.
inline uintptr_t BigSlabZeroFrom(const Slab* s) {
  const SuperSlab* ss = SuperSlabOf(s);
  return reinterpret_cast<uintptr_t>(ss) + ss->zero_from;
}

// Blocks carved so far.
inline uint32_t SlabCarved(const Slab* s) {
  const SlabInfo* info = InfoOf(s);
  return static_cast<uint32_t>(
      __atomic_load_n(&info->carved_limit, __ATOMIC_RELAXED) / CarveStep(info));
}

inline bool SlabCanCarve(const Slab* s) { return SlabCarved(s) < SlabCapacity(s); }

// Prepares slab `index` of `ss` for blocks of `block_size`. Carves nothing.
Slab* SlabInit(SuperSlab* ss, int index, uint32_t block_size, int size_class,
               const void* owner);
// Carves up to `max_blocks` fresh blocks, in address order, into `out`,
// marking each with `free_key`; returns how many. Only the carved blocks'
// memory is touched (one store each). The slab's free list is left alone:
// the blocks go straight to their taker (a bin), not through the list.
// `out_step` -1: into out[0], out[-1] and on down (a bin's slots, top down).
uint32_t SlabCarve(Slab* s, Block** out, uint32_t max_blocks, uint64_t free_key,
                   ptrdiff_t out_step = 1);
// Index of a free slab of `ss` (marked used), or -1.
int SuperSlabTakeFreeSlab(SuperSlab* ss);
// Marks free slab `index` of `ss` used.
inline void SuperSlabTakeSlabAt(SuperSlab* ss, int index) { ss->used_slabs |= 1u << index; }
inline bool SuperSlabFull(const SuperSlab* ss) {
  return ss->used_slabs == ss->full_mask;
}
// Marks the slab unowned and its index free again, its blocks forgotten:
// whoever takes it next carves it again, in address order. (Until session
// 18 a returned slab kept its free list for the next taker of its class,
// which walked it instead of carving: where the program had freed in no
// order, that list was in no order, and so were the blocks of the
// structure built next: 64% of 1M 256 B mallocs after such a tear-down
// were next to the one before (mimalloc 99.6%), and a later walk of their
// freed halves took 40-70 ns a block instead of 14.) Returns true if the
// SuperSlab has no slab in use any more.
bool SuperSlabReturnSlab(SuperSlab* ss, Slab* s);

// A SuperSlab's shape in the cache (RegionHeader::shape): its geometry,
// and for one big slab its class too (whose blocks touched its pages from
// the front). (tiny/heap.cc checks that every class's is below
// kRegionShapes.)
constexpr uint16_t SuperSlabShapeOf(int slab_shift, int size_class) {
  return static_cast<uint16_t>(slab_shift == kBigSlabShift ? kBigSlabShift + 1 + size_class
                                                           : slab_shift + 1);
}

// A SuperSlab with no slab in use, formatted with `slab_shift` for `owner`
// (who takes a slab of `size_class` first): from the LRU cache if one is
// there, preferring one last used the same way (its pages where they will
// be touched), else mapped and registered. Returns nullptr when out of
// memory.
SuperSlab* SuperSlabAcquire(const void* owner, int slab_shift, int size_class);
// Re-formats an empty SuperSlab with another slab geometry.
void SuperSlabFormat(SuperSlab* ss, int slab_shift);
// Parks an empty SuperSlab in the LRU cache (which may unmap it at once if
// the limits say so).
void SuperSlabRelease(SuperSlab* ss);
// While set (not 0) on the calling thread, the SuperSlabs it releases count
// as freed since `ns` (see RegionCache::Put): their blocks were freed then,
// though they came back only now. 0 clears it.
void SuperSlabSetReleaseDate(uint64_t ns);
// Maps `count` SuperSlabs into the cache ahead of use (HAKMEM_SUPERSLAB_PREWARM).
void SuperSlabPrewarm(uint64_t count);
// Applies the cache's limits now (TTL included) / empties the cache.
void SuperSlabCacheEnforceLimits();
void SuperSlabCacheMaybeEnforceLimits(uint64_t now);  // time-gated, for slow paths
// Bytes of the cached SuperSlabs whose pages were not given back.
uint64_t SuperSlabCacheResidentBytes();
// Gives back the pages of cached SuperSlabs beyond the resident budget now,
// not after the decay (unless such give-backs were regretted lately, see
// RegionCache::GiveBackForAnotherLayer): for the large blocks' layer, about
// to fault pages in that the program's freed small blocks' could have been.
void SuperSlabCacheGiveBackForLargeBlocks(uint64_t when_quiet_bytes = 0);
// Moves the pages of cached SuperSlabs (but their header pages) to [to[i],
// to[i] + 2 MiB - 4 KiB), while the cache keeps more than its resident
// budget, for the large blocks' layer about to fault pages in there
// (RegionCache::MoveCachedPages; `min_age_ns`: of SuperSlabs cached at
// least that long). Returns how many of `to` got pages.
int SuperSlabCacheMovePages(char* const* to, int count, uint64_t min_age_ns = 0);
// Called (if set) before a SuperSlab's pages are faulted in (a fresh
// mapping, or a cached one whose pages were given back), with the range of
// them (all but the header page): the layer above moves free resident pages
// of its own there if it can (returns true: they hold old data now), and
// gives back what its own cache keeps resident beyond its budget (the
// large blocks' pages, which small blocks cannot use).
using FreshSuperSlabHook = bool (*)(char* pages, size_t bytes);
void SuperSlabSetFreshMappingHook(FreshSuperSlabHook hook);
void SuperSlabCacheReleaseAll();
// Unmaps the retained SuperSlabs (evicted ones kept reserved, see
// HAKMEM_SUPERSLAB_RETAIN_MB): for a mapping that failed, before its retry.
void SuperSlabReleaseRetained();
// Unmaps those beyond the retain limit (after the knob changed).
void SuperSlabApplyRetainLimit();

struct SuperSlabStats {
  uint64_t mapped;    // SuperSlabs mapped now (in use or cached)
  uint64_t evicted;   // by the cache's limits or a trim (retained or unmapped)
  uint64_t retained;  // evicted, kept reserved with their pages given back
  RegionCacheStats cache;
};
SuperSlabStats GetSuperSlabStats();

// Calls `fn(ss, arg)` for every mapped SuperSlab, under the list lock.
void ForEachSuperSlab(void (*fn)(SuperSlab* ss, void* arg), void* arg);

// fork(): take and release every lock of this layer.
void SuperSlabLockForFork();
void SuperSlabUnlockAfterFork(bool in_child);

}  // namespace hakmem

#endif  // HAKMEM_SUPERSLAB_SUPERSLAB_H_
