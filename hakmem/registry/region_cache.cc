#include "hakmem/registry/region_cache.h"

#include <algorithm>

#include "hakmem/platform.h"
#include "hakmem/registry/registry.h"

namespace hakmem {

void UnregisterAndUnmap(RegionHeader* region) {
  const size_t size = region->mapped_size;
  const uintptr_t base = reinterpret_cast<uintptr_t>(region);
  region->magic = 0;
  registry::Unregister(base, size);
  platform::Unmap(region, size);
}

bool DiscardRegionPages(RegionHeader* region) {
  char* base = reinterpret_cast<char*>(region);
  return platform::DiscardPages(base + platform::kPageSize,
                                region->mapped_size - platform::kPageSize);
}

namespace {
// A cached region's resident bytes, as the cache counts them.
size_t ResidentBytesOf(const RegionHeader* region) {
  if (region->discarded) return 0;
  return region->mapped_size - size_t{region->windows_moved_out} * kMoveSpanBytes;
}
}  // namespace

bool RegionCache::OnShapeList(const RegionHeader* region) {
  // (`discarded` changes only while a region is off the lists.) Regions
  // whose pages were given back are not: after a decay, 8 of them at the
  // front of a list hid the resident ones behind them from the look-ahead
  // (a review).
  return region->shape != 0 && region->shape < kShapes && region->discarded != kPagesGivenBack;
}

void RegionCache::Unlink(RegionHeader* region) {
  if (region->lru_prev != nullptr) {
    region->lru_prev->lru_next = region->lru_next;
  } else {
    mru_ = region->lru_next;
  }
  if (region->lru_next != nullptr) {
    region->lru_next->lru_prev = region->lru_prev;
  } else {
    lru_ = region->lru_prev;
  }
  region->lru_prev = region->lru_next = nullptr;
  if (OnShapeList(region)) {
    if (region->shape_prev != nullptr) {
      region->shape_prev->shape_next = region->shape_next;
    } else {
      shape_head_[region->shape] = region->shape_next;
    }
    if (region->shape_next != nullptr) region->shape_next->shape_prev = region->shape_prev;
    region->shape_prev = region->shape_next = nullptr;
  }
  __atomic_store_n(&count_, count_ - 1, __ATOMIC_RELAXED);
  bytes_ -= region->mapped_size;
  __atomic_fetch_sub(&resident_, ResidentBytesOf(region), __ATOMIC_RELAXED);
  if (region->discarded == kPagesKept) kept_--;
}

void RegionCache::Link(RegionHeader* region, RegionHeader* newer,
                       RegionHeader* older) {
  region->lru_prev = newer;
  region->lru_next = older;
  if (newer != nullptr) {
    newer->lru_next = region;
  } else {
    mru_ = region;
  }
  if (older != nullptr) {
    older->lru_prev = region;
  } else {
    lru_ = region;
  }
  if (OnShapeList(region)) {
    RegionHeader*& head = shape_head_[region->shape];
    region->shape_prev = nullptr;
    region->shape_next = head;
    if (head != nullptr) head->shape_prev = region;
    head = region;
  }
  __atomic_store_n(&count_, count_ + 1, __ATOMIC_RELAXED);
  bytes_ += region->mapped_size;
  __atomic_fetch_add(&resident_, ResidentBytesOf(region), __ATOMIC_RELAXED);
  if (region->discarded == kPagesKept) kept_++;
}

void RegionCache::LinkByAge(RegionHeader* region) {
  RegionHeader* older = nullptr;
  RegionHeader* newer = lru_;
  while (newer != nullptr && newer->last_used_ns < region->last_used_ns) {
    older = newer;
    newer = newer->lru_prev;
  }
  Link(region, newer, older);
}

RegionHeader* RegionCache::FindLocked(size_t min_size, size_t max_size, bool resident_only,
                                      uint16_t shape, AcceptFn accepts, size_t accept_arg) {
  // One of the shape asked for that kept its pages: where its user will
  // touch them (a SuperSlab's slabs in the same places). Short-lived
  // threads that each walked the size classes took the SuperSlabs the last
  // ones gave back for other classes, touched their untouched pages, and
  // every SuperSlab became resident whole (F42).
  if (shape != 0 && shape < kShapes) {
    int looked = 0;
    for (RegionHeader* r = shape_head_[shape]; r != nullptr && looked < kShapeLookAhead;
         r = r->shape_next, looked++) {
      if (r->mapped_size >= min_size && r->mapped_size <= max_size) return r;
    }
  }
  for (RegionHeader* r = mru_; r != nullptr; r = r->lru_next) {
    if (r->mapped_size >= min_size && r->mapped_size <= max_size &&
        (!resident_only || r->discarded == 0) && (accepts == nullptr || accepts(r, accept_arg))) {
      return r;
    }
  }
  return nullptr;
}

void RegionCache::CountTakeLocked() {
  AdvanceDemand(platform::NowNs());
  demand_now_++;
}

void RegionCache::ClaimLocked(RegionHeader* found) {
  CountTakeLocked();
  Unlink(found);
  found->discarded = 0;
  found->generation++;
  hits_++;
  misses_in_a_row_ = 0;
}

RegionHeader* RegionCache::Take(size_t min_size, size_t max_size, bool* reads_zero,
                                uint16_t shape) {
  const RegionCacheLimits limits = limits_();
  platform::LockMutex(&lock_);
  RegionHeader* found = FindLocked(min_size, max_size, /*resident_only=*/false, shape);
  if (found != nullptr && found->discarded == kPagesGivenBack) {
    cross_.NoteTakeOfGivenBack(platform::NowNs(), limits.decay_ns);
  }
  if (found != nullptr) {
    if (reads_zero != nullptr) *reads_zero = found->discarded == kPagesGivenBack;
    ClaimLocked(found);
  } else {
    CountTakeLocked();
    misses_++;
    misses_in_a_row_++;
  }
  const bool big_miss = found == nullptr && min_size >= kBigMissBytes;
  const bool over_budget = (misses_in_a_row_ >= kMissesThatSkipTheDecay || big_miss) &&
                           resident_ > limits.max_resident_bytes;
  platform::UnlockMutex(&lock_);
  // Misses in a row: what the cache holds does not serve the demand, and
  // the caller maps fresh memory for it. Beyond the resident budget the
  // oldest give their pages back now, not after the decay (a buffer grown
  // by copy into a bigger block and freed, step by step, left every copy
  // resident: 3 MB grown 4 KiB at a time peaked at 535 MB, glibc 7; a
  // helper's hunt of real programs, session 23: python, bash, awk string
  // concatenation). A lone miss among hits (random sizes setting a new
  // high) leaves the decay alone: no madvise in such a loop. Unless it is
  // for 8 MiB or more: one buffer at a time of 10-100 MiB, each a
  // different size, kept every freed one resident for the decay (peak 371
  // MB, glibc 122; `sort -S 100M` 207 MB, glibc 104: F41). Giving pages
  // back costs less than the fresh mapping's 2,048 page faults.
  // (random_mixed's largest blocks are 1 MiB. A take that finds a region
  // whose pages were given back is no miss: counted as one, buffers of a
  // few sizes in turn gave back at every take what the next one took,
  // 9.7 -> 125 ms a round, a review.)
  if (over_budget) ApplyResidentBudgetNow();
  return found;
}

void RegionCache::ApplyResidentBudgetNow() {
  RegionCacheLimits limits = limits_();
  if (ResidentBytes() <= limits.max_resident_bytes) return;
  limits.decay_ns = 0;
  DiscardDecayed(limits, platform::NowNs(), /*release_kept=*/false);
}

void CrossGiveBacks::NoteTakeOfGivenBack(uint64_t now, uint64_t decay_ns) {
  if (last_ns_ == 0) return;
  if (now - last_ns_ < std::max(decay_ns, regret_ns_)) {
    const uint64_t most = kMaxQuietDecays * decay_ns;
    quiet_ns_ = quiet_ns_ == 0 ? kFirstQuietDecays * decay_ns : std::min(2 * quiet_ns_, most);
    quiet_until_ns_ = now + quiet_ns_;
  }
  last_ns_ = 0;
}

bool CrossGiveBacks::MayGiveBack(uint64_t now, uint64_t decay_ns, uint64_t regret_ns) {
  if (now < quiet_until_ns_) return false;
  // The last one went unregretted for its whole regret time (the decay,
  // or what it said).
  if (last_ns_ != 0 && now - last_ns_ >= std::max(decay_ns, regret_ns_)) quiet_ns_ /= 2;
  last_ns_ = now;
  regret_ns_ = regret_ns;
  return true;
}

void RegionCache::GiveBackForAnotherLayer(bool all, uint64_t when_quiet_bytes) {
  RegionCacheLimits limits = limits_();
  if (all) limits.max_resident_bytes = 0;
  if (ResidentBytes() <= limits.max_resident_bytes) return;
  const uint64_t now = platform::NowNs();
  platform::LockMutex(&lock_);
  const bool may =
      cross_.MayGiveBack(now, limits.decay_ns, all ? kFirstCrossQuietDecays * limits.decay_ns : 0);
  platform::UnlockMutex(&lock_);
  if (may) {
    limits.decay_ns = 0;
    DiscardDecayed(limits, now, /*release_kept=*/false);
    return;
  }
  if (when_quiet_bytes == 0) return;
  // Whole regions only once the bytes asked for add up to one: a few pages
  // a call (a window's first page) must not cost a region each (a review:
  // 290 give-backs for 78K more faults).
  platform::LockMutex(&lock_);
  // (At most the budget and a region: with a budget under a region's
  // size, a region still goes once asked for; a review.)
  quiet_credit_ =
      std::min(quiet_credit_ + when_quiet_bytes, limits.max_resident_bytes + kRegionAlign);
  const uint64_t credit = quiet_credit_;
  platform::UnlockMutex(&lock_);
  limits.decay_ns = 0;
  const uint64_t taken = DiscardDecayed(limits, now, /*release_kept=*/false, credit);
  platform::LockMutex(&lock_);
  quiet_credit_ -= std::min(taken, quiet_credit_);
  platform::UnlockMutex(&lock_);
}

int RegionCache::MoveCachedPages(char* const* to, int count, WindowsFn windows_with_pages,
                                 uint64_t min_age_ns) {
  const uint64_t now = platform::NowNs();
  const uint64_t cached_by = now > min_age_ns ? now - min_age_ns : 0;
  int moved = 0;
  while (moved < count) {
    const int from_one =
        MoveOneRegionsPages(to + moved, count - moved, windows_with_pages, cached_by);
    if (from_one == 0) break;
    moved += from_one;
  }
  return moved;
}

namespace {
// A cached region's whole 2 MiB windows with pages not moved out yet (see
// MoveCachedPages).
uint32_t WindowsLeftToMove(const RegionHeader* region, RegionCache::WindowsFn windows_with_pages) {
  const size_t whole = region->mapped_size / kRegionAlign;
  const uint32_t with_pages =
      windows_with_pages != nullptr ? windows_with_pages(region) : UINT32_MAX;
  const uint32_t windows = whole < with_pages ? static_cast<uint32_t>(whole) : with_pages;
  return windows > region->windows_moved_out ? windows - region->windows_moved_out : 0;
}
}  // namespace

int RegionCache::MoveOneRegionsPages(char* const* to, int count, WindowsFn windows_with_pages,
                                     uint64_t cached_by_ns) {
  // Only beyond the budget: within it, moves in both directions cost
  // programs that use both layers at once their own pages (realloc_grow,
  // F60's notes: 158 -> 195 MB).
  const uint64_t budget = limits_().max_resident_bytes;
  if (ResidentBytes() <= budget) return 0;
  // (As DiscardDecayed: ReleaseAll waits for a region off the lists.)
  platform::LockMutex(&release_all_lock_);
  platform::LockMutex(&lock_);
  // One with resident pages: the shapes' lists hold only such regions
  // (OnShapeList); else, for regions of no shape, a bounded walk from the
  // longest cached (under the lock: those given back are skipped).
  const auto fits = [windows_with_pages, cached_by_ns](const RegionHeader* region) {
    return !region->discarded && region->last_used_ns <= cached_by_ns &&
           WindowsLeftToMove(region, windows_with_pages) != 0;
  };
  RegionHeader* r = nullptr;
  for (uint32_t shape = 1; shape < kShapes && r == nullptr; shape++) {
    for (RegionHeader* s = shape_head_[shape]; s != nullptr && r == nullptr; s = s->shape_next) {
      if (fits(s)) r = s;
    }
  }
  RegionHeader* older = lru_;
  for (int looked = 0; r == nullptr && older != nullptr && looked < kMoveLookAhead; looked++) {
    if (fits(older)) r = older;
    older = older->lru_prev;
  }
  if (r != nullptr && resident_ > budget) {
    Unlink(r);
  } else {
    r = nullptr;
  }
  platform::UnlockMutex(&lock_);
  int moved = 0;
  if (r != nullptr) {
    // Window by window from the front, each but its first page: where the
    // destinations split their kernel mappings, so that a region that took
    // moved pages once gives them on a window at a time, each within one
    // mapping (a kernel before 6.17 refuses a move across two).
    char* const base = reinterpret_cast<char*>(r);
    while (WindowsLeftToMove(r, windows_with_pages) != 0 && moved < count &&
           platform::MovePages(base + size_t{r->windows_moved_out} * kRegionAlign +
                                   platform::kPageSize,
                               to[moved], kMoveSpanBytes)) {
      r->windows_moved_out++;
      moved++;
    }
    // Once every whole window moved, what is left goes back too (the
    // windows' first pages, a tail): the region reads zero whole, as one
    // given back (a refusal: kept, as DiscardDecayed marks it). Until then
    // it keeps the rest, counted resident: windows past `windows_with_pages`
    // may hold pages all the same (a 100 MiB buffer that took 8 windows of
    // moved pages, then was written whole: given back, its other 42 windows
    // faulted in again at every reuse, 46K -> 451K faults; a review). A
    // window the kernel would not move (several mappings: see
    // platform::MovePages) gives up the region the same way: beyond the
    // budget, its pages would have gone at the decay.
    const bool refused = moved < count && WindowsLeftToMove(r, windows_with_pages) != 0;
    const bool all_moved = WindowsLeftToMove(r, nullptr) == 0 && r->windows_moved_out != 0;
    if (refused || all_moved) {
      const bool nothing_left = !refused && r->mapped_size == kRegionAlign;  // (a SuperSlab)
      r->discarded = nothing_left || DiscardRegionPages(r) ? kPagesGivenBack : kPagesKept;
    }
    platform::LockMutex(&lock_);
    LinkByAge(r);
    platform::UnlockMutex(&lock_);
  }
  platform::UnlockMutex(&release_all_lock_);
  return moved;
}

bool RegionCache::Holds(size_t min_size, size_t max_size) {
  platform::LockMutex(&lock_);
  const bool held = FindLocked(min_size, max_size, /*resident_only=*/false) != nullptr;
  platform::UnlockMutex(&lock_);
  return held;
}

bool RegionCache::ResidentBudgetHasRoomFor(uint64_t bytes) {
  return ResidentBytes() + bytes <= limits_().max_resident_bytes;
}

RegionHeader* RegionCache::TakeResident(size_t min_size, size_t max_size, AcceptFn accepts,
                                        size_t accept_arg) {
  platform::LockMutex(&lock_);
  RegionHeader* found =
      FindLocked(min_size, max_size, /*resident_only=*/true, 0, accepts, accept_arg);
  if (found != nullptr) ClaimLocked(found);
  platform::UnlockMutex(&lock_);
  return found;
}

void RegionCache::UncountTake(bool hit) {
  platform::LockMutex(&lock_);
  uint64_t& count = hit ? hits_ : misses_;
  if (count != 0) count--;
  if (demand_now_ != 0) demand_now_--;
  platform::UnlockMutex(&lock_);
}

void RegionCache::AdvanceDemand(uint64_t now) {
  constexpr uint64_t kSecondNs = 1000000000;
  if (second_end_ns_ == 0) second_end_ns_ = now + kSecondNs;
  for (int closed = 0; now >= second_end_ns_; closed++) {
    if (closed == kMaxDemandSeconds) {  // idle for longer than the history
      second_end_ns_ = now + kSecondNs;
      break;
    }
    demand_[demand_pos_] = demand_now_;
    demand_pos_ = (demand_pos_ + 1) % kMaxDemandSeconds;
    demand_now_ = 0;
    second_end_ns_ += kSecondNs;
  }
}

uint64_t RegionCache::RecentDemand(uint64_t seconds) const {
  // Two seconds at a time: a burst shorter than a second that straddles the
  // end of one counts whole. (One at a time, its larger half alone: 100
  // large blocks taken across a second's end and freed, and the cache kept
  // 52-58 of them, unmapping the rest; a TSan test run saw it.)
  uint64_t most = demand_now_;
  uint64_t newer = demand_now_;
  for (uint64_t i = 1; i <= seconds && i <= kMaxDemandSeconds; i++) {
    const uint32_t d = demand_[(demand_pos_ + kMaxDemandSeconds - i) % kMaxDemandSeconds];
    if (newer + d > most) most = newer + d;
    newer = d;
  }
  return most;
}

uint64_t RegionCache::DemandTarget() {
  const uint64_t window = limits_().demand_window_sec;
  if (window == 0) return UINT64_MAX;
  platform::LockMutex(&lock_);
  AdvanceDemand(platform::NowNs());
  const uint64_t target = RecentDemand(window) + kDemandFloor;
  platform::UnlockMutex(&lock_);
  return target;
}

void RegionCache::CollectEvictions(const RegionCacheLimits& limits,
                                   uint64_t now, bool everything,
                                   RegionHeader** evicted) {
  uint64_t target = UINT64_MAX;
  if (limits.demand_window_sec != 0 && !everything) {
    AdvanceDemand(now);
    target = RecentDemand(limits.demand_window_sec) + kDemandFloor;
  }
  while (lru_ != nullptr) {
    RegionHeader* oldest = lru_;
    // (Not `now - last_used`: another thread may have cached a region after
    // `now` was read.)
    const bool expired = oldest->last_used_ns + limits.ttl_ns <= now;
    if (!everything && !expired && count_ <= limits.max_count &&
        bytes_ <= limits.max_bytes && count_ <= target) {
      break;
    }
    Unlink(oldest);
    evicted_++;
    oldest->lru_next = *evicted;
    *evicted = oldest;
  }
}

void RegionCache::ReleaseList(RegionHeader* list) {
  while (list != nullptr) {
    RegionHeader* next = list->lru_next;
    release_(list);
    list = next;
  }
}

void RegionCache::Put(RegionHeader* region, uint64_t freed_since_ns, bool give_back_now) {
  region->windows_moved_out = 0;  // (used since: its windows hold pages again)
  Park(region, freed_since_ns, give_back_now);
}

void RegionCache::PutBack(RegionHeader* region) {
  Park(region, region->last_used_ns, /*give_back_now=*/false);
  UncountTake(/*hit=*/true);
}

void RegionCache::Park(RegionHeader* region, uint64_t freed_since_ns, bool give_back_now) {
  // (On no list yet: the syscall needs no lock.)
  region->discarded = !give_back_now               ? 0
                      : DiscardRegionPages(region) ? kPagesGivenBack
                                                   : kPagesKept;
  const uint64_t now = platform::NowNs();
  ApplyLimits(limits_(), now, region,
              freed_since_ns != 0 && freed_since_ns < now ? freed_since_ns : now);
}

void RegionCache::ApplyLimits(const RegionCacheLimits& limits, uint64_t now,
                              RegionHeader* to_cache, uint64_t cached_at) {
  RegionHeader* evicted = nullptr;
  platform::LockMutex(&lock_);
  if (to_cache != nullptr) {
    to_cache->last_used_ns = cached_at;
    if (cached_at == now) {
      Link(to_cache, nullptr, mru_);
    } else {
      LinkByAge(to_cache);
    }
  }
  CollectEvictions(limits, now, /*everything=*/false, &evicted);
  const bool decay_applies = resident_ > limits.max_resident_bytes || kept_ != 0;
  platform::UnlockMutex(&lock_);
  ReleaseList(evicted);  // syscalls outside the lock
  // Over the resident budget: the oldest give their pages back once they
  // have been cached for the decay time (at once with decay 0); regions
  // whose pages the kernel refused go then. After the evictions, so that no
  // region is madvised just before it is unmapped.
  if (decay_applies) DiscardDecayed(limits, now, /*release_kept=*/true);
}

uint64_t RegionCache::DiscardDecayed(const RegionCacheLimits& limits, uint64_t now,
                                     bool release_kept, uint64_t most_bytes) {
  // ReleaseAll waits for these regions: it promises every cached region
  // unmapped when it returns.
  platform::LockMutex(&release_all_lock_);
  platform::LockMutex(&lock_);
  RegionHeader* decayed = nullptr;
  RegionHeader* r = lru_;
  uint64_t taken = 0;
  while (r != nullptr && resident_ > limits.max_resident_bytes &&
         r->last_used_ns + limits.decay_ns <= now) {
    RegionHeader* newer = r->lru_prev;
    if (!r->discarded) {
      if (ResidentBytesOf(r) > most_bytes - taken) break;
      taken += ResidentBytesOf(r);
      Unlink(r);
      r->lru_next = decayed;
      decayed = r;
    }
    r = newer;
  }
  // A region whose pages the kernel refused to take (the program locked
  // them: mlock, mlockall) is released with its mapping once cached for
  // the decay time: kept, it held locked memory until an eviction (a
  // helper's hunt, session 30: 400 blocks of 0.3-15 MB freed under
  // mlockall(MCL_CURRENT | MCL_FUTURE) left 530 MB locked; glibc 2.4). Not
  // on a give-back now (decay 0: for the other layer, or misses in a row),
  // which only marks it, as before: released there, phases of small and
  // large blocks in turn unmapped and mapped again at every turn (a review:
  // 1,603 mmap + 1,520 munmap, 0.26 -> 1.77 s).
  RegionHeader* refused = nullptr;
  if (release_kept) {
    for (RegionHeader* k = lru_; k != nullptr && k->last_used_ns + limits.decay_ns <= now;) {
      RegionHeader* newer = k->lru_prev;
      if (k->discarded == kPagesKept) {
        Unlink(k);
        evicted_++;
        k->lru_next = refused;
        refused = k;
      }
      k = newer;
    }
  }
  platform::UnlockMutex(&lock_);
  if (decayed == nullptr) {
    ReleaseList(refused);
    platform::UnlockMutex(&release_all_lock_);
    return 0;
  }
  // Syscalls outside the lock (the regions are on no list: nobody else
  // reads them).
  for (RegionHeader* d = decayed; d != nullptr; d = d->lru_next) {
    d->discarded = DiscardRegionPages(d) ? kPagesGivenBack : kPagesKept;
  }
  platform::LockMutex(&lock_);
  while (decayed != nullptr) {
    RegionHeader* next = decayed->lru_next;
    if (decayed->discarded == kPagesKept && release_kept) {
      evicted_++;
      decayed->lru_next = refused;
      refused = decayed;
    } else {
      LinkByAge(decayed);
    }
    decayed = next;
  }
  platform::UnlockMutex(&lock_);
  ReleaseList(refused);
  platform::UnlockMutex(&release_all_lock_);
  return taken;
}

void RegionCache::NoteDemand(uint64_t regions) {
  platform::LockMutex(&lock_);
  AdvanceDemand(platform::NowNs());
  demand_now_ += static_cast<uint32_t>(regions);
  platform::UnlockMutex(&lock_);
}

void RegionCache::EnforceLimits() {
  ApplyLimits(limits_(), platform::NowNs(), /*to_cache=*/nullptr, 0);
}

void RegionCache::MaybeEnforceLimits(uint64_t now) {
  if (now < __atomic_load_n(&next_check_ns_, __ATOMIC_RELAXED)) return;
  __atomic_store_n(&next_check_ns_, now + kCheckIntervalNs, __ATOMIC_RELAXED);
  if (__atomic_load_n(&count_, __ATOMIC_RELAXED) == 0) return;
  EnforceLimits();
}

void RegionCache::ReleaseAll() {
  RegionHeader* evicted = nullptr;
  platform::LockMutex(&release_all_lock_);
  platform::LockMutex(&lock_);
  CollectEvictions(limits_(), 0, /*everything=*/true, &evicted);
  // Nothing cached is left to regret moving across (a trim, or memory
  // running out).
  cross_.Forget();
  platform::UnlockMutex(&lock_);
  ReleaseList(evicted);
  platform::UnlockMutex(&release_all_lock_);
}

RegionCacheStats RegionCache::GetStats() {
  platform::LockMutex(&lock_);
  RegionCacheStats stats{count_, bytes_, resident_, hits_, misses_, evicted_};
  platform::UnlockMutex(&lock_);
  return stats;
}

}  // namespace hakmem
