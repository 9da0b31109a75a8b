// Thread heaps: the owners of slabs, and the tiny fast path's state.
//
// Each thread that allocates gets a Heap (from a pool of heaps whose threads
// exited, or a new one). The heap owns slabs, which it takes from the slab
// pool shared by all heaps (slab_pool.h) and gives back when they empty; per
// size class it has a "current" slab that refills come from, and a list of
// other slabs that still have free blocks.
//
// In front of the slabs, per class, the heap has a bin: a stack of pointers
// to free blocks. malloc pops a pointer and free pushes one, whichever heap
// owns the block: malloc's next pop does not wait for a link in the block
// (an intrusive list makes it wait for the block's line, a miss whenever
// the block went cold or another core wrote it), and free does not read the
// block (jemalloc's tcache works the same way). An empty bin is refilled
// from the current slab (slow start, see FirstRefillOf); a full one sends
// its oldest half back: blocks of this heap to their slabs, blocks of other
// heaps to their owners in batches (RemoteBatch, one atomic operation per
// batch). So a block allocated by one thread and freed by another is reused
// by the thread that freed it, where it is hot.
//
// Invariants:
//  - A block in a bin is free: it carries the heap's free key (see
//    tiny_alloc.h), checked whenever it leaves the bin, and stays counted as
//    in use by its slab until then.
//  - A bin's limit bounds the memory it holds (see BinLimitOf); kEmptyHeap's
//    limits are 0, so a thread with no heap caches nothing. A heap's bin
//    stays dormant (top and end 0, as kEmptyHeap's) until its class is
//    first used (heap.cc, BinDormant).
//  - current[c] of a heap in use is never null: it points at kEmptySlab (no
//    free blocks, owned by nobody) until the class is first used.
//  - A slab other than current[c] whose last block comes back is returned to
//    the slab pool at once (after CheckEmptySlab); whoever takes it next,
//    for any class, carves it again in address order (see
//    SuperSlabReturnSlab).
//  - current[c] stays when it empties (a malloc/free loop must not churn);
//    the time-gated upkeep (at most every 100 ms of slow paths) empties the
//    calling thread's bins and returns its empty current slabs, so a program
//    that freed everything does not keep memory pinned.
//  - Slab::role says whether a slab is current[c], on partial[c] (not
//    current, with free blocks), on carvable[c] (not current, no free block
//    but room to carve), or none (full).
//  - Refills take free blocks before carving: from the current slab, then
//    from partial slabs, and only then carve (the current slab, a carvable
//    one, a new one). Carving touches fresh memory.
//  - Heaps are never unmapped, so a remote free may always push onto the
//    owner heap's queue, even after the owner thread exited.
//  - A heap whose thread exited waits in a pool for a new thread, with no
//    current slab; other threads' flushes put its blocks on its slabs'
//    lists themselves, under the pool lock (heap.cc, MayFreeIntoPooled).
#ifndef HAKMEM_TINY_HEAP_H_
#define HAKMEM_TINY_HEAP_H_

#include <stdint.h>

#include <atomic>

#include "hakmem/platform.h"
#include "hakmem/superslab/intrusive_list.h"
#include "hakmem/superslab/remote_queue.h"
#include "hakmem/superslab/superslab.h"
#include "hakmem/tiny/size_class.h"

