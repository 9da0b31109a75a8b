// The slab pool: where every thread heap takes its slabs and gives them back.
//
// SuperSlabs are not owned by heaps: any heap takes a free slab of any
// SuperSlab in the pool, and each slab in use records its own owner
// (SlabInfo::owner). So a slab one heap gave back serves the next heap that
// needs one, and the memory the program touches follows the peak of all
// heaps' slabs together rather than the sum of each heap's own peaks.
// (Measured, random_mixed 16-1024 with 8 threads on 2 cores and half the
// frees remote: with a SuperSlab per heap, RSS grew with the run, 39 -> 54
// MiB from 8M to 160M iterations, as every heap kept resident the free slabs
// of its own busiest moment; shared, 34 MiB at 8M and 41 MiB flat from 40M
// to 400M, at the same speed.)
//
// One lock guards it: a take or a return is a slow path of a slow path (a
// slab holds 2 to 4,096 blocks), and under it the work is a few list
// operations. Never under it: mapping a SuperSlab (a failed mapping runs
// the out-of-memory handler, which reclaims exited threads' heaps and so
// returns slabs here) and handing one to the LRU cache (whose limits may
// unmap or madvise others).
//
// Invariants, under the lock:
//  - A SuperSlab in the pool has a slab in use. It is on with_room_[g] (a
//    slab of it is free) or full_[g] (none is), by its geometry g (small or
//    mid slabs). One whose last slab returns goes to the LRU cache at once,
//    where the cache's limits (TTL, resident budget) apply to it like to
//    any other: no SuperSlab is kept aside. (A take from the cache costs a
//    lock, no syscall within the resident budget; the lanes measured the
//    same with and without a kept spare.)
//  - A slab given back is carved again, in address order, by whoever
//    takes it next (see SuperSlabReturnSlab); a take, for any class,
//    prefers such a slab, the one carved furthest (Slab::touched_bytes:
//    its pages resident), in the SuperSlabs at the front of with_room_,
//    where returns put their SuperSlab.
//  - Every free slab a heap gave back (its pages may be resident) is on the
//    idle list, in the order they came back (Slab::idle_*); idle_bytes_ is
//    their size. (The untouched free slabs of a SuperSlab from the cache
//    are not: at most a SuperSlab's worth.)
//
// Idle slabs and memory: a free slab in a SuperSlab that other slabs keep
// in use keeps its pages. A program that frees most of a big heap but keeps
// a few blocks scattered over it would keep all of it resident (so do
// glibc, tcmalloc, jemalloc and mimalloc, 2 s after such a free: 330 MiB of
// 330, measured). PurgeIdle gives back the pages of the slabs idle longest,
// like the SuperSlab cache's resident budget and decay: only beyond the
// budget and only after the decay, so a steady program makes no syscall.
#ifndef HAKMEM_SUPERSLAB_SLAB_POOL_H_
#define HAKMEM_SUPERSLAB_SLAB_POOL_H_

#include <pthread.h>
#include <stdint.h>

#include "hakmem/superslab/intrusive_list.h"
#include "hakmem/superslab/superslab.h"

namespace hakmem {

class SlabPool {
 public:
  // constexpr: the process's pool must be ready before any constructor runs.
  constexpr SlabPool() = default;
  SlabPool(const SlabPool&) = delete;
  SlabPool& operator=(const SlabPool&) = delete;

  // A slab for blocks of `block_size` of `size_class`, with slabs of
  // 2^`slab_shift` bytes (kSmallSlabShift, kMidSlabShift or kBigSlabShift), owned by
  // `owner`, nothing carved yet: the slab a heap gave back that was carved
  // furthest (near the front of with_room), else a free slab of a
  // SuperSlab in the pool; else, if
  // `may_map`, of a SuperSlab from the cache or a new mapping. nullptr if
  // none (out of memory, or `may_map` false and the pool has no free slab).
  Slab* Take(int size_class, uint32_t block_size, int slab_shift, const void* owner,
             bool may_map);
  // Gives back `s`, a slab taken here whose blocks are all free (the caller
  // checked them). Its blocks are forgotten; its pages stay (idle) until
  // PurgeIdle.
  void Return(Slab* s);
  // While the idle slabs' bytes exceed `budget_bytes`, gives back the pages
  // of the slab idle longest (madvise) if it has been
  // idle for `decay_ns` at `now`; at most `max_slabs`. Returns how many.
  int PurgeIdle(uint64_t now, uint64_t budget_bytes, uint64_t decay_ns, int max_slabs);
  // For fork: held across it; the child re-initializes the lock. (A
  // SuperSlab another thread was bringing in or sending to the cache
  // outside the lock at that moment, or slabs being purged, are lost to
  // the child, like the heaps of threads that do not survive a fork.)
  void LockForFork();
  void UnlockAfterFork(bool in_child);

  struct Stats {
    uint32_t with_room = 0;  // SuperSlabs with a free slab, all geometries
    uint32_t full = 0;
    uint64_t idle_bytes = 0;  // free slabs whose pages may be resident
  };
  Stats GetStats();

 private:
  // A slab from the SuperSlabs in the pool, or nullptr.
  Slab* TakeLocked(int size_class, uint32_t block_size, int slab_shift, const void* owner);
  void NoteTaken(int g, SuperSlab* ss);
  // Returns `s` to its SuperSlab and the lists (`resident`: from a heap,
  // onto the idle list; else purged); the SuperSlab if that emptied it (to
  // release once unlocked), else nullptr.
  SuperSlab* ReturnLocked(Slab* s, bool resident, uint64_t now);
  void IdlePush(Slab* s, uint64_t now);
  void IdleRemove(Slab* s);

  // Small, mid and big slabs (a SuperSlab of one big slab is never on
  // with_room_: it leaves the pool when its slab comes back).
  static constexpr int kGeometries = 3;
  pthread_mutex_t lock_ = PTHREAD_MUTEX_INITIALIZER;
  IntrusiveList<SuperSlab> with_room_[kGeometries];
  IntrusiveList<SuperSlab> full_[kGeometries];
  IntrusiveList<Slab, &Slab::idle_prev, &Slab::idle_next> idle_;  // oldest first
  uint64_t idle_bytes_ = 0;
};

}  // namespace hakmem

#endif  // HAKMEM_SUPERSLAB_SLAB_POOL_H_
