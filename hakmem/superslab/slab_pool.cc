#include "hakmem/superslab/slab_pool.h"

#include "hakmem/platform.h"

namespace hakmem {
namespace {

int GeometryOf(int slab_shift) {
  return slab_shift == kSmallSlabShift ? 0 : slab_shift == kMidSlabShift ? 1 : 2;
}

// How many SuperSlabs at the front of with_room a take searches for a slab
// a heap gave back (its pages resident as far as it was carved) before it
// takes the lowest free slab of the first.
constexpr int kIdleLookup = 4;

// At most this many slabs' pages are given back per PurgeIdle call.
constexpr int kPurgeBatch = 256;

// Gives back the pages of the `n` slabs in `batch` (sorted by address here),
// neighbours in one call.
void DiscardSlabPages(Slab** batch, int n) {
  // Insertion sort (at most kPurgeBatch): slab records are in address
  // order of their slabs, SuperSlab by SuperSlab.
  for (int i = 1; i < n; i++) {
    Slab* s = batch[i];
    int j = i;
    for (; j > 0 && batch[j - 1] > s; j--) batch[j] = batch[j - 1];
    batch[j] = s;
  }
  uintptr_t start = 0, end = 0;
  for (int i = 0; i < n; i++) {
    const uintptr_t bytes = SlabLimit(batch[i]);
    uintptr_t at = reinterpret_cast<uintptr_t>(SuperSlabOf(batch[i])) +
                   static_cast<uintptr_t>(SlabIndex(batch[i])) * bytes;
    // A mid SuperSlab's slab 0 starts with the header's page: kept.
    const uintptr_t slab_end = at + bytes;
    if (SlabIndex(batch[i]) == 0) at += platform::kPageSize;
    if (at != end) {
      if (end != start) platform::DiscardPages(reinterpret_cast<void*>(start), end - start);
      start = at;
    }
    end = slab_end;
  }
  if (end != start) platform::DiscardPages(reinterpret_cast<void*>(start), end - start);
}

}  // namespace

void SlabPool::IdlePush(Slab* s, uint64_t now) {
  s->idle = 1;
  s->idle_since_ns = now;
  idle_.PushBack(s);
  idle_bytes_ += SlabLimit(s);
}

void SlabPool::IdleRemove(Slab* s) {
  idle_.Remove(s);
  s->idle = 0;
  idle_bytes_ -= SlabLimit(s);
}

// Moves `ss` to the full list if it has no free slab left.
void SlabPool::NoteTaken(int g, SuperSlab* ss) {
  if (SuperSlabFull(ss)) {
    with_room_[g].Remove(ss);
    full_[g].Push(ss);
  }
}

Slab* SlabPool::TakeLocked(int size_class, uint32_t block_size, int slab_shift,
                           const void* owner) {
  const int g = GeometryOf(slab_shift);
  SuperSlab* ss = with_room_[g].head;
  if (ss == nullptr) return nullptr;
  // Of the slabs heaps gave back, the one carved furthest in its earlier
  // lives: carving it again faults least. (A slab that served a class
  // briefly, a page carved, would otherwise be taken before a fully carved
  // one, and fault in the rest while the other stays idle.)
  SuperSlab* best_ss = nullptr;
  int best = -1;
  int looked = 0;
  for (SuperSlab* w = ss; w != nullptr && looked < kIdleLookup; w = w->next, looked++) {
    for (uint32_t free_mask = w->full_mask & ~w->used_slabs; free_mask != 0;
         free_mask &= free_mask - 1) {
      const int i = __builtin_ctz(free_mask);
      const Slab* s = SlabAt(w, i);
      if (s->idle && (best < 0 || s->touched_bytes > SlabAt(best_ss, best)->touched_bytes)) {
        best_ss = w;
        best = i;
      }
    }
  }
  int index;
  if (best >= 0) {
    ss = best_ss;
    index = best;
    SuperSlabTakeSlabAt(ss, index);
  } else {
    index = SuperSlabTakeFreeSlab(ss);
  }
  if (SlabAt(ss, index)->idle) IdleRemove(SlabAt(ss, index));
  NoteTaken(g, ss);
  return SlabInit(ss, index, block_size, size_class, owner);
}

Slab* SlabPool::Take(int size_class, uint32_t block_size, int slab_shift, const void* owner,
                     bool may_map) {
  platform::LockMutex(&lock_);
  Slab* s = TakeLocked(size_class, block_size, slab_shift, owner);
  platform::UnlockMutex(&lock_);
  if (s != nullptr || !may_map) return s;
  // A new SuperSlab, from the cache or mapped, without the lock: a failed
  // mapping purges the caches and reclaims exited threads' heaps, which
  // gives slabs back here. (Threads that find the pool empty at once may
  // each bring one; the extra ones fill later.)
  SuperSlab* ss = SuperSlabAcquire(this, slab_shift, size_class);
  if (ss == nullptr) {
    // What that reclaim, or other threads meanwhile, gave back.
    platform::LockMutex(&lock_);
    s = TakeLocked(size_class, block_size, slab_shift, owner);
    platform::UnlockMutex(&lock_);
    return s;
  }
  const int g = GeometryOf(slab_shift);
  platform::LockMutex(&lock_);
  with_room_[g].Push(ss);
  const int index = SuperSlabTakeFreeSlab(ss);
  NoteTaken(g, ss);
  s = SlabInit(ss, index, block_size, size_class, owner);
  platform::UnlockMutex(&lock_);
  return s;
}

SuperSlab* SlabPool::ReturnLocked(Slab* s, bool resident, uint64_t now) {
  SuperSlab* ss = SuperSlabOf(s);
  const int g = GeometryOf(ss->slab_shift);
  const bool was_full = SuperSlabFull(ss);
  const bool now_empty = SuperSlabReturnSlab(ss, s);
  if (now_empty) {
    (was_full ? full_[g] : with_room_[g]).Remove(ss);
    // Leaving the pool: its slabs leave the idle list.
    for (int i = 0; i < kMaxSlabsPerSuperSlab; i++) {
      if (ss->slabs[i].idle) IdleRemove(&ss->slabs[i]);
    }
    return ss;
  }
  if (resident) {
    // To the front of with_room, where takes look for such slabs first.
    (was_full ? full_[g] : with_room_[g]).Remove(ss);
    with_room_[g].Push(ss);
    IdlePush(s, now);
  } else if (was_full) {
    // A purged slab is no better than any free one: its SuperSlab must not
    // push others' resident slabs out of the front.
    full_[g].Remove(ss);
    with_room_[g].PushBack(ss);
  }
  return nullptr;
}

void SlabPool::Return(Slab* s) {
  const uint64_t now = platform::NowNs();
  platform::LockMutex(&lock_);
  SuperSlab* empty = ReturnLocked(s, /*resident=*/true, now);
  platform::UnlockMutex(&lock_);
  // Empty and on no list: nobody else can reach it. To the cache without
  // the lock (the cache's limits may unmap or madvise other regions).
  if (empty != nullptr) SuperSlabRelease(empty);
}

int SlabPool::PurgeIdle(uint64_t now, uint64_t budget_bytes, uint64_t decay_ns,
                        int max_slabs) {
  if (max_slabs > kPurgeBatch) max_slabs = kPurgeBatch;
  Slab* batch[kPurgeBatch];
  int n = 0;
  platform::LockMutex(&lock_);
  // Taken as a heap would take them, so that no take finds them while
  // their pages go.
  while (n < max_slabs && idle_bytes_ > budget_bytes && idle_.head != nullptr &&
         idle_.head->idle_since_ns + decay_ns <= now) {
    Slab* s = idle_.head;
    IdleRemove(s);
    SuperSlab* ss = SuperSlabOf(s);
    SuperSlabTakeSlabAt(ss, SlabIndex(s));
    NoteTaken(GeometryOf(ss->slab_shift), ss);
    batch[n++] = s;
  }
  platform::UnlockMutex(&lock_);
  if (n == 0) return 0;
  DiscardSlabPages(batch, n);
  for (int i = 0; i < n; i++) batch[i]->touched_bytes = 0;  // they read zero now
  SuperSlab* empty[kPurgeBatch];
  int emptied = 0;
  platform::LockMutex(&lock_);
  for (int i = 0; i < n; i++) {
    if (SuperSlab* ss = ReturnLocked(batch[i], /*resident=*/false, now)) empty[emptied++] = ss;
  }
  platform::UnlockMutex(&lock_);
  for (int i = 0; i < emptied; i++) SuperSlabRelease(empty[i]);
  return n;
}

void SlabPool::LockForFork() { platform::LockMutex(&lock_); }

void SlabPool::UnlockAfterFork(bool in_child) {
  if (in_child) {
    pthread_mutex_init(&lock_, nullptr);
  } else {
    platform::UnlockMutex(&lock_);
  }
}

SlabPool::Stats SlabPool::GetStats() {
  Stats stats;
  platform::LockMutex(&lock_);
  for (int g = 0; g < kGeometries; g++) {
    for (SuperSlab* ss = with_room_[g].head; ss != nullptr; ss = ss->next) stats.with_room++;
    for (SuperSlab* ss = full_[g].head; ss != nullptr; ss = ss->next) stats.full++;
  }
  stats.idle_bytes = idle_bytes_;
  platform::UnlockMutex(&lock_);
  return stats;
}

}  // namespace hakmem