namespace hakmem {

extern Slab kEmptySlab;

// kOrphan: the one heap, guarded by a lock, that serves threads allocating
// after their own heap was handed back (in their last TLS destructors), and
// every heap's first blocks of a class while the process runs many threads
// (see StartsShared in heap.cc).
// kLeaked: in a fork child, the heap of a thread that did not survive the
// fork. That thread may have been halfway through changing it, so nothing
// reads or changes it again: its blocks that the child frees wait on its
// queue of remote frees for good (as tcmalloc leaks other threads' caches).
enum class HeapState : uint32_t {
  kEmpty = 0,
  kActive = 1,
  kAbandoned = 2,
  kOrphan = 3,
  kLeaked = 4,
};

struct Heap;

// A bin's row of pointers: slot 0 is a null sentinel (so free's check of the
// top slot needs no emptiness test), slots 1..count the free blocks.
// 128 slots: classes up to 128 B hold 127 blocks (16 KiB worth would be
// more) and move up to 63 per refill and flush, half the slow paths of 64
// slots. Session 12, 7 interleaved rounds of 2M-block builds and
// tear-downs: 16 B malloc 6.30 -> 5.30 ns, free 5.35 -> 4.96; 64 B free
// 12.2 -> 10.5, malloc the same (carving's prefetch reach keeps 63-block
// carves from waiting on their lines, which made session 4's 128-slot try
// 17% slower there); the lanes within noise.
constexpr uint32_t kBinSlots = 128;
constexpr uint32_t kBinMaxBlocks = kBinSlots - 1;
// A small class's bin that grows past its row (see SmallBinMaxLimitOf)
// moves to a wide row of its own: the heap's wide rows, one per small
// class (32 KiB each, 1.2 MiB in all, touched only as deep as bins
// grow), are mapped at the first such growth (Heap::wide_rows), so a
// thread whose bins never swing that far maps and touches none of it.
// (Every row that wide in bin_slots: each used class pages of its own, and
// more bss for the static heaps than start-up may map: at most 8 MiB more
// than glibc, and it already took 7.1.)
constexpr uint32_t kWideBinSlots = 4096;
constexpr uint32_t kWideBinMaxBlocks = kWideBinSlots - 1;
constexpr size_t kWideRowsBytes = size_t{kFirstMidClass} * kWideBinSlots * sizeof(void*);
// Mid classes keep at most 63 (127 would let 2.5-8 KiB bins hold up to
// 1 MiB and carve 63 blocks, a page each, at a time; not measured).
constexpr uint32_t kMidBinMaxBlocks = 63;

// A bin's limit: 16 KiB worth of blocks, 16 to 127; for mid classes (2.5-32
// KiB), 1 MiB worth, at most 63; for big ones (40-256 KiB), 256 KiB worth, at
// least 2, growing on overflows (BigBinMaxLimitOf). Idle blocks in bins are
// resident memory the program does not use: measured on random_mixed 16-1024,
// 16 KiB adds 0.4 MiB of RSS over no bins (128 KiB added 0.8 MiB) at the same
// speed. Big blocks get more: a bin that overflows or runs dry every few
// operations churns slabs (4096-32768 ran 14% faster with 32 blocks than with
// 8, with less RSS; 4% faster again with 1 MiB worth, at most 63, than with
// 512 KiB, at most 32, and 16-32768 too, with 1 MiB less RSS). (Session 3's
// 32 blocks of any size, with smaller carves, had needed two more SuperSlabs
// on 16-32768, one of them late in the run.)
constexpr uint32_t BinLimitOf(int size_class) {
  if (size_class >= kFirstBigClass) {
    const uint32_t big = 262144 / ClassSizeOf(size_class);
    return big < 2 ? 2 : big;
  }
  if (size_class >= kFirstMidClass) {
    const uint32_t mid = 1048576 / ClassSizeOf(size_class);
    return mid > kMidBinMaxBlocks ? kMidBinMaxBlocks : mid;
  }
  const uint32_t by_bytes = 16384 / ClassSizeOf(size_class);
  return by_bytes > kBinMaxBlocks ? kBinMaxBlocks : (by_bytes < 16 ? 16 : by_bytes);
}
// How far a big class's bin grows, overflow by overflow (doubling), while
// the heap's big bins together have grown by at most kBigBinGrowthBudget;
// the upkeep resets them. A few busy big classes get up to 4 MiB worth
// each; all twelve share the budget; a thread that stops calling malloc
// holds at most 3.5 + 16 MiB of big blocks in its bins (16 MiB of mid ones).
// random_mixed over 32-256 KiB (all twelve busy), 5 interleaved reps,
// Mops/s and peak RSS: fixed 1 MiB worth 41.7 / 35 MiB, fixed 2 MiB 58.1 /
// 28.5 (up to 24 MiB idle a thread), budget 4 MiB 37.1 / 38.3, 8 MiB 47.6 /
// 33.9, 16 MiB 62.3 / 26.5; tcmalloc 41.8 / 60.6. Bigger bins send fewer
// blocks back to slabs that empty and get carved again elsewhere. Over
// 32-64 KiB (four classes busy): 8 MiB 96.4, fixed 2 MiB 96.3, tcmalloc 77.7.
// Session 13 measured what the 16 MiB costs where it would show: 16 threads
// that write whole 32-256 KiB blocks, free them all and go idle keep 1,453
// MiB with 8 MiB, 1,581 with 16 (+9%; tcmalloc 1,281): blocks not in a
// bin sit on their idle owner's slabs, resident too, unless a slab empties.
// And again 8 -> 16 MiB, 7 reps: 32-256 KiB 47.6 -> 60.4 Mops/s and 29.2 ->
// 22.4 MiB peak (tcmalloc 44.3 / 50.1); 32-128 KiB 83.1 -> 91.7 (71.5);
// 128-256 KiB 52.6 -> 62.7 (44.8). (24 MiB: 66.3, idle 1,584.)
// A heap whose big bins' overflow flushes send blocks to other heaps (in
// the last 100-200 ms) does not grow its big bins while the process runs more
// threads than CPUs (and for 100 ms after a census found it so): they stay
// at BinLimitOf, as small bins do not swing-grow while the transfer cache
// may engage (see BigBinsMayGrow in heap.cc). A thread waiting for a CPU
// holds its bins idle, and what other threads free for it waits on its
// queue. tests/FINDINGS.md F15 (bigchurn: 3 threads on 2 cores churning
// 32-256 KiB blocks, half freed by another thread, every page written):
// peak RSS 423 -> 312 MiB, median of 5 paired runs, iterations 0.95x
// (0.98x in 7 others; tcmalloc 235, glibc 270, jemalloc 286, mimalloc
// 321); 4 and 8 threads 495 -> 423 and 1,000 -> 813 MiB, iterations
// 0.95x (still above tcmalloc's and mimalloc's); 2 threads unchanged.
// random_mixed 32769-262144 with 3 threads and 50% remote frees: 0.91x (paired
// medians of 7, a noisy lane), RSS the same; with 4 threads and no remote
// frees, and the single-thread lanes, unchanged (their heaps send nothing).
constexpr uint32_t BigBinMaxLimitOf(int size_class) {
  const uint32_t big = 4194304 / ClassSizeOf(size_class);
  return big > kMidBinMaxBlocks ? kMidBinMaxBlocks : big;
}
constexpr uint64_t kBigBinGrowthBudget = 16 << 20;
static_assert(BigBinMaxLimitOf(kFirstBigClass) <= kMidBinMaxBlocks &&
                  BinLimitOf(kNumClasses - 1) >= 2,
              "big bins hold 2 to 63 blocks");

// What a bin that overflows with other threads' blocks grows to (see
// TinyFreeSlow): 24 KiB worth, 32 to 127; mid and big classes do not
// grow. (32 KiB worth: remote50 RSS 1.24x mimalloc's instead of 1.13x,
// same speed; fewer than 32 blocks: 1-2 KiB blocks with 90% remote frees
// ran 25% slower.)
constexpr uint32_t BinGrownLimitOf(int size_class) {
  if (size_class >= kFirstMidClass) return BinLimitOf(size_class);
  const uint32_t by_bytes = 24576 / ClassSizeOf(size_class);
  return by_bytes > kBinMaxBlocks ? kBinMaxBlocks : (by_bytes < 32 ? 32 : by_bytes);
}

// A mid or big class's bin forwards once its last kForwardingOverflows
// overflows sent mostly other heaps' blocks home (at least half of each
// flush) with no refill between them: the thread frees what others
// allocated (a consumer of a producer's buffers). Such a bin is a batch on
// its way home, not a cache the thread reuses, and it held up to 1 MiB per
// mid class (4 MiB grown per big one) idle in a thread that never
// allocates them: forwarding, it holds ForwardingLimitOf(c) and sends all
// of it at each overflow. A refill, or an overflow that sends mostly the
// heap's own blocks, gives it back its limit; the upkeep keeps it. Not in a
// heap that refilled the class in its last two upkeeps (100-200 ms): a
// thread that frees a burst of another's blocks and then allocates its own
// reuses them (a consumer freeing 100 of a producer's 4 KiB blocks, then
// allocating and freeing 100 of its own: 0.30 -> 0.46 s with forwarding
// there, a review; two threads taking turns to free the other's structure
// of big blocks and build their own: +15%, +19 MB).
// tests/FINDINGS.md F43 (a producer's 1-64 KiB buffers freed by a
// consumer): peak RSS 41 -> 24 MB.
// (Bins of 64 KiB worth flushing half: a consumer freeing 8-32 KiB blocks
// took 56 -> 250 ns a free, a flush per block or two; no bin, each block
// straight into the outgoing batch: 125 ns, a cold read of the block's key
// per free instead of a flush's stores that overlap.)
constexpr uint8_t kForwardingOverflows = 2;
// 64 KiB worth, at least 8 blocks (a flush's overlapping stores), at most
// the bin's limit.
constexpr uint32_t ForwardingLimitOf(int size_class) {
  const uint32_t by_bytes = 65536 / ClassSizeOf(size_class);
  const uint32_t at_least = by_bytes < 8 ? 8 : by_bytes;
  return at_least < BinLimitOf(size_class) ? at_least : BinLimitOf(size_class);
}

// How far a small class's bin grows, doubling each time it swings from
// full to empty with its own blocks (an overflow that sent nothing to other
// heaps, then a refill: the class's live blocks rise and fall by more than
// the bin holds, so it takes a slow path every few operations), while the
// heap's small bins together have grown by at most kSmallBinGrowthBudget
// (growth by other threads' blocks, BinGrownLimitOf, counts there but is
// never refused: about 0.3 MiB more at most); the upkeep resets them.
// 512 KiB worth, at most kWideBinMaxBlocks (past kBinMaxBlocks, in a wide
// row). Larson's loop (1000 blocks of 16-1024 B, a free and a malloc of
// random sizes), where about 64 classes swing: 69K refills and as many
// flushes in 20M iterations became 790 and 508 with bins of up to 64 KiB
// worth and 127 blocks, 1.09x; the 16-1024 lane 1.017x, the same peak RSS;
// 16 threads that ran that loop and went idle +2% RSS. (Bins of 64 KiB
// worth for every class from the start: 1.06x.) A request arena, 10,000
// blocks of 16-512 B allocated and then freed per request, about 300-650
// of each class (tests/FINDINGS.md F71): those bins refilled and flushed
// 130 times a request, 2.9 s against tcmalloc's 1.5 and mimalloc's 2.0;
// with up to 1,023 blocks and 512 KiB worth each, 8 MiB in all, 1.5 s
// (refills of at most 63 blocks, see RefillBinAndPop; 256 KiB worth and 4
// MiB: 1.8 s, doubling spends the budget past what the bins hold; 511
// blocks: 2.5 s). 40,000 blocks of 16-256 B a request, about 2,600 a class:
// 3.0 s with up to 1,023 blocks, 2.1 s with 4,095 (tcmalloc 1.8, mimalloc
// 1.9). Overflows with other threads' blocks grow bins by BinGrownLimitOf
// only: counted as swings, they took 8 threads with 90% remote frees from
// 28 to 36 MiB.
constexpr uint32_t SmallBinMaxLimitOf(int size_class) {
  const uint32_t by_bytes = 524288 / ClassSizeOf(size_class);
  return by_bytes > kWideBinMaxBlocks ? kWideBinMaxBlocks : by_bytes;
}
constexpr uint64_t kSmallBinGrowthBudget = 8 << 20;
// And all heaps' small bins together, as tcmalloc bounds its thread caches
// together: a thread that goes idle keeps its grown bins full (no other
// thread may flush them), so 64 threads that each ran such requests, one
// or two at a time, and then waited held 100 -> 383 MB (tcmalloc 208,
// mimalloc 425, glibc 107; a review), and the SuperSlabs their exit emptied
// stayed cached. Bins that grow by other threads' blocks count here too.
constexpr uint64_t kAllHeapsSmallBinGrowthBudget = 32 << 20;
// How far a swing grows a small bin of a heap whose small bins sent blocks to
// other heaps in its last two upkeeps (100-200 ms, Heap::sends_small_blocks),
// and how far they grow together: as all did before wide bins, 64 KiB
// worth, at most kBinMaxBlocks, 512 KiB in all. Where blocks flow between
// threads, bigger bins keep more of them in transit: the lanes of two
// threads with 50% and 90% remote frees took 8.9 -> 10.7 and 10.2 -> 11.6
// MiB of peak RSS with wide bins (mimalloc 9.8 on the latter), and 8.3 ->
// 10.1 with bins kept in their rows but up to 127 blocks of any class,
// for nothing their swings needed.
constexpr uint32_t SendingSmallBinMaxLimitOf(int size_class) {
  const uint32_t by_bytes = 65536 / ClassSizeOf(size_class);
  return by_bytes > kBinMaxBlocks ? kBinMaxBlocks : by_bytes;
}
constexpr uint64_t kSendingSmallBinGrowthBudget = 512 << 10;
static_assert(SmallBinMaxLimitOf(0) > BinLimitOf(0) &&
                  SmallBinMaxLimitOf(kFirstMidClass - 1) > kBinMaxBlocks &&
                  SmallBinMaxLimitOf(kFirstMidClass - 1) >= BinGrownLimitOf(kFirstMidClass - 1),
              "every small bin may grow into its wide row, as far as others' blocks grow it");

// Blocks a class's first refill brings; each later one brings twice as
// many, up to half the bin's limit, until the upkeep empties the bins. A
// big class (40 KiB blocks and up) brings one: each carved block gets its
// key written, a page each, so a big class a program uses once touched two
// pages for one block (the one-malloc start-up program, whose libstdc++
// allocates its exception pool: 152 -> 151 page faults). (A page's worth
// for mid classes too, one block of 4 KiB and up: 146 faults, but the
// 4096-32768 and 16-32768 lanes then mapped their last SuperSlab after the
// warm-up, in the timed loop, in every strace pass.)
constexpr uint8_t kBinFirstRefill = 4;
constexpr uint8_t FirstRefillOf(int size_class) {
  return size_class >= kFirstBigClass ? 1 : kBinFirstRefill;
}

// The fast paths' view of a bin (Heap::bin_top, bin_end), as byte offsets
// into Heap::bin_slots: the top slot (slot `count` of the class's row; the
// null sentinel when empty) and the top slot when full (slot `limit`).
// Offsets rather than counts: the fast paths address the top slot without
// computing row and column. 64-bit: the fast paths add the offset to the
// heap's address as loaded, with no zero-extending copy. All zero
// (kEmptyHeap, and a heap's dormant bins): the top is row 0's sentinel
// (class 0's, never written), and top == end, so both fast paths go slow.
using BinOffset = uint64_t;

// Byte offset of slot `n` of class `c`'s row in Heap::bin_slots.
constexpr BinOffset BinSlotOffset(size_t c, uint32_t n) {
  return (c * kBinSlots + n) * sizeof(Block*);
}

// Blocks a heap freed for one other heap, not yet pushed to it: linked
// newest first, pushed onto the owner's queue at once. The owner walks the
// chain a block at a time, each a line the freeing core wrote last: so a
// block of 32 B and up also points at the block kRemoteLookAhead further
// down the chain (RemoteBlock; the first few linked point nowhere), for the
// owner to ask for ahead (DrainRemote).
constexpr uint32_t kRemoteLookAhead = 4;
struct RemoteBatch {
  static constexpr uint32_t kMaxBlocks = 64;
  Heap* owner = nullptr;
  Block* first = nullptr;
  Block* last = nullptr;
  uint32_t count = 0;
  Block* recent[kRemoteLookAhead] = {};  // the last ones linked, by count
};
// A free block of 32 B and up on its way to its owner: its third word (the
// big classes' BigBlockMark, which takes any value) a hint, stale in a block
// queued by other means.
struct RemoteBlock {
  Block block;
  Block* ahead;
};

// Tag for the Heap constructor used on memory known to be zero.
struct ZeroedMemory {};

// The transfer cache's gate (heap.cc): what a heap remembers of an owner it
// flushed blocks for, in a small table indexed by a hash of the owner.
struct OwnerSeen {
  const Heap* owner = nullptr;
  uint64_t beat = 0;   // the owner's Heap::beat when last seen
  uint32_t flush = 0;  // which of our flushes saw it (one look per flush)
};
constexpr int kOwnersSeenBits = 4;
// While the process runs more threads than it has CPUs, a heap's flushes
// of a small class put other heaps' blocks into the transfer cache from
// the kTransferEngageFlushes-th flush in a row that found one of their
// owners behind on; from then on whole flushes go there as long as it has
// room (see FlushWholeBinToTransfer), and the first flush sorted by owner
// that finds none of them behind disengages.
// (With 4 or 8 threads on 2 cores, 77-87% of flushes with other heaps' blocks
// came with the gate open.)
constexpr uint8_t kTransferEngageFlushes = 4;

// Slow-path events of one heap, counted by whoever may change the heap (its
// thread; for a pooled heap, the pool lock's holder; for the orphan heap,
// its lock's) and read racily by the stats: where blocks travel between
// heaps. Cumulative: a pooled heap's next thread counts on.
struct HeapCounters {
  uint64_t refills = 0;                    // empty bins refilled
  uint64_t overflow_flushes = 0;           // full bins flushed
  // Other heaps' blocks queued for them. (A thread without a heap pushes
  // its frees one at a time, uncounted: the owners' drains count them.)
  uint64_t blocks_sent_to_owners = 0;
  uint64_t blocks_drained = 0;             // taken off this heap's queue
  uint64_t transfer_batches_pushed = 0;    // batches put into the transfer cache
  uint64_t transfer_batches_taken = 0;     // batches refills took from it
  // Blocks the transfer cache sent home: batches that aged there (or a
  // trim emptied), and flushes it refused because it was full.
  uint64_t transfer_blocks_sent_home = 0;
  // Blocks taken from the orphan heap while the heap had no slab of their
  // class (see StartsShared in heap.cc).
  uint64_t shared_start_blocks = 0;
};

struct Heap {
  // constexpr and all zero: kEmptyHeap is ready before any constructor
  // runs, and costs only bss. Its limits are 0 (nothing is ever pushed on
  // its bins) and nothing reads its current[].
  // (GCC 12 gives up constant initialization, silently, if the bin arrays
  // are value-initialized in the mem-initializer list instead of below.)
  constexpr Heap() : current(), bin_slots() {}
  // For NewHeapLocked(), on fresh mapped or never used static memory: leaves
  // bin_slots (65 KiB) as it is, zero, instead of writing every page of it.
  // Slot 0 of each row must be null (the sentinel); rows are written only
  // as their classes are used.
  explicit Heap(ZeroedMemory) : current() {
    for (Slab*& slab : current) slab = &kEmptySlab;
  }

