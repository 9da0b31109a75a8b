// The tiny fast paths: small malloc and free.
//
// malloc: size -> class (one table load), then a pop from the thread's bin
// of that class (see heap.h). free: the registry byte says the 2 MiB region
// is ours, address bits alone give the slab's record (kInfoChunkShift),
// which says the slab is in use and whether the pointer is a carved block
// start; then the pointer is pushed on the bin, whichever thread owns the
// block. Everything else is a separate slow path.
// No locks, no atomic read-modify-write, no syscalls.
//
// Double frees: a free block carries a key derived from a process secret in
// its second word (Block::key; each heap's bins have their own, see
// HeapFreeKey): free writes it, malloc checks and clears it. free does not
// read the block (a block freed by another thread than the one that wrote it
// last would cost a miss there), so it catches the immediate double free by
// comparing with the bin's top; a later one is caught when the second copy
// leaves wherever it went (a bin, a slab's list, the owner's queue of remote
// frees): the first copy to leave changed the key, and every exit checks it,
// before the block could be handed out twice. Frees on the slow path check
// the key at once.
#ifndef HAKMEM_TINY_TINY_ALLOC_H_
#define HAKMEM_TINY_TINY_ALLOC_H_

#include "hakmem/registry/registry.h"
#include "hakmem/tiny/heap.h"

namespace hakmem {

// The pop alone: nullptr if the bin is empty (the caller's slow path then
// allocates; for operator new, one that also throws). `kBelowBigClasses`:
// see PopFromBin.
template <bool kBelowBigClasses = false>
HAKMEM_ALWAYS_INLINE void* TinyTryPop(size_t size_class) {
  Heap* h = tl_heap;
  const BinOffset top = h->bin_top[size_class];
  Block* b = *BinSlotAt(h, top);
  // The null sentinel: the bin is empty.
  if (HAKMEM_UNLIKELY(b == nullptr)) return nullptr;
  // Time for an upkeep: the slow path runs it, then pops (after the
  // sentinel: kEmptyHeap's count is never written).
  if (HAKMEM_UNLIKELY(UpkeepDueAtThisMalloc(h))) return nullptr;
  return PopFromBin<kBelowBigClasses>(h, size_class, top, b);
}

HAKMEM_ALWAYS_INLINE void* TinyMallocClass(size_t size_class) {
  if (void* p = TinyTryPop(size_class)) return p;
  return TinyMallocSlow(size_class);
}

// `size` <= kMaxSmallSize.
HAKMEM_ALWAYS_INLINE void* TinyMalloc(size_t size) {
  return TinyMallocClass(SizeToClass(size));
}

// Pushes `p`, a carved block start of class `c` of a slab in use (any
// heap's), on this thread's bin unless it is the block freed last or the
// bin is full; returns false then, having written nothing (its line is
// asked for all the same).
HAKMEM_ALWAYS_INLINE bool TinyPushFreed(void* p, size_t c) {
  Block* b = static_cast<Block*>(p);
  // For the key store below (see PrefetchForWrite): frees of cold 256 B
  // blocks in a row 48 -> 24 ns each; blocks another thread wrote last
  // (remote lanes) 1.5-2% faster. Before the checks: a full bin's slow
  // path reads the block's key.
  platform::PrefetchForWrite(b);
  Heap* h = tl_heap;
  const BinOffset top = h->bin_top[c];
  if (HAKMEM_UNLIKELY(top >= h->bin_end[c])) return false;
  // The top slot (the null sentinel when the bin is empty): an immediate
  // double free.
  if (HAKMEM_UNLIKELY(*BinSlotAt(h, top) == b)) return false;
  PushOnBin(h, c, top, b);
  return true;
}

// The record of the slab whose carved block starts at `p`, if that slab is
// in use; nullptr for anything else: a pointer outside the registry's
// window, into a free slab, not at a block start, or into a large region
// (its header's records are zero; past its first slot, no records at all).
HAKMEM_ALWAYS_INLINE const SlabInfo* SlabInfoOfCarvedBlock(const void* p) {
  if (HAKMEM_UNLIKELY(!registry::StartsRegion(registry::TagOfInWindow(p)))) return nullptr;
  // From the address alone: the load does not wait for the registry's.
  const SlabInfo* info = SlabInfoOf(p);
  return HAKMEM_LIKELY(IsBlockStart(info, p)) ? info : nullptr;
}

// Frees `p` onto this thread's bin if it is a carved block start of a slab
// in use (see TinyPushFreed); returns false (touching nothing) otherwise.
HAKMEM_ALWAYS_INLINE bool TinyTryFreeFast(void* p) {
  const SlabInfo* info = SlabInfoOfCarvedBlock(p);
  if (HAKMEM_UNLIKELY(info == nullptr)) return false;
  return TinyPushFreed(p, info->size_class);
}

// Block size of `p` if it is a live block of a slab in use (a carved block
// start without a free key), else 0: the caller takes its checked slow path,
// which reports misuse (and serves a live block whose second word only
// looks like a key, see KeyMayMarkFree). For realloc and malloc_usable_size.
HAKMEM_ALWAYS_INLINE size_t TinyLiveBlockSize(const void* p) {
  const SlabInfo* info = SlabInfoOfCarvedBlock(p);
  if (HAKMEM_UNLIKELY(info == nullptr)) return 0;
  if (HAKMEM_UNLIKELY(KeyMayMarkFree(KeyOf(static_cast<const Block*>(p))))) return 0;
  return info->block_size;
}

}  // namespace hakmem

#endif  // HAKMEM_TINY_TINY_ALLOC_H_
