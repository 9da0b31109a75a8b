// LRU cache of empty regions (Phase 9 "lazy deallocation").
//
// An empty SuperSlab (or a freed large block) is parked here instead of being
// unmapped, so a steady workload makes no mmap/munmap. Regions stay
// registered while cached. Least recently used regions are evicted
// (unregistered, then unmapped) when the count, the memory or the age limit is
// exceeded, or (adaptive sizing) when the cache holds more than the program's
// recent demand: more regions than it took from the cache (hits and misses)
// in any two consecutive seconds of the last few (a burst across the end of
// a second counts whole), plus a small floor. A one-off spike is
// then given back within that window instead of the TTL, while a program that
// churns keeps what its churn needs. Beyond a resident budget, cached regions
// give their pages back (the mapping stays), the oldest first, once they have
// been cached for the decay time. Limits are read on every operation, so
// runtime setters apply at once.
#ifndef HAKMEM_REGISTRY_REGION_CACHE_H_
#define HAKMEM_REGISTRY_REGION_CACHE_H_

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "hakmem/platform.h"
#include "hakmem/registry/region.h"

namespace hakmem {

struct RegionCacheLimits {
  uint64_t max_count;
  uint64_t max_bytes;
  uint64_t ttl_ns;
  // Cached regions beyond this many bytes keep their mapping but give their
  // pages back (madvise), so an idle program does not stay large.
  uint64_t max_resident_bytes;
  // Seconds of demand history for adaptive sizing (0: off), at most
  // RegionCache::kMaxDemandSeconds.
  uint64_t demand_window_sec;
  // How long a region beyond the resident budget keeps its pages: 0 gives
  // them back as it is cached; otherwise the oldest go once they have been
  // cached this long, on a later call (a program that frees and rebuilds a
  // big structure within that time does not fault its pages in again).
  uint64_t decay_ns;
};

struct RegionCacheStats {
  uint64_t cached;      // regions in the cache now
  uint64_t cached_bytes;
  uint64_t resident_bytes;  // of those, not given back
  uint64_t hits;        // Take() served from the cache
  uint64_t misses;      // Take() found nothing
  uint64_t evicted;     // regions unmapped by an eviction rule or a trim
};

// Give-backs of a cache's resident pages for another layer (see
// RegionCache::GiveBackForAnotherLayer), and the program's regrets of them:
// when the last one was made (0: none since the last regret), until when
// none is, and how long the next regret keeps them off. Under its owner's
// lock.
class CrossGiveBacks {
 public:
  // Whether a give-back may be made at `now`; if so, notes it. A take of
  // its pages within `regret_ns` (at least the decay) is a regret.
  bool MayGiveBack(uint64_t now, uint64_t decay_ns, uint64_t regret_ns = 0);
  // A take at `now` of pages given back: a regret if a give-back came
  // within its regret time (the decay, `decay_ns`, unless it said more).
  void NoteTakeOfGivenBack(uint64_t now, uint64_t decay_ns);
  // Nothing is left to regret (a trim, memory running out).
  void Forget() { last_ns_ = quiet_until_ns_ = quiet_ns_ = 0; }

  static constexpr uint64_t kFirstQuietDecays = 16;
  static constexpr uint64_t kMaxQuietDecays = 64;

 private:
  uint64_t last_ns_ = 0;
  uint64_t regret_ns_ = 0;
  uint64_t quiet_until_ns_ = 0;
  uint64_t quiet_ns_ = 0;
};

class RegionCache {
 public:
  using LimitsFn = RegionCacheLimits (*)();
  // How an evicted region is destroyed (unregister + unmap by default).
  using ReleaseFn = void (*)(RegionHeader* region);

  constexpr RegionCache(LimitsFn limits, ReleaseFn release)
      : limits_(limits), release_(release) {}