  // The fast paths' words, an array each, 8-byte strides that the class
  // indexes as an addressing mode: free reads a bin's top, end and key,
  // malloc its top and key. (As 8-byte {top, end} pairs of 32-bit offsets,
  // free made two zero-extending copies of the top: with those, the pop's
  // arguments and TinyMallocSlow's class type (below), 70 / 72
  // instructions a pair, then 66 / 68 (68 / 70 with keys XOR the block's
  // address, see KeyOf). Free reads three lines of these arrays, not two:
  // paired rounds read the lanes within noise, +0.4-0.5%.)
  BinOffset bin_top[kNumClasses] = {};
  BinOffset bin_end[kNumClasses] = {};
  // Mallocs the fast path may still serve before a slow path runs the
  // upkeep (kMallocsBetweenUpkeeps). Why: the upkeep (the decay, the TTL,
  // this heap's idle bins) runs from slow paths, and a program whose
  // mallocs and frees stay within its bins after a peak never reached one:
  // 1M small objects freed, then 64 churned, kept 508 MB resident for good
  // (jemalloc, which counts on its fast paths too, 150; mimalloc 507,
  // tcmalloc 512; tests/FINDINGS.md F64); now 62 MB. 2 instructions a
  // malloc (a pair 68 -> 70 linked), the lanes' times within noise.
  // Below 0: due (it stays below 0 until MallocSlow, the one place that
  // sets it, runs: every malloc path's fallback leads there). Starts at 0.
  int64_t mallocs_to_upkeep = 0;
  // What each bin's blocks carry, BinKey(h, class), as stored (StoredKey,
  // see KeyWord): the fast paths compare and write it as it is.
  uint64_t bin_words[kNumClasses] = {};
  uint64_t free_key = 0;                      // see HeapFreeKey(); bins' keys: BinKeyOf
  Slab* current[kNumClasses];                 // where refills come from
  Heap* pool_next = nullptr;                  // pool of abandoned heaps
  Heap* all_next = nullptr;                   // every heap ever made
  std::atomic<HeapState> state{HeapState::kEmpty};
  uintptr_t thread_id = 0;                    // pthread_self() of its thread
  Heap* thread_next = nullptr;                // active heaps by thread id (heap.cc)
  RemoteBatch outgoing;                       // this thread's frees for others
  // Bumped by the heap's thread on each of its slow paths: the census and
  // (only while the transfer cache may engage) other heaps' flushes read
  // it to tell an owner that runs from one that does not. Not beside
  // `remote`, which other threads write: the bump stays a cache hit.
  uint64_t beat = 0;
  uint64_t census_beat = 0;                   // `beat` at the last census
  uint64_t last_slow_ns = 0;                  // its last TinyUpkeep's clock
  bool bin_rows_discarded = false;            // pooled, rows given back (a trim)
  uint8_t bin_refill[kNumClasses] = {};       // blocks the next refill brings
  // Per class: 1 + the row of bin_slots its bin uses, 0 until the bin first
  // wakes (see AssignBinRow); and how many rows are taken. Rows go to
  // classes in the order they are first used, not by class: a thread's
  // first classes share the heap's first pages.
  uint8_t bin_row[kNumClasses] = {};
  uint8_t bin_rows_taken = 0;
  static_assert(kNumClasses < 256, "rows counted in a byte");
  // Per small class: its bin is in its wide row (see kWideBinSlots).
  bool bin_wide[kFirstMidClass] = {};
  // Per class: the bin's last overflow sent nothing to other heaps, and no
  // refill or upkeep came since (a swing is due: see SmallBinMaxLimitOf).
  bool bin_overflowed[kNumClasses] = {};
  // Per class: overflows in a row that sent other heaps' blocks home with
  // no refill between them (the thread frees what others allocated: see
  // ForwardingLimitOf).
  uint8_t bin_forwards[kNumClasses] = {};
  // Per class: 2 at a refill, counted down by each upkeep: while not 0, the
  // class's bin does not start forwarding (a thread that allocates the
  // class too reuses the blocks it freed; see kForwardingOverflows).
  uint8_t bin_refilled[kNumClasses] = {};
  // 2 when a big bin's overflow flush sent blocks to other heaps; each
  // upkeep counts it down (see BigBinsMayGrow in heap.cc).
  uint8_t sends_big_blocks = 0;  // (in the padding before `flushes`)
  // Likewise for the small bins: while not 0, they grow as far as
  // SendingSmallBinMaxLimitOf only.
  uint8_t sends_small_blocks = 0;
  // The transfer cache's gate, touched only by the heap's thread (or under
  // the pool lock, once abandoned): the owners its flushes saw, and per
  // small class how many flushes in a row found an owner behind.
  uint32_t flushes = 0;
  OwnerSeen owners_seen[1 << kOwnersSeenBits] = {};
  uint8_t behind_flushes[kFirstMidClass] = {};
  // Bytes the big and the small classes' bin limits have grown by, over
  // all of them (see kBigBinGrowthBudget, kSmallBinGrowthBudget).
  uint64_t big_bins_grown = 0;
  uint64_t small_bins_grown = 0;
  HeapCounters counters;                      // for the stats
  // A robust mutex that the heap's thread holds while it has the heap (see
  // PoolHeapsOfDeadThreads): the kernel marks it when its owner dies.
  pthread_mutex_t alive = PTHREAD_MUTEX_INITIALIZER;
  alignas(64) RemoteQueue remote;             // other threads' frees
  uint64_t next_upkeep_ns = 0;                // see TinyUpkeep()
  // The bins' pointers, one row of kBinSlots per class (see bin_row); slot
  // `count` is the top (handed out next).
  alignas(64) Block* bin_slots[kNumClasses * kBinSlots];
  // Slow paths only: past the rows, so that the fields above and row 0's
  // sentinel share the heap's first page (see heap.cc, kHeapStep).
  IntrusiveList<Slab> partial[kNumClasses];   // other slabs with free blocks
  IntrusiveList<Slab> carvable[kNumClasses];  // others with only room to carve
  // Fresh slabs this heap was about to take, and that count at each mid
  // class's last refill (see FlushIdleBins in heap.cc).
  uint32_t fresh_slab_takes = 0;
  uint32_t refilled_at_take[kFirstBigClass - kFirstMidClass] = {};
  // Per class: blocks this heap took from the orphan heap while it had no
  // slab of the class (see StartsShared in heap.cc).
  uint8_t shared_takes[kNumClasses] = {};
  // The small classes' wide rows, kWideBinSlots each: mapped at the first
  // bin that grows past its row, kept with the heap (slot 0 of each, the
  // sentinel, never written). A bin there has its top and end as offsets
  // from bin_slots as the others do, modulo 2^64 (the mapping may lie
  // below the heap).
  Block** wide_rows = nullptr;
  bool wide_rows_refused = false;  // their mapping failed since the last upkeep
  bool wide_rows_used = false;     // a bin moved there since their pages went back
};

extern Heap kEmptyHeap;

// The whole allocator's process-wide set-up (hakmem.cc: the fork handlers),
// run once by the first allocation's TinyGlobalInit: before the program's
// libraries' constructors run, where that allocation comes first. Weak: the
// tiny layer's own tests run without it. (Not hidden: a hidden weak
// reference left undefined reads as the executable's load address in a PIE.)
void OnAllocatorInit() __attribute__((weak));
// Out of memory (a mapping failed even after the caches were purged): gives
// back what the whole allocator holds idle, this thread's heap included,
// which a failed mapping's purge leaves alone (it may come in the middle of
// this heap's refill); true if the caller should try once more (hakmem.cc,
// at most every 100 ms). Weak, as above.
bool OnOutOfMemory() __attribute__((weak));

// The slot at byte offset `offset` (a bin's top or end). (Integer
// arithmetic: a wide row's offset may wrap, see Heap::wide_rows.)
HAKMEM_ALWAYS_INLINE Block** BinSlotAt(Heap* h, BinOffset offset) {
  return reinterpret_cast<Block**>(reinterpret_cast<uintptr_t>(h->bin_slots) + offset);
}
HAKMEM_ALWAYS_INLINE Block* const* BinSlotAt(const Heap* h, BinOffset offset) {
  return reinterpret_cast<Block* const*>(reinterpret_cast<uintptr_t>(h->bin_slots) + offset);
}
// The byte offset of slot 0 of class `c`'s bin: in its row of bin_slots, or
// in its wide row.
// (A bin with no row yet, dormant: row 0's, which only its readers see,
// SlotInRow's 0.)
inline BinOffset BinRowOffset(const Heap* h, size_t c) {
  if (c < static_cast<size_t>(kFirstMidClass) && h->bin_wide[c]) {
    return reinterpret_cast<uintptr_t>(h->wide_rows + c * kWideBinSlots) -
           reinterpret_cast<uintptr_t>(h->bin_slots);
  }
  const uint32_t row = h->bin_row[c];
  return row != 0 ? BinSlotOffset(row - 1, 0) : 0;
}
// Gives class `c`'s bin the next row of bin_slots, if it has none (before
// its top or end is first written).
inline void AssignBinRow(Heap* h, size_t c) {
  if (HAKMEM_LIKELY(h->bin_row[c] != 0)) return;
  h->bin_row[c] = ++h->bin_rows_taken;
}
// Slot `n` of class `c`'s bin.
HAKMEM_ALWAYS_INLINE Block** BinSlot(Heap* h, size_t c, uint32_t n) {
  return BinSlotAt(h, BinRowOffset(h, c) + n * sizeof(Block*));
}
HAKMEM_ALWAYS_INLINE Block* const* BinSlot(const Heap* h, size_t c, uint32_t n) {
  return BinSlotAt(h, BinRowOffset(h, c) + n * sizeof(Block*));
}
// Slot number of byte offset `offset` (a bin's top or end) in class `c`'s
// row; 0 for an offset outside it (kEmptyHeap's, a dormant bin's). (A row
// never spans the wrap of a wide row's offsets.)
inline uint32_t SlotInRow(const Heap* h, size_t c, BinOffset offset) {
  const BinOffset from_row = offset - BinRowOffset(h, c);
  return from_row - 1 < kWideBinSlots * sizeof(Block*)
             ? static_cast<uint32_t>(from_row / sizeof(Block*))
             : 0;
}
// How many blocks class `c`'s bin holds, and may hold (0 for kEmptyHeap and
// dormant bins).
inline uint32_t BinCount(const Heap* h, size_t c) {
  return SlotInRow(h, c, __atomic_load_n(&h->bin_top[c], __ATOMIC_RELAXED));
}
inline uint32_t BinLimit(const Heap* h, size_t c) { return SlotInRow(h, c, h->bin_end[c]); }
// Release: a fork child that sees the new count sees the slots written
// before it.
inline void SetBinCount(Heap* h, size_t c, uint32_t n) {
  AssignBinRow(h, c);
  __atomic_store_n(&h->bin_top[c], BinRowOffset(h, c) + n * sizeof(Block*), __ATOMIC_RELEASE);
}
inline void SetBinLimit(Heap* h, size_t c, uint32_t limit) {
  AssignBinRow(h, c);
  h->bin_end[c] = BinRowOffset(h, c) + limit * sizeof(Block*);
}

extern __thread Heap* tl_heap __attribute__((tls_model("initial-exec"))) HAKMEM_HIDDEN;
// Process secret written into free blocks (Block::key); never 0.
extern uint64_t g_free_key HAKMEM_HIDDEN;
// Blocks on slabs' lists carry g_free_key. What a block freed by another
// thread carries while it waits for its owner (in a RemoteBatch or the
// owner's RemoteQueue): g_free_key with bit 1 flipped. The owner checks it
// when it drains, so a block that was also freed again in the meantime (its
// key overwritten) is caught there.
inline uint64_t RemoteFreeKey() { return g_free_key ^ 2; }
// What a block carries in the transfer cache (heap.cc): bit 2 flipped. A
// refill from the cache checks it, as the owner's drain checks the remote
// key.
inline uint64_t TransferKey() { return g_free_key ^ 4; }
// Heap number `id` (1, 2, ...)'s key: g_free_key with the id in bits 3-26;
// its bins' blocks carry it with their class too (BinKeyOf, below). A
// block freed twice into two threads' bins carries
// the key of the later free, so the other thread's pop finds a wrong key:
// of two copies, only one can ever be handed out, even if both threads pop
// at the same moment.
constexpr int kHeapKeyShift = 3;
constexpr uint64_t kHeapKeyBits = ((uint64_t{1} << 24) - 1) << kHeapKeyShift;
inline uint64_t HeapFreeKey(uint64_t id) {
  return g_free_key ^ ((id << kHeapKeyShift) & kHeapKeyBits);
}
// A big block (see kFirstBigClass) whose bytes past its first page read
// zero, pages not written since they were mapped or given back, carries
// its bin's key with this bit flipped (TakeFromSlabs): calloc then clears
// its first page only (TinyMallocTellingZeroTail). The bin's pops and
// flushes take either key.
constexpr uint64_t kZeroTailKeyBit = uint64_t{1} << 27;
static_assert((kZeroTailKeyBit & kHeapKeyBits) == 0, "a bit of its own");
// The zero-tail key of the bin whose key is `bin_key`.
constexpr uint64_t ZeroTailKey(uint64_t bin_key) { return bin_key ^ kZeroTailKeyBit; }
// A bin's key holds its class too (bits 28-34), stored per class: so a
// stale copy of a block freed twice, left in one class's bin while its slab
// went back and was carved again for another class by the same heap, does
// not match that heap's key when the address is freed again as a block of
// the other class: its pop or flush reports it instead of handing out a
// block over live ones (tests/FINDINGS.md F16). Stored per class
// (Heap::bin_words), not computed: a load instead of the heap's one key.
constexpr int kClassKeyShift = 28;
constexpr uint64_t kClassKeyBits = uint64_t{127} << kClassKeyShift;
static_assert(kNumClasses <= 128 && (kClassKeyBits & (kHeapKeyBits | kZeroTailKeyBit)) == 0,
              "the class fits bits of its own");
constexpr uint64_t BinKeyOf(uint64_t heap_key, size_t c) {
  return heap_key ^ (static_cast<uint64_t>(c) << kClassKeyShift);
}
// What class `c`'s bin of heap `h` keys its blocks with (its bin_words[c]
// decoded).
inline uint64_t BinKey(const Heap* h, size_t c) { return BinKeyOf(h->free_key, c); }
// The bits in which the keys above differ from g_free_key: the flags, the
// heap id, the zero-tail bit and the class.
constexpr uint64_t kKeyVaryingBits = kHeapKeyBits | kZeroTailKeyBit | kClassKeyBits | 7;
// Whether `bits`, a key XOR g_free_key within kKeyVaryingBits, is a key the
// allocator writes: 0, 2 or 4 (list, remote, transfer), or the bin key,
// either variant, of a heap made so far.
bool KeyBitsMarkFree(uint64_t bits);
// The high-bit compare alone: false for every live block but about one in
// 2^36 (random data). For fast paths that send a true to a slow path which
// asks KeyMarksFree: no call here, so they keep no stack frame (realloc of
// a block that still fits: KeyMarksFree inline took it 1.90 -> 2.14 ns).
inline bool KeyMayMarkFree(uint64_t key) {
  return ((key ^ g_free_key) & ~kKeyVaryingBits) == 0;
}
// True if `key` is any of the keys above: a list's, the remote or the
// transfer key, a bin's (either) of a heap made so far. Exactly those: a
// live block's second word is the program's, and some hold random bits
// (hashes, ids): had any value with the secret's top 36 bits counted as
// free, one free, realloc or malloc_usable_size in 2^36 of such a block
// would have reported a double free that never was; now one in about
// 2^63 / (heaps made) does.
inline bool KeyMarksFree(uint64_t key) {
  return HAKMEM_UNLIKELY(KeyMayMarkFree(key)) && KeyBitsMarkFree(key ^ g_free_key);
}

// The fast path's mallocs between two upkeeps at most (see
// Heap::mallocs_to_upkeep): a slow path per 1K mallocs, the upkeep itself
// time-gated (100 ms). (16K at first: a program that mallocs 1,000 times a
// second after a peak kept 282 MB for 17 s, and at 100 a second for 164 s;
// now 1-2 s, for 0.14 instructions a malloc under callgrind; a review.)
constexpr int64_t kMallocsBetweenUpkeeps = 1024;
// Counts a malloc served from a bin (a real heap's: after the bin's
// sentinel); true if the upkeep is due, for the slow path to run it.
HAKMEM_ALWAYS_INLINE bool UpkeepDueAtThisMalloc(Heap* h) { return --h->mallocs_to_upkeep < 0; }

// Called by TinyUpkeep with its clock reading, for caches above this layer
// (the router's large-block cache): their time-gated limits (decay, TTL)
// then apply while the program makes only small allocations.
using UpkeepHook = void (*)(uint64_t now);
void TinySetUpkeepHook(UpkeepHook hook);

// ---- Slow paths (heap.cc), never inlined -----------------------------------
// malloc of class `size_class` when its bin is empty, or an upkeep is due
// (Heap::mallocs_to_upkeep). Sets errno to ENOMEM
// and returns nullptr when out of memory. (size_t, the type SizeToClass
// gives: as an int, malloc's fast path zero-extended the class again.)
HAKMEM_NOINLINE void* TinyMallocSlow(size_t size_class);
// malloc of class `size_class` for calloc: `*tail_zero` says whether the
// block's bytes past its first page already read zero (a big block, see
// kZeroTailKeyBit). For big classes, where that saves clearing (and
// touching) up to 252 KiB.
HAKMEM_NOINLINE void* TinyMallocTellingZeroTail(int size_class, bool* tail_zero);
// free() of a slab block that the fast path did not take: a full bin, a
// block that looks free (double free?), an interior pointer, a block of a
// free slab, a thread without a heap. Reports misuse and aborts; otherwise
// frees.
HAKMEM_NOINLINE void TinyFreeSlow(void* p);
// malloc found a block without the free key (in a bin or on a slab's list):
// it was freed twice, or the heap was overwritten. Reports and aborts.
[[noreturn]] HAKMEM_NOINLINE void ReportCorruptFreeList(const void* block);
// PopFromBin found another key than the bin's on `b` (`bin_word`, its key
// as stored): returns `b` (its key cleared) if it is the bin's zero-tail
// key, else reports and aborts. (The word as the pop loaded it, not the heap
// and class: malloc's fast path then moved the class into an argument
// register before its pop, one instruction.)
__attribute__((returns_nonnull)) HAKMEM_NOINLINE Block* PopZeroTailBlock(Block* b,
                                                                        uint64_t bin_word);

// The bin operations the fast paths and slow paths share. Their stores are
// ordered (release: plain stores on x86) so that a fork child never finds a
// block in a bin without its key.
// Pops `b`, the block in the top slot `top` of class `c`'s bin, for malloc.
// With `kBelowBigClasses` (c < kFirstBigClass: no zero-tail keys), any other
// key is reported at once: a caller that needs its registers after the pop
// (calloc's clear) then keeps no stack frame for the out-of-line check.
template <bool kBelowBigClasses = false>
HAKMEM_ALWAYS_INLINE Block* PopFromBin(Heap* h, size_t c, BinOffset top, Block* b) {
  h->bin_top[c] = top - sizeof(Block*);
  const uint64_t bin_word = h->bin_words[c];
  if (HAKMEM_UNLIKELY(KeyWord(b) != bin_word)) {
    if (kBelowBigClasses) ReportCorruptFreeList(b);
    return PopZeroTailBlock(b, bin_word);
  }
  __atomic_store_n(&b->key, 0, __ATOMIC_RELEASE);  // after the top
  return b;
}
// Pushes free block `b` on class `c`'s bin, whose top slot is `top` (below
// the bin's end).
HAKMEM_ALWAYS_INLINE void PushOnBin(Heap* h, size_t c, BinOffset top, Block* b) {
  const BinOffset new_top = top + sizeof(Block*);
  SetKeyWord(b, h->bin_words[c]);
  *BinSlotAt(h, new_top) = b;
  __atomic_store_n(&h->bin_top[c], new_top, __ATOMIC_RELEASE);  // after both
}
// dst[0..m-1] = src[m-1..0], for a refill's blocks going into a bin (the
// first to be handed out on top): two pointers per 16-byte move. (GCC 12
// does not vectorize a reversed copy; as a loop of single moves it took a
// 64 B build's mallocs 12.6 -> 10.1 ns, 16 B 5.7 -> 5.2, 11 interleaved
// rounds.)
inline void CopyBlocksReversed(Block** dst, Block* const* src, uint32_t m) {
  typedef uint64_t TwoPointers __attribute__((vector_size(16)));
  static_assert(sizeof(Block*) == sizeof(uint64_t), "64-bit pointers");
  uint32_t j = 0;
  for (; j + 2 <= m; j += 2) {
    TwoPointers v;
    __builtin_memcpy(&v, src + m - 2 - j, sizeof(v));
    v = __builtin_shufflevector(v, v, 1, 0);
    __builtin_memcpy(dst + j, &v, sizeof(v));
  }
  if (j < m) dst[j] = src[m - 1 - j];
}

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
// applies the SuperSlab cache's TTL, reclaims exited threads' memory, empties
// the calling thread's bins and returns its empty current slabs. Time-gated
// (one coarse clock read when there is nothing to do): called on every slow
// path, small or large. `now`: a clock read the caller just made.
void TinyUpkeep(uint64_t now);
inline void TinyUpkeep() { TinyUpkeep(platform::NowNs()); }
// The above at once, plus all of the calling thread's idle memory: its bins,
// pending remote frees, empty current slabs (for Trim()).
void TinyTrim();
void TinyLockForFork();
void TinyUnlockAfterFork(bool in_child);

// Blocks of class `size_class` waiting in the transfer cache (for tests).
uint32_t TinyTransferCachedBlocks(int size_class);
// How many flushes in a row of the calling thread's bin of `size_class`
// found an owner behind, or went to the cache whole once engaged (the gate
// is open from kTransferEngageFlushes on; for tests).
uint32_t TinyTransferBehindFlushes(int size_class);
// For tests: the census of running heaps (see heap.cc) at once; returns
// how many heaps ran a slow path since the last one. The CPU count it
// compares with (0: as found at start-up; otherwise the census runs only
// when a test asks). Whether the transfer cache may engage, and big bins
// that send blocks to other heaps stay ungrown (see BigBinsMayGrow): -1 as
// the census says, 0 never, 1 always.
uint32_t TinyRunCensusForTesting();
void TinySetCpusForTesting(uint32_t cpus);
void TinySetTransferModeForTesting(int mode);
// For tests: from how many active heaps (threads with a heap) on a heap's
// first blocks of a class come from the orphan heap (see StartsShared in
// heap.cc); 0: the default. And how many heaps are active now.
void TinySetSharedStartHeapsForTesting(uint32_t heaps);
uint32_t TinyActiveHeaps();
// Whether the last census found more running heaps than CPUs.
bool TinyOversubscribed();
// The CPUs this process may run on, as the census counted them (0 until a
// census found two heaps running, or if counting failed). For tests.
uint32_t TinyCountedCpus();
// Bytes all heaps' small bins have grown by (kAllHeapsSmallBinGrowthBudget;
// for tests).
uint64_t TinySmallBinsGrown();

// (Every member initialized: a static TinyStats is then zero in .bss, not
// cleared by code at load, which would fault its page in at start-up.)
struct TinyStats {
  uint64_t heaps_created = 0;
  uint64_t heaps_pooled = 0;  // abandoned, waiting for a new thread
  uint64_t heaps_leaked_by_fork = 0;  // HeapState::kLeaked
  uint64_t heaps_of_dead_threads = 0;  // pooled by PoolHeapsOfDeadThreads
  uint64_t slabs_in_use[kNumClasses] = {};
  // Handed out, or free in another running thread's bin (those are not
  // read: the stats must not race with other threads' fast paths).
  uint64_t blocks_in_use[kNumClasses] = {};
  HeapCounters counters;  // summed over every heap ever made
};
void GetTinyStats(TinyStats* stats);

}  // namespace hakmem

#endif  // HAKMEM_TINY_HEAP_H_
