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
// Registers hakmem's fork handlers, once (hakmem.cc).
void RegisterForkHandlers();
HAKMEM_NOINLINE void FreeSlow(void* p);
// `aligned`: a sized delete of an over-aligned block (the size must fit it).
// `alignment`: that of an over-aligned operator delete (0: none).
HAKMEM_NOINLINE void FreeSizedSlow(void* p, size_t size, size_t alignment = 0);

HAKMEM_ALWAYS_INLINE void* MallocInline(size_t size) {
  if (HAKMEM_LIKELY(size <= kMaxSmallSize)) return TinyMalloc(size);
  return MallocLarge(size);
}

// A small block the fast path could not push (a full bin, the block freed
// last, a thread without a heap) goes to the tiny slow path at once: the
// router's slow path would look the pointer up in the registry again.
// (Tear-downs of 2M blocks freed in order, 9 paired rounds, 3 copies of
// each library: 16 B 1.03x, 64 B 1.01x faster; the fast paths' instructions
// the same.)
HAKMEM_ALWAYS_INLINE void FreeInline(void* p) {
  const SlabInfo* info = SlabInfoOfCarvedBlock(p);
  if (HAKMEM_UNLIKELY(info == nullptr)) return FreeSlow(p);
  if (HAKMEM_LIKELY(TinyPushFreed(p, info->size_class))) return;
  TinyFreeSlow(p);
}

// Sized delete: the fast path also checks the size against the block's class.
HAKMEM_ALWAYS_INLINE void FreeSizedInline(void* p, size_t size) {
  if (HAKMEM_UNLIKELY(size > kMaxSmallSize)) return FreeSizedSlow(p, size);
  const SlabInfo* info = SlabInfoOfCarvedBlock(p);
  const size_t c = SizeToClass(size);
  if (HAKMEM_UNLIKELY(info == nullptr || info->size_class != c)) return FreeSizedSlow(p, size);
  // The class from the size: one load less to wait for.
  if (HAKMEM_LIKELY(TinyPushFreed(p, c))) return;
  TinyFreeSlow(p);
}

}  // namespace internal
}  // namespace hakmem

#endif  // HAKMEM_ALLOC_INLINE_H_