  // Most recently cached region whose mapped size is in [min_size, max_size],
  // or nullptr; of those, one of `shape` (if not 0) that kept its pages
  // first. Bumps its generation. `*reads_zero` (if given): whether its
  // pages were given back while cached, so that all but its header page
  // read zero.
  RegionHeader* Take(size_t min_size, size_t max_size, bool* reads_zero = nullptr,
                     uint16_t shape = 0);
  // The same among regions that kept their pages (and that `accepts`, if
  // given, says yes to, given `accept_arg`), or nullptr; a miss is not
  // counted (the caller falls back on Take or a mapping). For a block that
  // grows: copying it into resident memory costs less than faulting fresh
  // pages in.
  using AcceptFn = bool (*)(const RegionHeader* region, size_t arg);
  RegionHeader* TakeResident(size_t min_size, size_t max_size, AcceptFn accepts = nullptr,
                             size_t accept_arg = 0);
  // Takes back the count of a take (a hit or a miss): a caller whose miss
  // another take then served, or who put a taken region back, made one
  // take, not two.
  void UncountTake(bool hit);
  // Whether a region with a mapped size in [min_size, max_size] is cached
  // (its pages kept or not).
  bool Holds(size_t min_size, size_t max_size);
  // Whether the cache's resident bytes plus `bytes` stay within its
  // resident budget.
  bool ResidentBudgetHasRoomFor(uint64_t bytes);
  // Parks `region` (registered, mapped, empty), then applies the limits.
  // `freed_since_ns`, if earlier than now: the program stopped using the
  // region's memory then, though the allocator learned it only now; the
  // TTL and the decay count from then (0: from now).
  // `give_back_now`: its pages go back at once (the caller knows they will
  // not be reused soon), its mapping stays cached.
  void Put(RegionHeader* region, uint64_t freed_since_ns = 0, bool give_back_now = false);
  // Undoes a take of `region`, unused since: cached again as old as it was,
  // the windows it had moved out still read zero (windows_moved_out), and
  // the take uncounted (a hit).
  void PutBack(RegionHeader* region);
  // Counts `regions` as taken now, for adaptive sizing: regions mapped ahead
  // of use (pre-warming) are demand the program has not made yet.
  void NoteDemand(uint64_t regions);
  // Applies the limits now (TTL and decay included).
  void EnforceLimits();
  // Gives back the pages of the oldest cached regions beyond the resident
  // budget now, however recently they were cached.
  void ApplyResidentBudgetNow();
  // For another cache (the other layer's) about to fault pages in: gives
  // back the pages of the oldest regions beyond the resident budget now, as
  // the decay would later (the two layers' peaks then do not add up: many
  // small objects freed, then large blocks, tests/FINDINGS.md F44, F45).
  // Not while this cache regrets one lately: a take that found pages given
  // back within the decay time after one (the program came back for them:
  // phases that alternate every few milliseconds faulted every page in
  // again, 1.4-3.5x the time, a review). The first regret stops them for
  // kFirstCrossQuietDecays decay times, each later one for twice as long,
  // up to kMaxCrossQuietDecays; each give-back that goes unregretted halves
  // it. (From one decay time, phases of 100-500 ms in turn still refaulted
  // 200-290 MB at 0, 1.2 and 3.4 s: +24-45% CPU time for 0-8% less peak, a
  // helper's hunt.)
  // `all`: every cached region's pages, not only those beyond the budget;
  // a take of them within kFirstCrossQuietDecays decay times is a regret
  // (a buffer reused every 1.5 s, small blocks growing between: refaulted
  // at every reuse with the decay alone, 4-6x its time; a review).
  // `when_quiet_bytes`: while regrets stop them, about that many of the
  // pages beyond the budget are given back all the same, no regret
  // counted: for another layer that faults that many in while pages move
  // between the layers (platform::MovePages), which brings back what it
  // frees here by a move; the total stays level.
  void GiveBackForAnotherLayer(bool all = false, uint64_t when_quiet_bytes = 0);
  // For another layer about to fault in kMoveSpanBytes of fresh pages at
  // each of to[0..count), while the cache keeps more than its resident
  // budget: cached regions with resident pages (of a shape, or among the
  // kMoveLookAhead longest cached) move their pages (past the header page)
  // there (platform::MovePages), a span at a time from the front. A region
  // stays cached with the rest of its pages; once less than a span is
  // left, that goes back too (madvise) and the region reads zero, as one
  // given back. No regret counts: the other layer faults none in, and what
  // it frees comes back by a move as well. Returns how many of `to` got
  // pages, in order. `windows_with_pages` (if given) says how many of a
  // region's windows, from its front, hold pages at all (a region the
  // program touched only in part): no more of them move, and the rest of
  // the region goes back with them. `min_age_ns`: only regions cached for
  // at least that long.
  using WindowsFn = uint32_t (*)(const RegionHeader* region);
  int MoveCachedPages(char* const* to, int count, WindowsFn windows_with_pages = nullptr,
                      uint64_t min_age_ns = 0);
  static constexpr int kMoveLookAhead = 64;
  static constexpr uint64_t kFirstCrossQuietDecays = CrossGiveBacks::kFirstQuietDecays;
  uint64_t ResidentBytes() const { return __atomic_load_n(&resident_, __ATOMIC_RELAXED); }
  // Applies them if the last check is more than kCheckIntervalNs old: cheap
  // enough (one coarse clock read) for every allocation slow path, so the
  // TTL holds for a program that no longer maps or frees regions. `now`:
  // the caller's clock reading, if it has one.
  void MaybeEnforceLimits() { MaybeEnforceLimits(platform::NowNs()); }
  void MaybeEnforceLimits(uint64_t now);
  static constexpr uint64_t kCheckIntervalNs = 100 * 1000 * 1000;
  // Takes in a row that found nothing, after which the resident budget
  // applies without the decay (see Take).
  static constexpr uint32_t kMissesThatSkipTheDecay = 4;
  // A miss for at least this many bytes does so at once: the caller is
  // about to fault that much in, which costs more than giving the oldest
  // cached pages back (see Take).
  static constexpr uint64_t kBigMissBytes = uint64_t{8} << 20;
  // Shapes with a list of their own (the others are only on the LRU list),
  // and how many of a shape's listed regions a take looks at for one of the
  // size asked for.
  static constexpr uint32_t kShapes = kRegionShapes;
  static constexpr int kShapeLookAhead = 8;
  static constexpr int kMaxDemandSeconds = 64;
  // Regions adaptive sizing always lets the cache keep.
  static constexpr uint64_t kDemandFloor = 2;
  // How many regions adaptive sizing lets the cache keep now (UINT64_MAX
  // when it is off), for tests and stats.
  uint64_t DemandTarget();
  // Unmaps every cached region (and forgets regretted give-backs). Returns
  // only once every region that any concurrent ReleaseAll() took is
  // unmapped too: a caller that retries a failed mmap afterwards sees all
  // of that address space free.
  void ReleaseAll();
  RegionCacheStats GetStats();

