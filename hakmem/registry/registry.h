// Super-registry: pointer -> owning region in O(1), without probing memory.
//
// A flat bitmap with one bit per 2 MiB of the 47-bit user address space
// (2^26 bits = 8 MiB of address space, mapped lazily: only the pages that
// cover our regions are ever touched; one 4 KiB page covers 64 GiB).
// Reads are lock-free relaxed loads. A region's bit is set before any block
// of it is handed out and cleared before it is unmapped.
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

extern std::atomic<uint64_t>* g_bitmap;  // nullptr until the first Register()

// True if `p` lies in the first 2 MiB of a registered region. Touches only
// the bitmap, never `p`'s memory.
HAKMEM_ALWAYS_INLINE bool Contains(const void* p) {
  const uint64_t slot = reinterpret_cast<uintptr_t>(p) >> kRegionShift;
  std::atomic<uint64_t>* bitmap = g_bitmap;
  if (HAKMEM_UNLIKELY(slot >= kRegionSlots || bitmap == nullptr)) return false;
  return (bitmap[slot >> 6].load(std::memory_order_relaxed) >> (slot & 63)) & 1;
}

// Registered header of the region owning `p`, or nullptr if `p` is not ours
// (also when the registered region's magic is wrong).
RegionHeader* Lookup(const void* p);

// Maps the bitmap. Returns false if the kernel refuses (out of memory).
bool Init();
// `base` must be kRegionAlign-aligned. Returns false if the bitmap can't be
// mapped.
bool Register(uintptr_t base);
void Unregister(uintptr_t base);
uint64_t RegisteredCount();

}  // namespace registry
}  // namespace hakmem

#endif  // HAKMEM_REGISTRY_REGISTRY_H_
