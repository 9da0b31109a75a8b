#include "hakmem/superslab/superslab.h"

#include <pthread.h>
#include <unistd.h>

#include "hakmem/config.h"
#include "hakmem/registry/registry.h"

namespace hakmem {
namespace {

RegionCacheLimits SuperSlabCacheLimits() {
  // Half of the idle budget when mappings are scarce (the large cache has
  // the other half).
  const uint64_t budget = platform::IdleMappingBudget() / 2;
  const uint64_t max_bytes = GetOption(Option::kSuperslabMaxMemoryMb) << 20;
  const uint64_t max_count = GetOption(Option::kSuperslabMaxCached);
  return RegionCacheLimits{
      max_count < budget / kSuperSlabSize ? max_count : budget / kSuperSlabSize,
      max_bytes < budget ? max_bytes : budget,
      GetOption(Option::kSuperslabTtlSec) * 1000000000ull,
      GetOption(Option::kSuperslabResidentMb) << 20,
      GetOption(Option::kSuperslabDemandWindowSec),
      DecayNs()};
}

pthread_mutex_t g_all_lock = PTHREAD_MUTEX_INITIALIZER;
SuperSlab* g_all = nullptr;
uint64_t g_mapped = 0;
uint64_t g_evicted = 0;

void ListAdd(SuperSlab* ss) {
  platform::LockMutex(&g_all_lock);
  ss->all_prev = nullptr;
  ss->all_next = g_all;
  if (g_all != nullptr) g_all->all_prev = ss;
  g_all = ss;
  g_mapped++;
  platform::UnlockMutex(&g_all_lock);
}

// Retained address space. An evicted SuperSlab is unregistered and its
// pages given back, but it stays mapped, for a later MapSuperSlab, up to
// HAKMEM_SUPERSLAB_RETAIN_MB. Why: a block freed twice can leave a copy
// that no count covers in some thread's bin; read after its SuperSlab went
// away, memory that reads zero (or is a SuperSlab again) fails the key
// check and is reported, where unmapped memory would fault. And the next
// SuperSlab costs no mmap. (jemalloc's retain and gperftools keep address
// space too.) First in, first out: the longest retained is reused or
// unmapped first, so a recently evicted one, where a stale copy most
// likely points, reads zero longest. Addresses in a ring, not links in the
// regions: a retained SuperSlab keeps no page resident. Under g_all_lock.
constexpr size_t kMaxRetained = 65536;  // 128 GiB, the knob's maximum
static_assert(kMaxRetained * (kSuperSlabSize >> 20) >= 131072, "room for the knob's range");
HAKMEM_BIG_BSS uintptr_t g_retained[kMaxRetained];
size_t g_retained_oldest = 0;  // ring index of the longest retained
size_t g_retained_count = 0;
// Held across a whole release of retained SuperSlabs (after g_all_lock's
// holders are done with the ring): a caller that retries a failed mapping
// afterwards finds that address space free, even if another release took it.
pthread_mutex_t g_retained_release_lock = PTHREAD_MUTEX_INITIALIZER;

// How many SuperSlabs may be retained now.
size_t RetainLimit() {
  // Not where mappings are scarce: under an address-space limit, address
  // space is what runs out; under strict overcommit (mode 2) a private
  // writable mapping is charged whole, pages given back or not.
  if (platform::MappingsScarce()) return 0;
  const size_t by_option = GetOption(Option::kSuperslabRetainMb) / (kSuperSlabSize >> 20);
  return by_option < kMaxRetained ? by_option : kMaxRetained;
}

// Takes the longest retained SuperSlab off the (non-empty) ring.
void* PopOldestRetainedLocked() {
  void* mem = reinterpret_cast<void*>(g_retained[g_retained_oldest]);
  g_retained_oldest = (g_retained_oldest + 1) % kMaxRetained;
  g_retained_count--;
  return mem;
}

// The longest retained SuperSlab if more than `keep` are, taken off the
// ring; else nullptr.
void* TakeOldestRetainedBeyond(size_t keep) {
  platform::LockMutex(&g_all_lock);
  void* mem = g_retained_count > keep ? PopOldestRetainedLocked() : nullptr;
  platform::UnlockMutex(&g_all_lock);
  return mem;
}

// A retained SuperSlab (its memory reads zero, unregistered), or nullptr.
void* TakeRetained() { return TakeOldestRetainedBeyond(0); }

// Retains `base` (its pages given back), the newest. Returns the longest
// retained if the ring was full (for the caller to unmap), else nullptr.
void* Retain(uintptr_t base) {
  platform::LockMutex(&g_all_lock);
  void* displaced = g_retained_count == kMaxRetained ? PopOldestRetainedLocked() : nullptr;
  g_retained[(g_retained_oldest + g_retained_count) % kMaxRetained] = base;
  g_retained_count++;
  platform::UnlockMutex(&g_all_lock);
  return displaced;
}

// Unmaps retained SuperSlabs, the longest retained first, until at most
// `keep` are left.
void ReleaseRetainedBeyond(size_t keep) {
  platform::LockMutex(&g_retained_release_lock);
  while (void* mem = TakeOldestRetainedBeyond(keep)) platform::Unmap(mem, kSuperSlabSize);
  platform::UnlockMutex(&g_retained_release_lock);
}

// The cache's ReleaseFn: forget the SuperSlab, unregister it, then retain
// its address space or unmap it.
void DestroySuperSlab(RegionHeader* region) {
  SuperSlab* ss = reinterpret_cast<SuperSlab*>(region);
  platform::LockMutex(&g_all_lock);
  if (ss->all_prev != nullptr) {
    ss->all_prev->all_next = ss->all_next;
  } else {
    g_all = ss->all_next;
  }
  if (ss->all_next != nullptr) ss->all_next->all_prev = ss->all_prev;
  g_mapped--;
  g_evicted++;
  platform::UnlockMutex(&g_all_lock);
  const uintptr_t base = reinterpret_cast<uintptr_t>(ss);
  registry::Unregister(base, kSuperSlabSize);
  const size_t limit = RetainLimit();
  // All of it, the header too: taken again, it reads zero as a fresh
  // mapping. (Locked pages refuse: unmapped then.)
  if (limit != 0 && platform::DiscardPages(ss, kSuperSlabSize)) {
    if (void* displaced = Retain(base)) platform::Unmap(displaced, kSuperSlabSize);
  } else {
    platform::Unmap(ss, kSuperSlabSize);
  }
  ReleaseRetainedBeyond(limit);  // the longest retained, at the limit
}

RegionCache g_cache(&SuperSlabCacheLimits, &DestroySuperSlab);

SuperSlab* MapSuperSlab() {
  void* mem = TakeRetained();
  if (mem == nullptr) mem = platform::MapAligned(kSuperSlabSize, kSuperSlabSize);
  if (mem == nullptr) return nullptr;
  SuperSlab* ss = static_cast<SuperSlab*>(mem);
  // Fresh pages are zero: only the non-zero fields need writing.
  ss->region.magic = kRegionMagic;
  ss->region.kind = RegionKind::kSuperSlab;
  ss->region.mapped_size = kSuperSlabSize;
  ss->slab_shift = kSmallSlabShift;
  ss->zero_from = platform::kPageSize;
  if (!registry::Register(reinterpret_cast<uintptr_t>(ss), kSmallSlabShift)) {
    platform::Unmap(mem, kSuperSlabSize);
    return nullptr;
  }
  ListAdd(ss);
  return ss;
}

// Slab `index`'s SlabInfo copies (see kInfoChunkShift): every change
// writes each.
struct InfoCopies {
  SlabInfo* first;
  int count;
  SlabInfo* begin() const { return first; }
  SlabInfo* end() const { return first + count; }
};
InfoCopies InfoCopiesOf(SuperSlab* ss, int index) {
  return {SlabInfoAt(ss, index), InfoCopiesPerSlab(ss)};
}
InfoCopies InfoCopiesOf(const Slab* s) { return InfoCopiesOf(SuperSlabOf(s), SlabIndex(s)); }

}  // namespace

Slab* SlabInit(SuperSlab* ss, int index, uint32_t block_size, int size_class,
               const void* owner) {
  Slab* s = SlabAt(ss, index);
  s->free = nullptr;
  s->used = 0;
  s->role = kSlabDetached;
  s->prev = s->next = nullptr;
  const uint32_t first_block_low32 = static_cast<uint32_t>(
      reinterpret_cast<uintptr_t>(ss) + (static_cast<uintptr_t>(index) << ss->slab_shift) +
      SlabFirstBlockOffset(index, size_class, block_size));
  for (SlabInfo& info : InfoCopiesOf(ss, index)) {
    info.divisor_magic = DivisorMagic(block_size);
    __atomic_store_n(&info.carved_limit, 0, __ATOMIC_RELAXED);
    info.block_size = block_size;
    info.size_class = static_cast<uint8_t>(size_class);
    info.slab_shift = ss->slab_shift;
    info.first_block_low32 = first_block_low32;
    __atomic_store_n(&info.owner, owner, __ATOMIC_RELEASE);
  }
  return s;
}

namespace {
// How far ahead of a carve SlabCarve asks for lines.
constexpr uintptr_t kCarveReach = 8192;
// The smallest blocks whose lines a carve asks for ahead.
constexpr uint32_t kCarvePrefetchMinSize = 128;

// Asks for the key lines (see PrefetchForWrite) of a carve of `n` blocks
// of `size` bytes (kCarvePrefetchMinSize or more) at `next`, `carved` blocks
// carved before it: 1M mallocs of 256 B in memory cold from an earlier
// round, 54 -> 27 ns each. Asked for a fixed reach ahead (kCarveReach
// rounded up to whole blocks, so each block's key line is the one asked
// for): each carve asks for the lines of the blocks that come into reach,
// exactly where the last carve stopped whatever its length, so every block
// of the slab is asked for before its carve. A slab's first carve asks for
// its own blocks too. Untouched pages do not fault on a prefetch.
void PrefetchCarveReach(const Slab* s, uint32_t carved, uint32_t n, uint32_t size,
                        const char* next) {
  const uintptr_t first = reinterpret_cast<uintptr_t>(next);
  const uintptr_t slab_end = SlabStart(s) + static_cast<uintptr_t>(SlabCapacity(s)) * size;
  const uintptr_t reach = (kCarveReach + size - 1) / size * size;
  const uintptr_t bytes = static_cast<uintptr_t>(n) * size;
  const uintptr_t reach_end = first + bytes + reach < slab_end ? first + bytes + reach : slab_end;
  for (uintptr_t at = carved == 0 ? first : first + reach; at < reach_end; at += size) {
    platform::PrefetchForWrite(reinterpret_cast<const void*>(at));
  }
}
}  // namespace

uint32_t SlabCarve(Slab* s, Block** out, uint32_t max_blocks, uint64_t free_key,
                   ptrdiff_t out_step) {
  SlabInfo* info = InfoOf(s);
  const uint32_t size = info->block_size;
  const uint32_t carved = SlabCarved(s);
  const uint32_t capacity = SlabCapacity(s);
  const uint32_t n = capacity - carved < max_blocks ? capacity - carved : max_blocks;
  char* next = reinterpret_cast<char*>(SlabStart(s)) + static_cast<size_t>(carved) * size;
  // The lines of blocks of kCarvePrefetchMinSize and up are asked for
  // ahead. Smaller blocks' key lines follow each other, every line written,
  // which the core's own stream prefetch keeps ahead of; asked for as well
  // (up to 128 lines at a carve), they filled the miss buffers and the
  // carve's stores waited: 2M mallocs rebuilding a freed structure
  // (session 37, 4 paired rounds) 32 B 6.3 -> 4.9 ns, 64 B 9.3 -> 6.1,
  // 96 B 11.5 -> 9.6, 16 B level; at 128 B and 256 B asking pays (13.7 vs
  // 15.6, 13.2 vs 16.2). (Session 12's 64 B numbers, one carve ahead 12.3
  // ns and 8 KiB ahead 8.8, had no run without.)
  if (size >= kCarvePrefetchMinSize) PrefetchCarveReach(s, carved, n, size, next);
#pragma GCC unroll 4
  for (uint32_t i = 0; i < n; i++, next += size, out += out_step) {
    Block* b = reinterpret_cast<Block*>(next);
    SetKey(b, free_key);
    *out = b;
  }
  const uint32_t carved_limit = (carved + n) * CarveStep(info);
  for (SlabInfo& copy : InfoCopiesOf(s)) {
    __atomic_store_n(&copy.carved_limit, carved_limit, __ATOMIC_RELAXED);
  }
  if (info->slab_shift == kBigSlabShift) {
    SuperSlab* ss = SuperSlabOf(s);
    const uint32_t carved_end = static_cast<uint32_t>(next - reinterpret_cast<char*>(ss));
    if (carved_end > ss->zero_from) ss->zero_from = carved_end;
  }
  return n;
}

int SuperSlabTakeFreeSlab(SuperSlab* ss) {
  const uint32_t free_mask = ss->full_mask & ~ss->used_slabs;
  if (free_mask == 0) return -1;
  const int index = __builtin_ctz(free_mask);
  ss->used_slabs |= 1u << index;
  return index;
}

namespace {
// The slabs never handed out: slab 0 of small slabs, which holds the
// header. (Mid and big slabs' blocks start past it, see
// SlabFirstBlockOffset: a mid SuperSlab that left slab 0 unused left a
// quarter of its address space and commit unused, F31.)
uint32_t ReservedSlabs(int slab_shift) { return slab_shift == kSmallSlabShift ? 1u : 0u; }
}  // namespace

bool SuperSlabReturnSlab(SuperSlab* ss, Slab* s) {
  s->free = nullptr;
  const SlabInfo* info = InfoOf(s);
  // (Nothing carved: its SlabInfo may never have been set up.)
  if (__atomic_load_n(&info->carved_limit, __ATOMIC_RELAXED) != 0) {
    const uint32_t carved_end = SlabColorOf(s) + SlabCarved(s) * info->block_size;
    if (carved_end > s->touched_bytes) s->touched_bytes = carved_end;
  }
  for (SlabInfo& info : InfoCopiesOf(s)) {
    __atomic_store_n(&info.carved_limit, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&info.owner, nullptr, __ATOMIC_RELEASE);
  }
  ss->used_slabs &= ~(1u << SlabIndex(s));
  return ss->used_slabs == ReservedSlabs(ss->slab_shift);
}

namespace {
// Every slab of `ss` free and unknown to the pool's idle list: it comes
// from the cache, or its geometry changes.
void ResetSlabRecords(SuperSlab* ss) {
  for (int i = 0; i < kMaxSlabsPerSuperSlab; i++) {
    ss->slabs[i].free = nullptr;
    ss->slabs[i].idle = 0;
    ss->slabs[i].touched_bytes = 0;  // its pages may have been given back
    __atomic_store_n(&ss->infos[i].carved_limit, 0, __ATOMIC_RELAXED);
  }
}
}  // namespace

void SuperSlabFormat(SuperSlab* ss, int slab_shift) {
  const int slabs = static_cast<int>(kRegionAlign >> slab_shift);
  ss->used_slabs = ReservedSlabs(slab_shift);
  // Other geometries' carving is not tracked.
  if (slab_shift != kBigSlabShift) ss->zero_from = kSuperSlabSize;
  ss->full_mask = slabs == 32 ? 0xffffffffu : (1u << slabs) - 1;
  if (ss->slab_shift != slab_shift) {
    ResetSlabRecords(ss);
    ss->slab_shift = static_cast<uint8_t>(slab_shift);
    registry::Register(reinterpret_cast<uintptr_t>(ss),
                       static_cast<uint8_t>(slab_shift));
  }
}

namespace {
FreshSuperSlabHook g_fresh_hook = nullptr;  // atomic access
}  // namespace

void SuperSlabSetFreshMappingHook(FreshSuperSlabHook hook) {
  platform::StoreIfChanged(&g_fresh_hook, hook);  // (by every large malloc)
}

SuperSlab* SuperSlabAcquire(const void* owner, int slab_shift, int size_class) {
  bool reads_zero = false;
  const uint16_t shape = SuperSlabShapeOf(slab_shift, size_class);
  SuperSlab* ss = reinterpret_cast<SuperSlab*>(
      g_cache.Take(kSuperSlabSize, kSuperSlabSize, &reads_zero, shape));
  const bool faults_in = ss == nullptr || reads_zero;
  if (ss != nullptr) {
    ResetSlabRecords(ss);
    if (reads_zero) ss->zero_from = platform::kPageSize;
  } else {
    ss = MapSuperSlab();
  }
  if (ss == nullptr) return nullptr;
  // Pages to fault in (a fresh mapping, or one whose pages were given
  // back): the layer above moves its free resident pages here if it can,
  // or gives back what it keeps beyond its budget. (After the mapping, for
  // its address; a mapping that fails gives every cache back anyway, see
  // platform::SetMapFailureHandler.)
  bool moved_in = false;
  if (faults_in) {
    if (FreshSuperSlabHook hook = __atomic_load_n(&g_fresh_hook, __ATOMIC_RELAXED)) {
      moved_in = hook(reinterpret_cast<char*>(ss) + platform::kPageSize,
                      kSuperSlabSize - platform::kPageSize);
    }
  }
  SuperSlabFormat(ss, slab_shift);
  if (moved_in) {
    ss->zero_from = kSuperSlabSize;  // nothing reads zero
    // Every slab's pages resident: a take prefers them (see slab_pool.h).
    for (int i = 0; i < kMaxSlabsPerSuperSlab; i++) ss->slabs[i].touched_bytes = 1u << slab_shift;
  }
  ss->region.shape = shape;
  ss->prev = ss->next = nullptr;
  ss->owner = owner;
  return ss;
}

namespace {
__thread uint64_t tl_release_date_ns __attribute__((tls_model("initial-exec"))) = 0;
}  // namespace

void SuperSlabSetReleaseDate(uint64_t ns) { tl_release_date_ns = ns; }

void SuperSlabRelease(SuperSlab* ss) {
  ss->owner = nullptr;
  g_cache.Put(&ss->region, tl_release_date_ns);
}

void SuperSlabPrewarm(uint64_t count) {
  // Nothing mapped ahead where mappings are scarce: it would take the
  // headroom the program's own mappings and thread stacks need (a helper's
  // hunt, session 23: PREWARM=256 under ulimit -v 400000 left
  // pthread_create failing).
  if (platform::MappingsScarce()) {
    platform::LogLine line;
    line.Str("hakmem: warning: HAKMEM_SUPERSLAB_PREWARM=")
        .Dec(count)
        .Str(" ignored: mappings are scarce (RLIMIT_AS, RLIMIT_DATA or strict overcommit)\n");
    line.WriteToStderr();
    return;
  }
  // No more than the cache keeps: mapped beyond its limits, they were
  // evicted again at once (a helper's hunt, session 22: silently).
  const RegionCacheLimits limits = SuperSlabCacheLimits();
  uint64_t most = limits.max_bytes / kSuperSlabSize;
  if (limits.max_count < most) most = limits.max_count;
  if (count > most) {
    platform::LogLine line;
    line.Str("hakmem: warning: HAKMEM_SUPERSLAB_PREWARM=")
        .Dec(count)
        .Str(" is more than the SuperSlab cache keeps (HAKMEM_SUPERSLAB_MAX_CACHED, "
             "HAKMEM_SUPERSLAB_MAX_MEMORY_MB); pre-warming ")
        .Dec(most)
        .Str("\n");
    line.WriteToStderr();
    count = most;
  }
  g_cache.NoteDemand(count);  // or adaptive sizing would unmap them at once
  for (uint64_t i = 0; i < count; i++) {
    SuperSlab* ss = MapSuperSlab();
    if (ss == nullptr) {
      platform::LogLine line;
      line.Str("hakmem: warning: HAKMEM_SUPERSLAB_PREWARM: the kernel refused a mapping; pre-warmed ")
          .Dec(i)
          .Str(" of ")
          .Dec(count)
          .Str("\n");
      line.WriteToStderr();
      return;
    }
    g_cache.Put(&ss->region);
  }
}

void SuperSlabCacheEnforceLimits() { g_cache.EnforceLimits(); }
void SuperSlabCacheMaybeEnforceLimits(uint64_t now) { g_cache.MaybeEnforceLimits(now); }
uint64_t SuperSlabCacheResidentBytes() { return g_cache.GetStats().resident_bytes; }
void SuperSlabCacheGiveBackForLargeBlocks(uint64_t when_quiet_bytes) {
  g_cache.GiveBackForAnotherLayer(/*all=*/false, when_quiet_bytes);
}
int SuperSlabCacheMovePages(char* const* to, int count, uint64_t min_age_ns) {
  static_assert(kMoveSpanBytes == kSuperSlabSize - platform::kPageSize, "a SuperSlab a span");
  return g_cache.MoveCachedPages(to, count, /*windows_with_pages=*/nullptr, min_age_ns);
}
void SuperSlabCacheReleaseAll() { g_cache.ReleaseAll(); }

SuperSlabStats GetSuperSlabStats() {
  SuperSlabStats stats;
  stats.cache = g_cache.GetStats();
  platform::LockMutex(&g_all_lock);
  stats.mapped = g_mapped;
  stats.evicted = g_evicted;
  stats.retained = g_retained_count;
  platform::UnlockMutex(&g_all_lock);
  return stats;
}

void ForEachSuperSlab(void (*fn)(SuperSlab* ss, void* arg), void* arg) {
  platform::LockMutex(&g_all_lock);
  for (SuperSlab* ss = g_all; ss != nullptr; ss = ss->all_next) fn(ss, arg);
  platform::UnlockMutex(&g_all_lock);
}

void SuperSlabReleaseRetained() { ReleaseRetainedBeyond(0); }
void SuperSlabApplyRetainLimit() { ReleaseRetainedBeyond(RetainLimit()); }

void SuperSlabLockForFork() {
  g_cache.LockForFork();
  platform::LockMutex(&g_retained_release_lock);
  platform::LockMutex(&g_all_lock);
}

void SuperSlabUnlockAfterFork(bool in_child) {
  if (in_child) {
    pthread_mutex_init(&g_all_lock, nullptr);
    pthread_mutex_init(&g_retained_release_lock, nullptr);
    g_cache.ResetLockInChild();
  } else {
    platform::UnlockMutex(&g_all_lock);
    platform::UnlockMutex(&g_retained_release_lock);
    g_cache.UnlockAfterFork();
  }
}

}  // namespace hakmem
