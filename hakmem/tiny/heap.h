// Thread heaps: the owners of slabs, and the tiny fast path's state.
//
// Each thread that allocates gets a Heap (from a pool of heaps whose threads
// exited, or a new one). The heap owns SuperSlabs and their slabs; per size
// class it has a "current" slab that malloc pops from, and a list of other
// slabs that still have free blocks. Free by the owning thread pushes onto the
// block's slab; free by any other thread goes through the owner heap's
// RemoteQueue, drained on the owner's next slow path.
//
// Invariants:
//  - current[c] is never null: it points at kEmptySlab (no free blocks, owned
//    by nobody) until the class is first used, so the fast path has no null
//    check. A thread with no heap points at kEmptyHeap, likewise.
//  - A slab other than current[c] whose last block is freed is returned to
//    its SuperSlab at once, but stays warm (class and carved free list kept)
//    so the class takes it back without carving; a SuperSlab whose last slab
//    returns becomes the heap's spare (one kept, to avoid churn) or goes to
//    the LRU cache.
//  - current[c] stays when it empties (a malloc/free loop must not churn);
//    the time-gated upkeep (at most every 100 ms of slow paths) returns empty
//    current slabs too, so a program that freed everything does not keep one
//    slab per class pinned.
//  - Slab::role says whether a slab is current[c], on partial[c] (not
//    current, with free blocks or uncarved room), or neither (full). A free
//    into a current slab never needs the slow path.
//  - Heaps are never unmapped, so a remote free may always push onto the
//    owner heap's queue, even after the owner thread exited.
//  - A thread keeps blocks of other heaps that it freed, up to a small cap
//    per class, on a per-class "foreign" pseudo-slab of its heap (a Slab
//    record that no SuperSlab holds), installed as current[c] while it has
//    blocks (the real current slab is parked meanwhile). malloc's fast path
//    hands them out where they are hot, with no atomic operation and no trip
//    back to the owner; when it runs dry the malloc slow path puts the
//    parked slab back. So a block allocated by one thread and freed by
//    another is reused there and circulates, instead of crossing back.
//  - A thread that has only freed (a consumer) keeps nothing: it would never
//    reuse it (SetForeignBlocked, cleared by its first malloc slow path).
//  - Past the cap, a thread batches the blocks it frees for another heap
//    (RemoteBatch) and pushes them with one atomic operation per batch;
//    batches are flushed when full, when the owner changes, on the thread's
//    malloc slow path, at thread exit and by Trim().
#ifndef HAKMEM_TINY_HEAP_H_
#define HAKMEM_TINY_HEAP_H_

#include <stdint.h>

#include <atomic>

#include "hakmem/platform.h"
#include "hakmem/superslab/remote_queue.h"
#include "hakmem/superslab/superslab.h"
#include "hakmem/tiny/size_class.h"

namespace hakmem {

// An intrusive doubly linked list over any T with prev/next members.
template <typename T>
struct IntrusiveList {
  T* head = nullptr;
  void Push(T* x) {
    x->prev = nullptr;
    x->next = head;
    if (head != nullptr) head->prev = x;
    head = x;
  }
  void Remove(T* x) {
    if (x->prev != nullptr) {
      x->prev->next = x->next;
    } else {
      head = x->next;
    }
    if (x->next != nullptr) x->next->prev = x->prev;
    x->prev = x->next = nullptr;
  }
};

extern Slab kEmptySlab;

// kOrphan: the one heap, guarded by a lock, that serves threads allocating
// after their own heap was handed back (in their last TLS destructors).
enum class HeapState : uint32_t { kEmpty = 0, kActive = 1, kAbandoned = 2, kOrphan = 3 };

struct Heap;

// A foreign slab's `used` counts down from 0 (wrapping) as blocks are kept,
// so the fast path's `used++` on a pop keeps the count right. Kept blocks
// stay "in use" for their owner's slab.
inline uint32_t ForeignHeld(const Slab* f) { return 0u - f->used; }
// A foreign slab that looks full to TinyKeepForeign: a thread that only frees
// (a consumer) would never reuse what it keeps, so its frees for other heaps
// go back in batches instead, at no cost to the fast path.
constexpr uint32_t kForeignBlockedUsed = 0u - 255u;

// How many blocks of other heaps a heap keeps per class: 32, or 64 KiB worth
// for big classes. Past that, they go back to their owners.
struct ForeignCaps {
  uint8_t cap[kNumClasses];
};
constexpr ForeignCaps MakeForeignCaps() {
  ForeignCaps caps{};
  for (int c = 0; c < kNumClasses; c++) {
    const uint32_t n = 65536 / ClassSizeOf(c);
    caps.cap[c] = static_cast<uint8_t>(n > 32 ? 32 : (n < 2 ? 2 : n));
  }
  return caps;
}
inline constexpr ForeignCaps kForeignCaps = MakeForeignCaps();

// Blocks this thread freed for another heap, not yet pushed to it.
struct RemoteBatch {
  static constexpr uint32_t kMaxBlocks = 64;
  Heap* owner = nullptr;
  Block* first = nullptr;
  Block* last = nullptr;
  uint32_t count = 0;
};

struct Heap {
  // constexpr, so kEmptyHeap is ready before any constructor runs.
  constexpr Heap() : current() {
    for (Slab*& slab : current) slab = &kEmptySlab;
  }

