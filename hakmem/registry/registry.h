// Super-registry: pointer -> owning region in O(1), without probing memory.
//
// One byte (a "tag") per 2 MiB region. Tag 0 means "not ours". A SuperSlab's
// tag is its slab shift; the free fast path asks only whether a block's
// region is ours (its slab record follows from the pointer alone, see
// SlabInfoOf). Two tables:
//   - The window table: a flat static table (1 MiB of bss, zero: the kernel
//     backs only the pages in use) covering the 2 TiB window where
//     MapAligned places regions (platform.h). One load, for the fast paths.
//   - The outside table, for regions the kernel placed elsewhere (the window
//     was taken or full): a directory of 4,096 entries (one per 32 GiB) of
//     16 KiB leaves, mapped on first use. Only slow paths read it: a fast path
//     that misses the window table falls back to the slow path, which asks
//     both.
// Reads are lock-free relaxed loads. A region is tagged before any block of it
// is handed out and untagged before it is unmapped. Leaves are never unmapped.
// (A flat table for the whole 47-bit space would be 64 MiB of address space,
// which `ps` shows and a strict overcommit policy charges.)
#ifndef HAKMEM_REGISTRY_REGISTRY_H_
#define HAKMEM_REGISTRY_REGISTRY_H_

#include <stddef.h>
#include <stdint.h>

#include <atomic>

#include "hakmem/platform.h"
#include "hakmem/registry/region.h"

namespace hakmem {
namespace registry {

constexpr int kAddressBits = 47;
constexpr uint64_t kRegionSlots = uint64_t{1} << (kAddressBits - kRegionShift);
constexpr uintptr_t kWindowStart = platform::kPreferredMapStart;
constexpr uint64_t kWindowSlots =
    (platform::kPreferredMapEnd - platform::kPreferredMapStart) >> kRegionShift;
static_assert(kWindowStart % kRegionAlign == 0, "window aligned to regions");
constexpr int kLeafBits = 14;  // an outside leaf covers 2^14 regions: 32 GiB
constexpr uint64_t kLeafSlots = uint64_t{1} << kLeafBits;
constexpr uint64_t kDirectorySlots = kRegionSlots >> kLeafBits;

// Tags. A SuperSlab's tag is its slab shift (16, 19 or 21). A large
// region's tag is one more than the region shift (no slab shift); the slab
// record the free fast path reads for its block (SlabInfoOf) is one of
// those the large header leaves zero (unowned).
// A large region's later slots (past its first 2 MiB) carry continuation
// tags, kTagContinued | k, where the slot lies 2^k to 2^(k+1) - 1 slots
// past the region's first: Lookup jumps back 2^k slots at a time, which at
// least halves the distance, so an interior pointer finds its region in
// O(log size) steps. (The high bit keeps the fast path's test a sign test:
// only a slot that starts a region has slab records.)
constexpr uint8_t kTagNone = 0;
constexpr uint8_t kTagLarge = kRegionShift + 1;
// A chunk of the extent heap (hakmem/large/extent_heap.h): large blocks
// at page granularity; its header page's slab records stay zero too.
constexpr uint8_t kTagExtents = kRegionShift + 2;
constexpr uint8_t kTagContinued = 0x80;

// True for the tag of a region's first slot (not none, not a continuation).
HAKMEM_ALWAYS_INLINE bool StartsRegion(uint8_t tag) { return static_cast<int8_t>(tag) > 0; }

extern std::atomic<uint8_t> g_window_tags[kWindowSlots] HAKMEM_HIDDEN;

// Tag of the slot holding `p` if it lies in the window, else kTagNone. For
// the fast paths: touches only the window table, never `p`'s memory.
HAKMEM_ALWAYS_INLINE uint8_t TagOfInWindow(const void* p) {
  const uint64_t slot = (reinterpret_cast<uintptr_t>(p) - kWindowStart) >> kRegionShift;
  if (HAKMEM_UNLIKELY(slot >= kWindowSlots)) return kTagNone;
  return g_window_tags[slot].load(std::memory_order_relaxed);
}

// Tag of the 2 MiB slot holding `p`, wherever it is, or kTagNone.
uint8_t TagOf(const void* p);

// Registered header of the region owning `p`, or nullptr if `p` is not ours:
// in no registered region's slots, past the region's mapped end (the
// kernel may map someone else's memory in the rest of its last slot), or
// the region's magic is wrong. Reads the header, never `p`'s memory.
RegionHeader* Lookup(const void* p);

inline bool Contains(const void* p) { return Lookup(p) != nullptr; }

// Tags the region at `base` (kRegionAlign-aligned; `tag` starts a region),
// `size` bytes long: its first slot `tag`, the others continuations.
// Registering a registered region changes its first slot's tag. Returns
// false, with nothing tagged, if the region does not fit in the address
// space or an outside leaf could not be mapped.
bool Register(uintptr_t base, uint8_t tag, size_t size = kRegionAlign);
// Untags the region at `base`, `size` bytes long.
void Unregister(uintptr_t base, size_t size = kRegionAlign);
// Makes sure that the slots of `size` bytes from `base` can be tagged
// (their cells exist), tagging none: a region about to grow in place
// reserves them first, since other regions may hold those slots until its
// mapping has grown. False if one can't be.
bool Reserve(uintptr_t base, size_t size);
// The region at `base` grew or shrank from `old_size` to `new_size` bytes:
// tags the slots it gained, untags those it lost. Returns false, with
// nothing changed, if a gained slot can't be tagged (never after Reserve).
bool Resize(uintptr_t base, size_t old_size, size_t new_size);
uint64_t RegisteredCount();
uint64_t OutsideLeavesMapped();

}  // namespace registry
}  // namespace hakmem

#endif  // HAKMEM_REGISTRY_REGISTRY_H_
