// The tiny fast paths: small malloc and the owner thread's free.
//
// malloc: size -> class (one table load), then a pop from the current slab's
// free list. free: the registry byte says the 2 MiB region is ours and gives
// its slab geometry, address bits give the slab record, and the block is
// pushed back if this thread owns the slab and the pointer is a carved block
// start. Everything else is a separate slow path. No locks, no atomic
// read-modify-write, no syscalls.
//
// Double frees: every free block carries the process secret in its second
// word (Block::key); malloc checks it when it pops a block and clears it. The
// free fast path only writes the block (it never reads it: on a block the
// program has not touched for a while, that read would be a cache miss), so
// it catches the immediate double free by comparing with the list head, and a
// later one is caught when the duplicate is popped (before any block could
// be handed out twice) or when the slab empties (slab free lists are checked
// then). A free of another heap's block that is kept on the foreign slab is
// the same: it only writes the block and compares with the list head, and a
// block freed twice (by any threads) shows up as a wrong key when the second
// copy is popped (lists of other heaps' blocks carry a key of their own).
// Frees on the slow path check the key at once.
#ifndef HAKMEM_TINY_TINY_ALLOC_H_
#define HAKMEM_TINY_TINY_ALLOC_H_

#include "hakmem/registry/registry.h"
#include "hakmem/tiny/heap.h"

namespace hakmem {

HAKMEM_ALWAYS_INLINE void* TinyMallocClass(size_t size_class) {
  Slab* s = tl_heap->current[size_class];
  Block* b = s->free;
  if (HAKMEM_UNLIKELY(b == nullptr)) return TinyMallocSlow(static_cast<int>(size_class));
  if (HAKMEM_UNLIKELY(b->key != FreeKeyOf(s))) ReportCorruptFreeList(b);
  s->free = b->next;
  s->used++;
  b->key = 0;
  return b;
}

// `size` <= kMaxSmallSize.
HAKMEM_ALWAYS_INLINE void* TinyMalloc(size_t size) {
  return TinyMallocClass(SizeToClass(size));
}

// Frees `p` if it is a block of a slab this thread owns and not the block
// freed last; returns false (touching nothing) for anything else.
HAKMEM_ALWAYS_INLINE bool TinyTryFreeLocal(void* p) {
  const int tag = registry::TagOfInWindow(p);
  if (HAKMEM_UNLIKELY(tag == registry::kTagNone)) return false;
  // A large region's tag leads to its zeroed record 0: owner null, not taken.
  const SlabInfo* info = SlabInfoOfWithShift(p, tag);
  // Only the owner touches the slab's free list: check ownership first.
  if (HAKMEM_UNLIKELY(info->owner != tl_heap || !IsBlockStart(info, p))) {
    return false;
  }
  Slab* s = SlabOfWithShift(p, tag);
  Block* b = static_cast<Block*>(p);
  Block* head = s->free;
  if (HAKMEM_UNLIKELY(b == head)) return false;
  b->next = head;
  b->key = g_free_key;
  s->free = b;
  // An emptied or formerly full slab may need list work, unless current.
  if (HAKMEM_UNLIKELY(--s->used == 0 || head == nullptr) && s->role != kSlabCurrent) {
    TinyFreeTransition(s);
  }
  return true;
}

// Frees `p` if it is a block of another heap and this thread can keep it on
// its foreign slab; returns false (touching nothing) for anything else.
// Reads only the read-mostly SlabInfo, never the block or a line the owner
// writes.
HAKMEM_ALWAYS_INLINE bool TinyTryFreeForeign(void* p) {
  const int tag = registry::TagOfInWindow(p);
  if (HAKMEM_UNLIKELY(tag == registry::kTagNone)) return false;
  const SlabInfo* info = SlabInfoOfWithShift(p, tag);
  const void* owner = __atomic_load_n(&info->owner, __ATOMIC_ACQUIRE);
  Heap* h = tl_heap;
  if (owner == nullptr || owner == h || h == &kEmptyHeap || !IsBlockStart(info, p)) {
    return false;
  }
  return TinyKeepForeign(h, info->size_class, static_cast<Block*>(p));
}

}  // namespace hakmem

#endif  // HAKMEM_TINY_TINY_ALLOC_H_
