// SuperSlab arena: 2 MiB aligned regions carved into 64 KiB slabs.
//
// Layout of one SuperSlab (kRegionAlign bytes, aligned to its size):
//
//   slab 0      header: RegionHeader, owner, slab bitmaps, then 32 Slab
//               records (metadata of every slab). The rest of slab 0 is
//               never touched, so it costs address space but no memory.
//   slab 1..31  blocks of one size class each, carved lazily (a slab's
//               untouched tail costs no memory either).
//
// Because slabs are 64 KiB aligned, a block's slab and its offset in the slab
// come from address bits alone, and a block of size S is aligned to the
// largest power of two dividing S (used by aligned allocation).
//
// A SuperSlab belongs to one owner (a thread heap, see hakmem/tiny); only the
// owner touches its slabs' free lists. Other threads hand blocks back through
// the owner's RemoteQueue (remote_queue.h).
#ifndef HAKMEM_SUPERSLAB_SUPERSLAB_H_
#define HAKMEM_SUPERSLAB_SUPERSLAB_H_

#include <stddef.h>
#include <stdint.h>

#include <atomic>

#include "hakmem/platform.h"
#include "hakmem/registry/region.h"
#include "hakmem/registry/region_cache.h"

namespace hakmem {

constexpr int kSlabShift = 16;
constexpr size_t kSlabSize = size_t{1} << kSlabShift;  // 64 KiB
constexpr int kSlabsPerSuperSlab = static_cast<int>(kRegionAlign / kSlabSize);
constexpr size_t kSuperSlabSize = kRegionAlign;
// Slab records start here in every region header (a large block's header
// leaves this area zero, so its "slabs" look unowned to the free fast path).
constexpr size_t kSlabRecordsOffset = 128;

// A free block. `key` marks blocks that are free: free() writes the process
// secret there and malloc() clears it, so a second free of the same block is
// caught by one compare (then confirmed on the slow path).
struct Block {
  Block* next;
  uint64_t key;
};

// Metadata of one slab, 64 bytes; the fields the fast paths touch come first.
struct Slab {
  Block* free;            // free list (owner thread only)
  const void* owner;      // owning heap while the slab is in use, else null
  uint32_t used;          // blocks handed out and not yet freed back here
  uint32_t carve_offset;  // offsets below this have been carved into blocks
  uint64_t divisor_magic; // offset % block_size == 0 iff offset*magic <= magic-1
  uint32_t block_size;
  uint16_t capacity;      // blocks that fit in the slab
  uint8_t size_class;
  uint8_t in_list;        // 1 while on the owner's "has free blocks" list
  Slab* prev;             // owner's per-class list links
  Slab* next;
  uint64_t reserved;
};
static_assert(sizeof(Slab) == 64, "one cache line per slab record");

struct SuperSlab {
  RegionHeader region;          // magic, kind, size, LRU links
  const void* owner;            // heap that owns the slabs, null when cached
  uint32_t used_slabs;          // bit i set: slab i is in use (bit 0: header)
  uint32_t reserved;
  SuperSlab* prev;              // owner's list links
  SuperSlab* next;
  SuperSlab* all_prev;          // list of every mapped SuperSlab (for stats)
  SuperSlab* all_next;
  alignas(64) Slab slabs[kSlabsPerSuperSlab];
};
static_assert(offsetof(SuperSlab, slabs) == kSlabRecordsOffset,
              "slab records at a fixed offset");
static_assert(sizeof(SuperSlab) <= platform::kPageSize, "header fits a page");

constexpr uint32_t kAllSlabsUsed = 0xffffffffu;

HAKMEM_ALWAYS_INLINE SuperSlab* SuperSlabOf(const void* p) {
  return reinterpret_cast<SuperSlab*>(RegionBaseOf(p));
}

HAKMEM_ALWAYS_INLINE Slab* SlabOf(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  return &SuperSlabOf(p)->slabs[(a >> kSlabShift) & (kSlabsPerSuperSlab - 1)];
}

HAKMEM_ALWAYS_INLINE uintptr_t SlabOffsetOf(const void* p) {
  return reinterpret_cast<uintptr_t>(p) & (kSlabSize - 1);
}

// True if `offset` (in the slab) is the start of a block that was carved.
// Lemire's divisibility test: one multiply, no division.
HAKMEM_ALWAYS_INLINE bool IsBlockStart(const Slab* s, uintptr_t offset) {
  const uint64_t m = s->divisor_magic;
  return (offset * m <= m - 1) & (offset < s->carve_offset);
}

inline int SlabIndex(const Slab* s) {
  return static_cast<int>(s - SuperSlabOf(s)->slabs);
}

inline char* SlabStart(const Slab* s) {
  return reinterpret_cast<char*>(RegionBaseOf(s)) +
         (static_cast<size_t>(SlabIndex(s)) << kSlabShift);
}

// Magic for IsBlockStart: ceil(2^64 / block_size).
inline uint64_t DivisorMagic(uint32_t block_size) {
  return UINT64_MAX / block_size + 1;
}

// Prepares slab `index` of `ss` for blocks of `block_size`. Carves nothing.
Slab* SlabInit(SuperSlab* ss, int index, uint32_t block_size, int size_class,
               const void* owner);
// Carves up to `max_blocks` fresh blocks onto the slab's free list; returns
// how many. Only the carved blocks' memory is touched.
uint32_t SlabCarve(Slab* s, uint32_t max_blocks);
inline bool SlabCanCarve(const Slab* s) {
  return s->carve_offset + s->block_size <= kSlabSize;
}
// Index of a free slab of `ss` (marked used), or -1.
int SuperSlabTakeFreeSlab(SuperSlab* ss);
// Marks the slab unowned and its index free again. Returns true if the
// SuperSlab has no slab in use any more.
bool SuperSlabReturnSlab(SuperSlab* ss, Slab* s);

// A SuperSlab for `owner`: from the LRU cache if one is there, else mapped
// and registered. Returns nullptr when out of memory.
SuperSlab* SuperSlabAcquire(const void* owner);
// Parks an empty SuperSlab in the LRU cache (which may unmap it at once if
// the limits say so).
void SuperSlabRelease(SuperSlab* ss);
// Maps `count` SuperSlabs into the cache ahead of use (HAKMEM_SUPERSLAB_PREWARM).
void SuperSlabPrewarm(uint64_t count);
// Applies the cache's limits now (TTL included) / empties the cache.
void SuperSlabCacheEnforceLimits();
void SuperSlabCacheReleaseAll();

struct SuperSlabStats {
  uint64_t mapped;        // SuperSlabs mapped now (in use or cached)
  uint64_t evicted;       // unmapped by the cache's limits
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
