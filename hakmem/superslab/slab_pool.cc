#include "hakmem/superslab/slab_pool.h"

namespace hakmem {
namespace {

int GeometryOf(int slab_shift) { return slab_shift == kSmallSlabShift ? 0 : 1; }

// How many SuperSlabs at the front of with_room a take searches for a warm
// slab of its class before it formats a free one.
constexpr int kWarmLookup = 4;

}  // namespace

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
  int looked = 0;
  for (SuperSlab* w = with_room_[g].head; w != nullptr && looked < kWarmLookup;
       w = w->next, looked++) {
    if (Slab* s = SuperSlabTakeWarmSlab(w, size_class, owner)) {
      NoteTaken(g, w);
      return s;
    }
  }
  SuperSlab* ss = with_room_[g].head;
  if (ss == nullptr) return nullptr;
  const int index = SuperSlabTakeFreeSlab(ss);
  NoteTaken(g, ss);
  return SlabInit(ss, index, block_size, size_class, owner);
}

Slab* SlabPool::Take(int size_class, uint32_t block_size, int slab_shift, const void* owner,
                     bool may_map) {
  pthread_mutex_lock(&lock_);
  Slab* s = TakeLocked(size_class, block_size, slab_shift, owner);
  pthread_mutex_unlock(&lock_);
  if (s != nullptr || !may_map) return s;
  // A new SuperSlab, from the cache or mapped, without the lock: a failed
  // mapping purges the caches and reclaims exited threads' heaps, which
  // gives slabs back here.
  SuperSlab* ss = SuperSlabAcquire(this, slab_shift);
  if (ss == nullptr) return nullptr;
  const int g = GeometryOf(slab_shift);
  pthread_mutex_lock(&lock_);
  with_room_[g].Push(ss);
  const int index = SuperSlabTakeFreeSlab(ss);
  NoteTaken(g, ss);
  s = SlabInit(ss, index, block_size, size_class, owner);
  pthread_mutex_unlock(&lock_);
  return s;
}

void SlabPool::Return(Slab* s) {
  SuperSlab* ss = SuperSlabOf(s);
  pthread_mutex_lock(&lock_);
  const int g = GeometryOf(ss->slab_shift);
  const bool was_full = SuperSlabFull(ss);
  const bool now_empty = SuperSlabReturnSlab(ss, s);
  // To the front of with_room, where takes look for warm slabs first.
  if (was_full) {
    full_[g].Remove(ss);
  } else {
    with_room_[g].Remove(ss);
  }
  if (!now_empty) with_room_[g].Push(ss);
  pthread_mutex_unlock(&lock_);
  // Empty and on no list: nobody else can reach it. To the cache without
  // the lock (the cache's limits may unmap or madvise other regions).
  if (now_empty) SuperSlabRelease(ss);
}

void SlabPool::LockForFork() { pthread_mutex_lock(&lock_); }

void SlabPool::UnlockAfterFork(bool in_child) {
  if (in_child) {
    pthread_mutex_init(&lock_, nullptr);
  } else {
    pthread_mutex_unlock(&lock_);
  }
}

SlabPool::Stats SlabPool::GetStats() {
  Stats stats;
  pthread_mutex_lock(&lock_);
  for (int g = 0; g < 2; g++) {
    for (SuperSlab* ss = with_room_[g].head; ss != nullptr; ss = ss->next) stats.with_room++;
    for (SuperSlab* ss = full_[g].head; ss != nullptr; ss = ss->next) stats.full++;
  }
  pthread_mutex_unlock(&lock_);
  return stats;
}

}  // namespace hakmem
