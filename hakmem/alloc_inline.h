// The router's inline entry points, shared by the non-override API
// (hakmem.cc) and the override layer (libc_override.cc), so that malloc and
// free get the tiny fast paths inlined into them.
#ifndef HAKMEM_ALLOC_INLINE_H_
#define HAKMEM_ALLOC_INLINE_H_

#include <stddef.h>

#include "hakmem/platform.h"
#include "hakmem/tiny/tiny_alloc.h"

namespace hakmem {
namespace internal {

HAKMEM_NOINLINE void* MallocLarge(size_t size);
HAKMEM_NOINLINE void FreeSlow(void* p);
HAKMEM_NOINLINE void FreeSizedSlow(void* p, size_t size);

HAKMEM_ALWAYS_INLINE void* MallocInline(size_t size) {
  if (HAKMEM_LIKELY(size <= kMaxSmallSize)) return TinyMalloc(size);
  return MallocLarge(size);
}

HAKMEM_ALWAYS_INLINE void FreeInline(void* p) {
  if (HAKMEM_LIKELY(TinyTryFreeFast(p))) return;
  FreeSlow(p);
}

// Sized delete: the fast path also checks the size against the block's class.
HAKMEM_ALWAYS_INLINE void FreeSizedInline(void* p, size_t size) {
  if (HAKMEM_LIKELY(TinyTryFreeSizedFast(p, size))) return;
  FreeSizedSlow(p, size);
}

}  // namespace internal
}  // namespace hakmem

#endif  // HAKMEM_ALLOC_INLINE_H_
