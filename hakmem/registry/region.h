// Regions: the unit hakmem gets from the kernel and the registry tracks.
//
// Glossary (used by every layer above):
//  - Region:    an mmap'd range aligned to kRegionAlign (2 MiB) whose first
//               bytes hold a RegionHeader. Either a SuperSlab or a large block.
//  - SuperSlab: a 2 MiB region carved into slabs (hakmem/superslab).
//  - Slab:      64 KiB (small classes) or 512 KiB (mid classes) of a
//               SuperSlab, holding blocks of one size class.
//  - Block:     what malloc returns.
//  - Large:     a region holding one block too big for a slab (hakmem/large).
//  - Extents:   a 1 GiB region holding large blocks at page granularity,
//               split and coalesced (hakmem/large/extent_heap.h).
//  - Registry:  one byte per 2 MiB of address space, non-zero while a
//               region is mapped; it decides "is this pointer ours" in O(1)
//               without touching the pointer's memory (registry.h).
#ifndef HAKMEM_REGISTRY_REGION_H_
#define HAKMEM_REGISTRY_REGION_H_

#include <stddef.h>
#include <stdint.h>

namespace hakmem {

constexpr int kRegionShift = 21;
constexpr size_t kRegionAlign = size_t{1} << kRegionShift;  // 2 MiB
constexpr uintptr_t kRegionMask = kRegionAlign - 1;

// "HAKMEM" + kind; checked whenever a registered region is entered on a slow
// path, so a corrupted registry can't make us trust foreign memory.
constexpr uint64_t kRegionMagic = 0x48414b4d454d5353ull;  // "HAKMEMSS"

enum class RegionKind : uint16_t { kSuperSlab = 1, kLarge = 2, kExtents = 3 };

struct RegionHeader {
  uint64_t magic;
  RegionKind kind;
  // Set by the region's user while it is not cached: a cache take may
  // prefer regions of one shape (see RegionCache::Take). 0: none.
  uint16_t shape;
  uint32_t discarded;         // while cached: kPagesGivenBack or kPagesKept, else 0
  size_t mapped_size;        // bytes mapped from the region's base
  uint32_t generation;       // bumped each time the region is reused from a cache
  // While cached with its pages: how many of its 2 MiB windows, from its
  // front, moved their pages but the first to another layer and read zero
  // there (see RegionCache::MoveCachedPages).
  uint32_t windows_moved_out;
  uint64_t last_used_ns;     // when it entered the LRU cache
  RegionHeader* lru_prev;    // LRU links, valid while cached
  RegionHeader* lru_next;
  RegionHeader* shape_prev;  // links among cached regions of its shape
  RegionHeader* shape_next;
};

// RegionHeader::discarded of a cached region whose pages the cache tried to
// give back: they went (all but the header page read zero), or the kernel
// refused (locked memory: not tried again, not zero, and released once
// cached for the decay time).
constexpr uint32_t kPagesGivenBack = 1;
constexpr uint32_t kPagesKept = 2;

// What moves between the layers at a time (platform::MovePages): a 2 MiB
// window's pages but its first, [X + 4 KiB, X + 2 MiB) (a SuperSlab's
// header page stays; the destinations' kernel mappings split only there,
// so that they stay bounded, and a source window lies within one).
constexpr size_t kMoveSpanBytes = (size_t{1} << 21) - 4096;

// Shapes below this have a list of their own in a RegionCache.
constexpr uint16_t kRegionShapes = 128;

inline uintptr_t RegionBaseOf(const void* p) {
  return reinterpret_cast<uintptr_t>(p) & ~kRegionMask;
}

}  // namespace hakmem

#endif  // HAKMEM_REGISTRY_REGION_H_
