// LRU cache of empty regions (Phase 9 "lazy deallocation").
//
// An empty SuperSlab (or a freed large block) is parked here instead of being
// unmapped, so a steady workload makes no mmap/munmap. Regions stay
// registered while cached. Least recently used regions are evicted
// (unregistered, then unmapped) when the count, the memory or the age limit is
// exceeded. Limits are read on every operation, so runtime setters apply at
// once.
#ifndef HAKMEM_REGISTRY_REGION_CACHE_H_
#define HAKMEM_REGISTRY_REGION_CACHE_H_

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "hakmem/registry/region.h"

namespace hakmem {

struct RegionCacheLimits {
  uint64_t max_count;
  uint64_t max_bytes;
  uint64_t ttl_ns;
  // Cached regions beyond this many bytes keep their mapping but give their
  // pages back (madvise), so an idle program does not stay large.
  uint64_t max_resident_bytes;
};

struct RegionCacheStats {
  uint64_t cached;      // regions in the cache now
  uint64_t cached_bytes;
  uint64_t resident_bytes;  // of those, not given back
  uint64_t hits;        // Take() served from the cache
  uint64_t misses;      // Take() found nothing
  uint64_t evicted;     // regions unmapped by an eviction rule or a trim
};

class RegionCache {
 public:
  using LimitsFn = RegionCacheLimits (*)();
  // How an evicted region is destroyed (unregister + unmap by default).
  using ReleaseFn = void (*)(RegionHeader* region);

  constexpr RegionCache(LimitsFn limits, ReleaseFn release)
      : limits_(limits), release_(release) {}

  // Most recently cached region whose mapped size is in [min_size, max_size],
  // or nullptr. Bumps its generation.
  RegionHeader* Take(size_t min_size, size_t max_size);
  // Parks `region` (registered, mapped, empty), then applies the limits.
  void Put(RegionHeader* region);
  // Applies the limits now (TTL included).
  void EnforceLimits();
  // Applies them if the last check is more than kCheckIntervalNs old: cheap
  // enough (one coarse clock read) for every allocation slow path, so the
  // TTL holds for a program that no longer maps or frees regions.
  void MaybeEnforceLimits();
  static constexpr uint64_t kCheckIntervalNs = 100 * 1000 * 1000;
  // Unmaps every cached region. Returns only once every region that any
  // concurrent ReleaseAll() took is unmapped too: a caller that retries a
  // failed mmap afterwards sees all of that address space free.
  void ReleaseAll();
  RegionCacheStats GetStats();

  void LockForFork() {
    pthread_mutex_lock(&release_all_lock_);
    pthread_mutex_lock(&lock_);
  }
  void UnlockAfterFork() {
    pthread_mutex_unlock(&lock_);
    pthread_mutex_unlock(&release_all_lock_);
  }
  void ResetLockInChild() {
    pthread_mutex_init(&lock_, nullptr);
    pthread_mutex_init(&release_all_lock_, nullptr);
  }

 private:
  void Unlink(RegionHeader* region);
  // Moves regions that break the limits onto `*evicted`. Lock held.
  void CollectEvictions(const RegionCacheLimits& limits, uint64_t now,
                        bool everything, RegionHeader** evicted);
  void ReleaseList(RegionHeader* list);

  LimitsFn limits_;
  ReleaseFn release_;
  pthread_mutex_t lock_ = PTHREAD_MUTEX_INITIALIZER;
  pthread_mutex_t release_all_lock_ = PTHREAD_MUTEX_INITIALIZER;  // see ReleaseAll
  RegionHeader* mru_ = nullptr;  // most recently used end
  RegionHeader* lru_ = nullptr;  // least recently used end
  uint64_t count_ = 0;
  uint64_t bytes_ = 0;
  uint64_t resident_ = 0;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
  uint64_t evicted_ = 0;
  uint64_t next_check_ns_ = 0;  // atomic access
};

// Unregisters and unmaps a region: the default ReleaseFn.
void UnregisterAndUnmap(RegionHeader* region);

// Gives a region's pages back to the kernel, all but its header page.
void DiscardRegionPages(RegionHeader* region);

}  // namespace hakmem

#endif  // HAKMEM_REGISTRY_REGION_CACHE_H_
