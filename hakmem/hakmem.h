// hakmem's public, non-override API.
//
// Usable beside glibc's malloc in one process: memory from hakmem::Malloc
// must go back through hakmem::Free (and likewise for the other calls). The
// override variant (//hakmem:malloc, libhakmem.so) maps malloc/free/new/
// delete onto these functions.
//
// Misuse is reported on stderr with the pointer and then aborts, like glibc:
// a pointer hakmem never returned, an interior pointer, a double free, a
// sized delete whose size does not fit the block. Out of memory returns
// nullptr with errno = ENOMEM.
#ifndef HAKMEM_HAKMEM_H_
#define HAKMEM_HAKMEM_H_

#include <stddef.h>
#include <stdint.h>

namespace hakmem {

void* Malloc(size_t size);
void Free(void* p);
// Sized free: `size` must be what was asked for (any size within the block's
// size class is accepted); a size that does not fit is reported.
void FreeSized(void* p, size_t size);
void* Calloc(size_t count, size_t size);
void* Realloc(void* p, size_t size);
void* ReallocArray(void* p, size_t count, size_t size);
// `alignment` must be a power of two (any, up to 1 MiB); else nullptr/EINVAL.
void* AlignedAlloc(size_t alignment, size_t size);
// posix_memalign semantics: EINVAL unless alignment is a power of two and a
// multiple of sizeof(void*); ENOMEM when out of memory.
int PosixMemalign(void** out, size_t alignment, size_t size);
size_t UsableSize(const void* p);
// Gives cached memory back to the kernel now (SuperSlab and large caches).
// True if it gave any back (as malloc_trim's 1; counted by the unmaps and
// page discards made meanwhile, any thread's).
bool Trim();
// mlockall and munlockall (the override build's): before a lock of the
// current mappings (MCL_CURRENT), the caches' idle mappings and the extent
// heap's free extents are unmapped (mapped again at munlockall), so that
// the lock takes no whole chunk of address space ahead of the program's
// blocks (one 1 MiB block locked a 1 GiB chunk: now 19 MB; glibc 3.5, as
// hakmem's in-use SuperSlabs, locked whole, and its own tables count);
// while future mappings are locked (MCL_FUTURE), nothing is mapped ahead
// (see platform::MappingsScarce). Return and errno as the system calls'.
int LockAllMemory(int flags);
// mlock and mlock2 (interposed in the override build): page moves off for
// good first (platform::TurnPageMovesOff), then the kernel's call.
int LockMemory(const void* addr, size_t len);
int LockMemory2(const void* addr, size_t len, unsigned int flags);
int UnlockAllMemory();

constexpr int kStatsClasses = 65;

struct Stats {
  // Kernel calls made by hakmem since start.
  uint64_t mmap_calls;
  uint64_t munmap_calls;
  uint64_t madvise_calls;
  uint64_t mremap_calls;
  // SuperSlabs.
  uint64_t superslabs_mapped;      // in use or cached
  uint64_t superslabs_cached;
  uint64_t superslabs_evicted;     // by the cache's limits or a trim
  uint64_t superslabs_retained;    // evicted, address space kept, pages given back
  uint64_t superslab_cache_hits;
  uint64_t superslab_cache_misses;
  // Large blocks.
  uint64_t large_live;
  uint64_t large_cached;
  uint64_t large_cache_hits;
  uint64_t large_cache_misses;
  uint64_t large_evicted;
  // Threads.
  uint64_t heaps_created;
  uint64_t heaps_pooled;
  uint64_t heaps_leaked_by_fork;  // in a fork child: heaps of threads that did not survive it
  // Heaps attached in a thread's last TLS destructor round, pooled once it died.
  uint64_t heaps_of_dead_threads;
  // Per size class (see hakmem/tiny/size_class.h).
  uint32_t class_size[kStatsClasses];
  uint64_t class_slabs[kStatsClasses];
  // Handed out, plus blocks cached free in the bins of other running
  // threads (the calling thread's bins are not counted).
  uint64_t class_blocks_in_use[kStatsClasses];
  // Mapped by the live large blocks (appended: the layout above is kept).
  uint64_t large_live_bytes;
  // Where small blocks travel between thread heaps (slow paths, summed over
  // every heap since start; see HeapCounters in hakmem/tiny/heap.h).
  uint64_t bin_refills;                // empty bins refilled
  uint64_t bin_overflow_flushes;       // full bins flushed
  uint64_t blocks_sent_to_owners;      // other threads' blocks queued for them
  uint64_t blocks_drained;             // taken off heaps' queues by their owners
                                       // (also those of threads without a heap)
  uint64_t transfer_batches_pushed;    // into the transfer cache
  uint64_t transfer_batches_taken;     // out of it, by refills
  uint64_t transfer_blocks_sent_home;  // aged there, or refused by a full cache
  uint64_t large_cached_resident_bytes;  // cached large blocks' pages not given back
  // The extent heap (large blocks up to 16 MiB; its live blocks are counted
  // in large_live and large_live_bytes too).
  uint64_t extent_chunks;        // 1 GiB chunks mapped
  uint64_t extent_free_bytes;    // free extents in them
  uint64_t extent_dirty_bytes;   // of those, pages perhaps resident (freed, not given back since)
  uint64_t extent_purged_bytes;  // given back so far
  // Free pages moved (platform::MovePages) between the layers, bytes: from
  // the extent heap's free windows, cached SuperSlabs and cached large
  // regions, into new blocks' or SuperSlabs' windows that would fault.
  uint64_t pages_moved_to_superslabs;      // free extent pages, to SuperSlabs
  uint64_t extent_pages_moved_to_regions;  // free extent pages, to large regions
  uint64_t pages_moved_within_extents;     // free extent pages, to new extent blocks
  uint64_t pages_moved_to_large_blocks;    // cached SuperSlabs' pages, to extent blocks
  uint64_t superslab_pages_moved_to_regions;  // cached SuperSlabs' pages, to large regions
  uint64_t region_pages_moved_to_extents;  // cached large regions' pages, to extent blocks
  uint64_t region_pages_moved_to_superslabs;  // cached large regions' pages, to SuperSlabs
  // Small blocks a thread heap took from the shared (orphan) heap, its
  // first of a class while many threads ran (see StartsShared in
  // hakmem/tiny/heap.cc).
  uint64_t shared_start_blocks;
};

void GetStats(Stats* stats);

// Totals in the terms of glibc's mallinfo2 (libc_override.cc exports
// mallinfo, mallinfo2 and malloc_info from them). Bytes.
struct MallocTotals {
  uint64_t small_mapped;     // SuperSlabs mapped, in use or cached ("arena")
  uint64_t small_in_use;     // blocks of up to 256 KiB handed out ("uordblks")
  uint64_t free_regions;     // SuperSlabs and large regions cached ("ordblks")
  uint64_t large_blocks;     // live blocks over 256 KiB ("hblks")
  uint64_t large_mapped;     // their mappings ("hblkhd")
};
// Reads every slab record (no lock on the fast paths; in-use counts of
// other threads' bins included, as in GetStats).
MallocTotals GetMallocTotals();
// Prints the statistics on stderr without allocating (HAKMEM_STATS=1 does
// this at exit).
void PrintStats();

// Runtime setters for the HAKMEM_* knobs (see hakmem/config.h). Return false
// and change nothing when the value is out of range.
bool SetSuperslabMaxCached(uint64_t count);
bool SetSuperslabMaxMemoryMb(uint64_t mib);
bool SetSuperslabTtlSec(uint64_t seconds);
bool SetSuperslabResidentMb(uint64_t mib);
bool SetSuperslabDecayMs(uint64_t ms);
bool SetLargeCacheMaxMb(uint64_t mib);
bool SetSuperslabRetainMb(uint64_t mib);

}  // namespace hakmem

#endif  // HAKMEM_HAKMEM_H_
