// The transfer cache: batches of free small blocks, per size class, that
// one heap hands over to whichever heap of that class runs dry next (as
// tcmalloc's transfer cache sits between its thread caches and central
// lists). heap.cc uses it only while more threads run than CPUs (the gate):
// owners then wait for the CPU while blocks of theirs pile up elsewhere.
//
// This is the storage alone: per class, a stack of batches (arrays of block
// pointers, each stamped with the time it came in) under a spin lock. It
// never reads or writes a block. The heaps key the blocks before they come
// in, claim each with an atomic exchange once they take them out, decide
// when the cache may be used, and send aged batches home (heap.cc).
//
// Constant-initialized (zero, in bss): ready before any constructor runs,
// since the first malloc may come from another library's constructor, and
// a constructor resetting a lock could run while another library's threads
// already use the cache.
#ifndef HAKMEM_TINY_TRANSFER_CACHE_H_
#define HAKMEM_TINY_TRANSFER_CACHE_H_

#include <sched.h>
#include <stdint.h>

#include <atomic>

#include "hakmem/platform.h"
#include "hakmem/tiny/size_class.h"

namespace hakmem {

struct Block;

// Small classes only (up to 2 KiB): the blocks pin their slabs, so what the
// cache holds is bounded in batches and bytes per class. 16 batches,
// 256 KiB (session 5 had 4, 32 KiB): with 8 threads on 2 cores and half the
// frees remote, flushes found the cache full for a third of the blocks, and
// the owners' drains of what went home instead missed on every block;
// +8-11% speed, RSS -7%. 32 batches, 512 KiB since session 8, when whole
// flushes began to come here (heap.cc, FlushWholeBinToTransfer). 64
// batches, 1 MiB since session 11, when engaged classes stopped
// disengaging at every owner that ran (16-1024 B, 8 / 16 threads on 2
// cores, 50% and 90% remote, 11 interleaved reps: +2-9% speed, peak RSS
// -16-18%: fewer flushes found the cache full and sent their blocks home,
// to wait on queues while the owners carved new ones). Per class at most
// 4,096 blocks (64 batches of up to 64), and 1 MiB of them, each perhaps
// pinning its slab until the heaps send aged batches home. Its bss,
// untouched until used: 37 x 33 KiB.
constexpr int kTransferClasses = kFirstMidClass;
constexpr int kTransferBatches = 64;
constexpr uint32_t kTransferMaxBytes = 1024 * 1024;
// Blocks in one batch at most: half a bin (heap.h), plus one.
constexpr uint32_t kTransferBatchMax = 64;

// A lock per class, held for a few dozen instructions: spins, and yields
// after a while (its holder may be off the CPU). A leaf: nothing else is
// locked while it is held. (Skipped while this thread holds the fork
// locks, as every allocator lock: see platform::tl_holds_fork_locks.)
class TransferLock {
 public:
  void Lock() {
    if (platform::tl_holds_fork_locks) return;
    int spins = 0;
    while (word_.exchange(1, std::memory_order_acquire) != 0) {
      while (word_.load(std::memory_order_relaxed) != 0) {
        if (++spins < 64) {
          __builtin_ia32_pause();
        } else {
          sched_yield();
          spins = 0;
        }
      }
    }
  }
  void Unlock() {
    if (!platform::tl_holds_fork_locks) word_.store(0, std::memory_order_release);
  }
  void Reset() { word_.store(0, std::memory_order_relaxed); }  // fork child

 private:
  std::atomic<uint32_t> word_{0};
};

// Pointers in an array, not a chain through the blocks: whoever takes a
// batch checks each block's key with loads that do not wait on each other
// (the blocks are cold, written by other cores).
struct TransferBatch {
  uint32_t count = 0;
  uint64_t pushed_ns = 0;
  Block* blocks[kTransferBatchMax] = {};
};

// A class's lock and counts, apart from its batches: the quick looks (every
// refill's, the upkeep's at every class, fork's locks) then touch one page
// for all classes. (With the batches behind each head, 33 KiB apart, a
// program's first upkeep faulted in a page per class: 36 of the 67 page
// faults hakmem added to a one-malloc program's start-up.) A line each:
// neighbouring classes' locks are taken by different threads. (The L2
// fetches lines in pairs, so two classes' heads may still meet there.)
struct alignas(64) TransferClassHead {
  TransferLock lock;
  uint32_t batches = 0;  // written under the lock, read racily for a quick look
  uint32_t blocks = 0;   // likewise
};
struct TransferClassBatches {
  TransferBatch batch[kTransferBatches] = {};
};
static_assert((TransferClassHead(), TransferClassBatches(), true),
              "the cache's parts must stay constant expressions");

class TransferCache {
 public:
  constexpr TransferCache() = default;

  // Adds `count` blocks (1 to kTransferBatchMax) of class `size_class` as a
  // batch that came in at `now_ns`, if the class has room for it; false
  // otherwise, and for a class the cache does not hold.
  bool Push(int size_class, Block* const* blocks, uint32_t count, uint64_t now_ns);
  // A quick look, without the lock, whether Push would take `count` blocks
  // (Push decides).
  bool SeemsToHaveRoom(int size_class, uint32_t count) const {
    if (size_class < 0 || size_class >= kTransferClasses) return false;
    const TransferClassHead& t = heads_[size_class];
    return __atomic_load_n(&t.batches, __ATOMIC_RELAXED) < kTransferBatches &&
           (__atomic_load_n(&t.blocks, __ATOMIC_RELAXED) + count) * ClassSizeOf(size_class) <=
               kTransferMaxBytes;
  }
  // A quick look, without the lock, whether the class holds no batch (every
  // refill asks: inline).
  bool SeemsEmpty(int size_class) const {
    if (size_class < 0 || size_class >= kTransferClasses) return true;
    return __atomic_load_n(&heads_[size_class].batches, __ATOMIC_RELAXED) == 0;
  }
  // Moves the newest batch of the class into `out` (room for
  // kTransferBatchMax); returns how many blocks (0: none cached).
  uint32_t PopNewest(int size_class, Block** out);
  // Moves up to `max_batches` of the class's batches that came in before
  // `cutoff_ns` into `out` (room for max_batches * kTransferBatchMax), oldest
  // first, keeping the others in order; returns how many blocks, and sets
  // `*batches` to how many batches.
  uint32_t TakeOlderThan(int size_class, uint64_t cutoff_ns, uint32_t max_batches, Block** out,
                         uint32_t* batches);
  // Blocks the class holds (under its lock).
  uint32_t CachedBlocks(int size_class);

  // Around fork: every class's lock, taken in class order (leaves: nothing
  // is locked after them); in the child, the locks are reset instead.
  void LockAll();
  void UnlockAll();
  void ResetLocksInChild();

 private:
  TransferClassHead heads_[kTransferClasses] = {};
  TransferClassBatches batches_[kTransferClasses] = {};
};

}  // namespace hakmem

#endif  // HAKMEM_TINY_TRANSFER_CACHE_H_
