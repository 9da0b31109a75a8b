// Super-registry: pointer -> owning region in O(1), without probing memory.
//
// A flat table with one byte (a "tag") per 2 MiB of the 47-bit user address
// space: 2^26 bytes (64 MiB) of zero-initialized static storage, so the
// kernel backs only the pages that cover our regions (one 4 KiB page covers
// 8 GiB), no call maps it, and the fast path indexes it directly. Tag 0
// means "not ours". A SuperSlab's tag is its slab shift, so the free fast path
// finds a block's slab record from the pointer and this one byte. Reads are
// lock-free relaxed loads. A region is tagged before any block of it is handed
// out and untagged before it is unmapped.
#ifndef HAKMEM_REGISTRY_REGISTRY_H_
#define HAKMEM_REGISTRY_REGISTRY_H_

#include <stdint.h>

#include <atomic>

#include "hakmem/platform.h"
#include "hakmem/registry/region.h"

namespace hakmem {
namespace registry {

constexpr int kAddressBits = 47;
constexpr uint64_t kRegionSlots = uint64_t{1} << (kAddressBits - kRegionShift);

// Tags. A SuperSlab's tag is its slab shift (16 or 19). A large region's tag
// is the region shift, so the slab-record index that the free fast path
// derives from it is 0: a record the large header leaves zero (unowned).
constexpr uint8_t kTagNone = 0;
constexpr uint8_t kTagLarge = kRegionShift;

extern std::atomic<uint8_t> g_tags[kRegionSlots] HAKMEM_HIDDEN;

// Tag of the region whose first 2 MiB hold `p`, or kTagNone. Touches only the
// table, never `p`'s memory.
HAKMEM_ALWAYS_INLINE uint8_t TagOf(const void* p) {
  const uint64_t slot = reinterpret_cast<uintptr_t>(p) >> kRegionShift;
  if (HAKMEM_UNLIKELY(slot >= kRegionSlots)) return kTagNone;
  return g_tags[slot].load(std::memory_order_relaxed);
}

HAKMEM_ALWAYS_INLINE bool Contains(const void* p) { return TagOf(p) != kTagNone; }

// Registered header of the region owning `p`, or nullptr if `p` is not ours
// (also when the registered region's magic is wrong).
RegionHeader* Lookup(const void* p);

// Tags the region at `base` (kRegionAlign-aligned; `tag` != kTagNone).
// Registering a registered region changes its tag. Returns false if `base`
// is outside the table.
bool Register(uintptr_t base, uint8_t tag);
void Unregister(uintptr_t base);
uint64_t RegisteredCount();

}  // namespace registry
}  // namespace hakmem

#endif  // HAKMEM_REGISTRY_REGISTRY_H_