  void LockForFork() {
    platform::LockMutex(&release_all_lock_);
    platform::LockMutex(&lock_);
  }
  void UnlockAfterFork() {
    platform::UnlockMutex(&lock_);
    platform::UnlockMutex(&release_all_lock_);
  }
  void ResetLockInChild() {
    pthread_mutex_init(&lock_, nullptr);
    pthread_mutex_init(&release_all_lock_, nullptr);
  }

 private:
  // Most recently cached region with a mapped size in [min_size, max_size]
  // (and its pages kept, if `resident_only`), or nullptr; see Take for
  // `shape`.
  RegionHeader* FindLocked(size_t min_size, size_t max_size, bool resident_only,
                           uint16_t shape = 0, AcceptFn accepts = nullptr,
                           size_t accept_arg = 0);
  // Counts a take (hit or miss) for adaptive sizing.
  void CountTakeLocked();
  // Takes `found` out of the cache, counting a hit.
  void ClaimLocked(RegionHeader* found);
  // Whether `region`, while cached, is on its shape's list: resident ones
  // of the shapes that have one.
  static bool OnShapeList(const RegionHeader* region);
  void Unlink(RegionHeader* region);
  // Links `region` between `newer` and `older` (either may be null: an end).
  void Link(RegionHeader* region, RegionHeader* newer, RegionHeader* older);
  // Caches `to_cache` (if not null) as of `cached_at` (<= now: at the MRU
  // end if it is now, else where its age puts it), then applies the limits:
  // evictions (unmapped outside the lock), then the decay.
  void ApplyLimits(const RegionCacheLimits& limits, uint64_t now,
                   RegionHeader* to_cache, uint64_t cached_at);
  // Links `region` where its last_used_ns puts it in the age order.
  void LinkByAge(RegionHeader* region);
  // Gives back the pages of the oldest resident regions cached for at least
  // the decay time while the resident bytes exceed the budget. They leave
  // the list meanwhile, so no Take or eviction sees them. `release_kept`
  // (the timed decay, not a give-back now): regions whose pages the kernel
  // refused to take (locked), cached for the decay time, are released.
  // (`most_bytes`: of regions' pages given back, no more. Returns the bytes
  // of those given back.)
  uint64_t DiscardDecayed(const RegionCacheLimits& limits, uint64_t now, bool release_kept,
                          uint64_t most_bytes = UINT64_MAX);
  // Moves regions that break the limits onto `*evicted`. Lock held.
  void CollectEvictions(const RegionCacheLimits& limits, uint64_t now,
                        bool everything, RegionHeader** evicted);
  // Closes the seconds that ended by `now` in the demand history. Lock held.
  void AdvanceDemand(uint64_t now);
  // Most regions taken in two consecutive seconds of the last `seconds`
  // (the current one included). Lock held.
  uint64_t RecentDemand(uint64_t seconds) const;
  void ReleaseList(RegionHeader* list);
  // Put's caching of `region`, whose windows_moved_out is as it should be.
  void Park(RegionHeader* region, uint64_t freed_since_ns, bool give_back_now);
  // MoveCachedPages from one region: how many of `to` got its pages.
  int MoveOneRegionsPages(char* const* to, int count, WindowsFn windows_with_pages,
                          uint64_t cached_by_ns);

