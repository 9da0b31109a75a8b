#include "hakmem/tiny/transfer_cache.h"

#include <string.h>

namespace hakmem {

bool TransferCache::Push(int size_class, Block* const* blocks, uint32_t count, uint64_t now_ns) {
  if (size_class < 0 || size_class >= kTransferClasses || count == 0 || count > kTransferBatchMax) {
    return false;
  }
  TransferClassHead& t = heads_[size_class];
  TransferBatch* const stack = batches_[size_class].batch;
  t.lock.Lock();
  const bool room = t.batches < kTransferBatches &&
                    (t.blocks + count) * ClassSizeOf(size_class) <= kTransferMaxBytes;
  if (room) {
    TransferBatch& batch = stack[t.batches];
    batch.count = count;
    batch.pushed_ns = now_ns;
    memcpy(batch.blocks, blocks, count * sizeof(Block*));
    __atomic_store_n(&t.blocks, t.blocks + count, __ATOMIC_RELAXED);
    __atomic_store_n(&t.batches, t.batches + 1, __ATOMIC_RELAXED);
  }
  t.lock.Unlock();
  return room;
}

uint32_t TransferCache::PopNewest(int size_class, Block** out) {
  if (SeemsEmpty(size_class)) return 0;
  TransferClassHead& t = heads_[size_class];
  TransferBatch* const stack = batches_[size_class].batch;
  t.lock.Lock();
  uint32_t n = 0;
  if (t.batches != 0) {
    const TransferBatch& batch = stack[t.batches - 1];
    n = batch.count;
    memcpy(out, batch.blocks, n * sizeof(Block*));
    __atomic_store_n(&t.blocks, t.blocks - n, __ATOMIC_RELAXED);
    __atomic_store_n(&t.batches, t.batches - 1, __ATOMIC_RELAXED);
  }
  t.lock.Unlock();
  return n;
}

uint32_t TransferCache::TakeOlderThan(int size_class, uint64_t cutoff_ns, uint32_t max_batches,
                                      Block** out, uint32_t* batches) {
  *batches = 0;
  if (SeemsEmpty(size_class)) return 0;
  TransferClassHead& t = heads_[size_class];
  TransferBatch* const stack = batches_[size_class].batch;
  uint32_t n = 0, taken = 0, kept = 0;
  t.lock.Lock();
  for (uint32_t i = 0; i < t.batches; i++) {
    TransferBatch& batch = stack[i];
    if (batch.pushed_ns < cutoff_ns && taken < max_batches) {
      memcpy(out + n, batch.blocks, batch.count * sizeof(Block*));
      n += batch.count;
      __atomic_store_n(&t.blocks, t.blocks - batch.count, __ATOMIC_RELAXED);
      taken++;
    } else if (kept++ != i) {
      stack[kept - 1] = batch;
    }
  }
  __atomic_store_n(&t.batches, kept, __ATOMIC_RELAXED);
  t.lock.Unlock();
  *batches = taken;
  return n;
}

uint32_t TransferCache::CachedBlocks(int size_class) {
  if (size_class < 0 || size_class >= kTransferClasses) return 0;
  TransferClassHead& t = heads_[size_class];
  t.lock.Lock();
  const uint32_t blocks = t.blocks;
  t.lock.Unlock();
  return blocks;
}

void TransferCache::LockAll() {
  for (TransferClassHead& t : heads_) t.lock.Lock();
}

void TransferCache::UnlockAll() {
  for (TransferClassHead& t : heads_) t.lock.Unlock();
}

void TransferCache::ResetLocksInChild() {
  for (TransferClassHead& t : heads_) t.lock.Reset();
}

}  // namespace hakmem
