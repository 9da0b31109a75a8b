// The tiny fast paths: small malloc and the owner thread's free.
//
// malloc: size -> class (a shift, or a few bit operations above 1 KiB), then
// a pop from the current slab's free list. free: the registry bit says the
// 2 MiB region is ours, address bits give the slab record, and the block is
// pushed back if this thread owns the slab, the pointer is a block start, and
// the block is not already free. Everything else is a separate slow path.
// No locks, no atomics read-modify-write, no syscalls.
#ifndef HAKMEM_TINY_TINY_ALLOC_H_
#define HAKMEM_TINY_TINY_ALLOC_H_

#include "hakmem/registry/registry.h"
#include "hakmem/tiny/heap.h"

namespace hakmem {

HAKMEM_ALWAYS_INLINE void* TinyMallocClass(size_t size_class) {
  Slab* s = tl_heap->current[size_class];
  Block* b = s->free;
  if (HAKMEM_UNLIKELY(b == nullptr)) return TinyMallocSlow(static_cast<int>(size_class));
  s->free = b->next;
  s->used++;
  b->key = 0;
  return b;
}

// `size` <= kMaxSmallSize.
HAKMEM_ALWAYS_INLINE void* TinyMalloc(size_t size) {
  return TinyMallocClass(SizeToClass(size));
}

// Frees `p` if it is a live block of a slab this thread owns; returns false
// (touching nothing) for anything else.
HAKMEM_ALWAYS_INLINE bool TinyTryFreeLocal(void* p) {
  const int tag = registry::TagOf(p);
  if (HAKMEM_UNLIKELY(tag == registry::kTagNone)) return false;
  // A large region's tag leads to its zeroed record 0: owner null, not taken.
  Slab* s = SlabOfWithShift(p, tag);
  Block* b = static_cast<Block*>(p);
  const uint64_t key = g_free_key;
  if (HAKMEM_UNLIKELY(s->owner != tl_heap || !IsBlockStart(s, p) ||
                      b->key == key)) {
    return false;
  }
  Block* head = s->free;
  b->next = head;
  b->key = key;
  s->free = b;
  if (HAKMEM_UNLIKELY(--s->used == 0 || head == nullptr)) TinyFreeTransition(s);
  return true;
}

}  // namespace hakmem

#endif  // HAKMEM_TINY_TINY_ALLOC_H_