  LimitsFn limits_;
  ReleaseFn release_;
  pthread_mutex_t lock_ = PTHREAD_MUTEX_INITIALIZER;
  // Held while regions are off the list being released or discarded: see
  // ReleaseAll and DiscardDecayed.
  pthread_mutex_t release_all_lock_ = PTHREAD_MUTEX_INITIALIZER;
  RegionHeader* mru_ = nullptr;  // most recently used end
  RegionHeader* lru_ = nullptr;  // least recently used end
  // Per shape, its cached regions that kept their pages, most recently
  // linked first.
  RegionHeader* shape_head_[kShapes] = {};
  uint64_t count_ = 0;
  uint64_t bytes_ = 0;
  uint64_t resident_ = 0;
  uint64_t kept_ = 0;  // regions cached with kPagesKept
  // Bytes asked of GiveBackForAnotherLayer while quiet, not given back yet
  // (less than a region), at most the resident budget and a region.
  uint64_t quiet_credit_ = 0;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
  // Takes in a row that found nothing (see Take).
  uint32_t misses_in_a_row_ = 0;
  CrossGiveBacks cross_;  // give-backs for another layer
  uint64_t evicted_ = 0;
  uint64_t next_check_ns_ = 0;  // atomic access
  // Demand history: regions taken per second, a ring ending at demand_pos_.
  uint32_t demand_[kMaxDemandSeconds] = {};
  uint32_t demand_pos_ = 0;
  uint32_t demand_now_ = 0;      // taken in the second under way
  uint64_t second_end_ns_ = 0;   // when that second ends (0: not started)
};

// Unregisters and unmaps a region: the default ReleaseFn.
void UnregisterAndUnmap(RegionHeader* region);

// Gives a region's pages back to the kernel, all but its header page.
// False if the kernel refused (see platform::DiscardPages).
bool DiscardRegionPages(RegionHeader* region);

}  // namespace hakmem

#endif  // HAKMEM_REGISTRY_REGION_CACHE_H_