  Slab* current[kNumClasses];                 // the fast path reads only this
  IntrusiveList<Slab> partial[kNumClasses];   // other slabs with free room
  // Owned SuperSlabs with a free slab / with none, per geometry (small, mid).
  IntrusiveList<SuperSlab> with_room[2];
  IntrusiveList<SuperSlab> full[2];
  SuperSlab* spare = nullptr;                 // one empty SuperSlab, kept
  Heap* pool_next = nullptr;                  // pool of abandoned heaps
  Heap* all_next = nullptr;                   // every heap ever made
  std::atomic<HeapState> state{HeapState::kEmpty};
  uintptr_t thread_id = 0;                    // pthread_self() of its thread
  RemoteBatch outgoing;                       // this thread's frees for others
  // The real current slab of a class whose foreign slab is installed.
  Slab* parked[kNumClasses] = {};
  // Set while the heap's thread has only freed (see SetForeignBlocked).
  bool foreign_blocked = false;
  alignas(64) RemoteQueue remote;             // other threads' frees
  // Other heaps' blocks this thread freed, for reuse (pseudo-slabs: only
  // `free`, `used` and `key_flip` mean anything; used is 0 when empty).
  alignas(64) Slab foreign[kNumClasses] = {};
};

extern Heap kEmptyHeap;

inline bool ForeignInstalled(const Heap* h, int c) {
  return h->current[c] == &h->foreign[c];
}

inline void InstallForeign(Heap* h, int c) {
  h->parked[c] = h->current[c];
  h->current[c] = &h->foreign[c];
}

extern __thread Heap* tl_heap __attribute__((tls_model("initial-exec"))) HAKMEM_HIDDEN;
// Process secret written into free blocks (Block::key); never 0.
extern uint64_t g_free_key HAKMEM_HIDDEN;
// What a block freed by another thread carries while it waits for its owner
// (in a RemoteBatch or the owner's RemoteQueue): g_free_key with bit 1
// flipped. The owner checks it when it drains, so a block that was also
// freed locally in the meantime (its links overwritten) is caught there.
inline uint64_t RemoteFreeKey() { return g_free_key ^ 2; }
// What a block kept on a foreign slab carries (Slab::key_flip of foreign
// slabs).
constexpr uint8_t kForeignKeyFlip = 4;
inline uint64_t ForeignFreeKey() { return g_free_key ^ kForeignKeyFlip; }
// The key of the free blocks on `s`'s list.
HAKMEM_ALWAYS_INLINE uint64_t FreeKeyOf(const Slab* s) { return g_free_key ^ s->key_flip; }

// Keeps `b`, a block of class `c` of another heap, on `h`'s foreign slab,
// marked free like a local block, and makes that slab current so the next
// malloc of the class reuses it (measured: installing at once beats waiting
// for a few). False if the slab is full or `b` is the block kept last (an
// immediate double free). Never reads the block: see tiny_alloc.h on double
// frees.
HAKMEM_ALWAYS_INLINE bool TinyKeepForeign(Heap* h, int c, Block* b) {
  Slab* f = &h->foreign[c];
  const uint32_t held = ForeignHeld(f);
  Block* head = f->free;
  if (HAKMEM_UNLIKELY(held >= kForeignCaps.cap[c] || b == head)) return false;
  b->next = head;
  b->key = ForeignFreeKey();
  f->free = b;
  f->used--;
  if (HAKMEM_UNLIKELY(!ForeignInstalled(h, c))) InstallForeign(h, c);
  return true;
}

// ---- Slow paths (heap.cc), never inlined -----------------------------------
// malloc of class `size_class` when the current slab is empty. Sets errno to
// ENOMEM and returns nullptr when out of memory.
HAKMEM_NOINLINE void* TinyMallocSlow(int size_class);
// The local free fast path's follow-up: `s` just became empty, or it had no
// free block before this free.
HAKMEM_NOINLINE void TinyFreeTransition(Slab* s);
// free() of a slab block that the fast path did not take: another thread's
// block, a double free, an interior pointer, a block of a free slab. Reports
// misuse and aborts; otherwise frees.
HAKMEM_NOINLINE void TinyFreeSlow(void* p);
// malloc popped a block without the free key: it was freed twice (or the
// heap was overwritten). Reports and aborts.
[[noreturn]] HAKMEM_NOINLINE void ReportCorruptFreeList(const void* block);
// Reports and aborts unless `p` is a live block of a slab (used by realloc and
// friends on a pointer of a SuperSlab).
void TinyCheckLiveBlock(const void* p, const char* operation);

// Thread and process life cycle.
void TinyGlobalInit();
void TinyThreadExit();                 // hands the calling thread's heap back
// Frees what other threads handed back to heaps of exited threads (done
// anyway before mapping a new SuperSlab, and every 100 ms of slow paths).
void TinyReclaimExitedThreads();
// Heap upkeep that must not wait for the program to map or free regions:
// applies the SuperSlab cache's TTL and reclaims exited threads' memory.
// Time-gated (one coarse clock read when there is nothing to do): called on
// every slow path, small or large.
void TinyUpkeep();
// The above, plus the calling thread's own idle memory: pending remote
// frees, kept foreign blocks, empty current slabs, its spare SuperSlab (for
// Trim()).
void TinyTrim();
void TinyLockForFork();
void TinyUnlockAfterFork(bool in_child);

struct TinyStats {
  uint64_t heaps_created;
  uint64_t heaps_pooled;  // abandoned, waiting for a new thread
  uint64_t slabs_in_use[kNumClasses];
  uint64_t blocks_in_use[kNumClasses];
};
void GetTinyStats(TinyStats* stats);

}  // namespace hakmem

#endif  // HAKMEM_TINY_HEAP_H_
