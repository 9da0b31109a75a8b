#include "benchmarks/workload.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <thread>

namespace bench {

SizeSampler::SizeSampler(const std::vector<SizeBand>& bands) {
  if (bands.empty() || bands.size() > static_cast<size_t>(kMaxBands)) {
    fprintf(stderr, "SizeSampler: need 1..%d bands, got %zu\n", kMaxBands,
            bands.size());
    abort();
  }
  num_bands_ = static_cast<int>(bands.size());
  uint32_t cumulative_pct = 0;
  for (int i = 0; i < num_bands_; ++i) {
    const SizeBand& band = bands[i];
    cumulative_pct += band.weight_pct;
    threshold_[i] = cumulative_pct * 65536 / 100;
    min_[i] = band.min_size;
    span_[i] = uint64_t{band.max_size} - band.min_size + 1;
    max_size_ = std::max(max_size_, band.max_size);
  }
}

uint64_t DefaultWarmupIters(uint64_t iters, uint32_t ws, int threads) {
  return std::max(iters / 10, uint64_t{4} * ws * static_cast<uint64_t>(threads));
}

namespace {

// splitmix64: a few multiplies and shifts per draw, so the generator costs the
// same small amount under every allocator (and shows up in the floor row).
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

// The same uniform pick as r % ws, by multiply-high instead of a division
// (a 64-bit divide would be most of the floor row's cost).
inline uint32_t PickSlot(uint64_t r, uint32_t ws) {
  return static_cast<uint32_t>(((r & 0xffffffffu) * ws) >> 32);
}

// Frees use the bits that allocations spend on the size band.
inline uint32_t RemoteBits(uint64_t r) {
  return static_cast<uint32_t>(r >> 32) & 0xffff;
}

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull +
         static_cast<uint64_t>(ts.tv_nsec);
}

void WriteMarker(const char* marker) {
  // Fails with EBADF by design; only the strace log cares.
  if (write(-1, marker, strlen(marker)) < 0) return;
}

void Relax(int* spins) {
  if (++*spins < 64) {
    __builtin_ia32_pause();
  } else {
    // The machine may have fewer free cores than threads: let others run.
    sched_yield();
    *spins = 0;
  }
}

[[noreturn]] __attribute__((noinline, cold)) void OutOfMemory(size_t size) {
  fprintf(stderr, "random_mixed: malloc(%zu) returned NULL\n", size);
  abort();
}

// One producer, one consumer. The consumer drains everything available every
// few iterations, so handing a block over costs a store and an index bump.
class SpscRing {
 public:
  static constexpr uint64_t kCapacity = 4096;  // a power of two

  bool TryPush(void* p) {  // producer only
    const uint64_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - cached_head_ == kCapacity) {
      cached_head_ = head_.load(std::memory_order_acquire);
      if (tail - cached_head_ == kCapacity) return false;
    }
    items_[tail & (kCapacity - 1)] = p;
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }

  template <typename Fn>
  void DrainAll(Fn fn) {  // consumer only
    const uint64_t head = head_.load(std::memory_order_relaxed);
    const uint64_t tail = tail_.load(std::memory_order_acquire);
    if (head == tail) return;
    for (uint64_t i = head; i != tail; ++i) fn(items_[i & (kCapacity - 1)]);
    head_.store(tail, std::memory_order_release);
  }

 private:
  alignas(64) std::atomic<uint64_t> tail_{0};
  uint64_t cached_head_ = 0;  // the producer's last view of head_
  alignas(64) std::atomic<uint64_t> head_{0};
  alignas(64) void* items_[kCapacity];
};

// The process allocator: plain calls through the PLT, so LD_PRELOAD decides.
struct LibcAllocator {
  static void ThreadInit(size_t) {}
  static void ThreadExit() {}
  static void* Malloc(size_t size) { return malloc(size); }
  static void Free(void* p) { free(p); }
};

// The floor: a per-thread bump pointer through a small prefaulted window
// that wraps around; free does nothing. The window is small (1 MiB plus the
// largest block) so the floor stays a lower bound: it never misses caches
// more than a real allocator reusing memory would.
struct FloorArena {
  char* base = nullptr;
  size_t size = 0;
  size_t offset = 0;
};
thread_local FloorArena tl_floor_arena;

// noipa: each call stays a real call, like malloc's, and GCC may not use
// its knowledge that FloorFree does nothing to drop the calls.
__attribute__((noipa)) void* FloorMalloc(size_t size) {
  FloorArena& arena = tl_floor_arena;
  const size_t rounded = (size + 15) & ~size_t{15};
  if (arena.offset + rounded > arena.size) arena.offset = 0;
  void* p = arena.base + arena.offset;
  arena.offset += rounded;
  return p;
}

__attribute__((noipa)) void FloorFree(void*) {}

struct FloorAllocator {
  static constexpr size_t kWindow = size_t{1} << 20;

  static void ThreadInit(size_t max_size) {
    FloorArena& arena = tl_floor_arena;
    arena.size = kWindow + ((max_size + 4095) & ~size_t{4095});
    void* base = mmap(nullptr, arena.size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) OutOfMemory(arena.size);
    memset(base, 0, arena.size);  // fault it in before the timed loop
    arena.base = static_cast<char*>(base);
    arena.offset = 0;
  }
  static void ThreadExit() {
    FloorArena& arena = tl_floor_arena;
    munmap(arena.base, arena.size);
    arena = FloorArena();
  }
  static void* Malloc(size_t size) { return FloorMalloc(size); }
  static void Free(void* p) { FloorFree(p); }
};

struct alignas(64) Worker {
  explicit Worker(uint64_t seed) : rng(seed) {}
  SplitMix64 rng;
  std::vector<void*> slots;
  SpscRing* inbox = nullptr;   // blocks another thread hands to this one
  SpscRing* outbox = nullptr;  // blocks this thread hands on
  WorkloadResult counts;       // of the timed loop
};

struct Shared {
  explicit Shared(const WorkloadParams& p) : params(p), sampler(p.bands) {}
  const WorkloadParams& params;
  SizeSampler sampler;
  uint32_t remote_threshold = 0;  // RemoteBits below this go remote
  std::vector<std::unique_ptr<SpscRing>> rings;
  std::vector<std::unique_ptr<Worker>> workers;
  std::atomic<int> arrived{0};
  uint64_t start_ns = 0;
  uint64_t end_ns = 0;
};

// This thread's share of `total` iterations.
uint64_t ShareOf(uint64_t total, int threads, int index) {
  const uint64_t n = static_cast<uint64_t>(threads);
  return total / n + (static_cast<uint64_t>(index) < total % n ? 1 : 0);
}

template <typename Alloc>
void DrainInbox(Worker& w) {
  if (w.inbox != nullptr) w.inbox->DrainAll([](void* p) { Alloc::Free(p); });
}

// A barrier that keeps freeing handed-over blocks while it waits: a thread
// stuck on a full ring must always find its consumer draining.
template <typename Alloc>
void ArriveAndWait(Shared& shared, Worker& w, int phase) {
  shared.arrived.fetch_add(1, std::memory_order_acq_rel);
  const int target = phase * shared.params.threads;
  int spins = 0;
  while (shared.arrived.load(std::memory_order_acquire) < target) {
    DrainInbox<Alloc>(w);
    Relax(&spins);
  }
  // Everything pushed before the last thread arrived is visible now.
  DrainInbox<Alloc>(w);
}

template <typename Alloc, bool kRemote>
void RunIterations(const Shared& shared, Worker& w, uint64_t iters,
                   WorkloadResult* counts) {
  const uint32_t ws = shared.params.ws;
  const SizeSampler& sizes = shared.sampler;
  void** const slots = w.slots.data();
  uint64_t allocs = 0, frees = 0, remote_frees = 0, bytes = 0;
  for (uint64_t i = 0; i < iters; ++i) {
    const uint64_t r = w.rng.Next();
    void*& slot = slots[PickSlot(r, ws)];
    if (slot != nullptr) {
      if (kRemote && RemoteBits(r) < shared.remote_threshold) {
        int spins = 0;
        while (!w.outbox->TryPush(slot)) {
          DrainInbox<Alloc>(w);
          Relax(&spins);
        }
        ++remote_frees;
      } else {
        Alloc::Free(slot);
      }
      slot = nullptr;
      ++frees;
    } else {
      const uint32_t size = sizes.Sample(r);
      char* p = static_cast<char*>(Alloc::Malloc(size));
      if (__builtin_expect(p == nullptr, 0)) OutOfMemory(size);
      p[0] = static_cast<char>(r);
      p[size - 1] = static_cast<char>(r >> 8);
      slot = p;
      ++allocs;
      bytes += size;
    }
    if (kRemote && (i & 15) == 0) DrainInbox<Alloc>(w);
  }
  counts->allocs += allocs;
  counts->frees += frees;
  counts->remote_frees += remote_frees;
  counts->bytes += bytes;
}

template <typename Alloc, bool kRemote>
void WorkerMain(Shared* shared_ptr, int index) {
  Shared& shared = *shared_ptr;
  Worker& w = *shared.workers[index];
  const int threads = shared.params.threads;
  Alloc::ThreadInit(shared.sampler.max_size());

  WorkloadResult warmup_counts;
  RunIterations<Alloc, kRemote>(
      shared, w, ShareOf(shared.params.warmup_iters, threads, index),
      &warmup_counts);
  ArriveAndWait<Alloc>(shared, w, 1);
  if (index == 0) WriteMarker(kLoopBeginMarker);
  ArriveAndWait<Alloc>(shared, w, 2);
  if (index == 0) shared.start_ns = NowNs();

  RunIterations<Alloc, kRemote>(
      shared, w, ShareOf(shared.params.iters, threads, index), &w.counts);
  // Waits for the slowest thread and frees every block handed over.
  ArriveAndWait<Alloc>(shared, w, 3);
  if (index == 0) {
    shared.end_ns = NowNs();
    WriteMarker(kLoopEndMarker);
  }
  // No thread goes on (to free what it holds, to exit: glibc madvises an
  // exiting thread's stack) before the end marker: the strace pass would
  // count that as the loop's.
  ArriveAndWait<Alloc>(shared, w, 4);

  // Nobody hands blocks over any more: free what is left locally.
  for (void*& slot : w.slots) {
    Alloc::Free(slot);
    slot = nullptr;
  }
  Alloc::ThreadExit();
}

template <typename Alloc>
WorkloadResult Run(const WorkloadParams& params) {
  Shared shared(params);
  const int n = params.threads;
  const bool remote = n > 1 && params.remote_pct > 0;
  shared.remote_threshold =
      static_cast<uint32_t>(params.remote_pct) * 65536 / 100;
  // Worker seeds come from a generator, not seed + i: splitmix64 sequences
  // of nearby seeds overlap.
  SplitMix64 seeder(params.seed);
  for (int i = 0; i < n; ++i) {
    shared.workers.push_back(std::make_unique<Worker>(seeder.Next()));
    shared.workers.back()->slots.assign(params.ws, nullptr);
  }
  if (remote) {
    for (int i = 0; i < n; ++i) shared.rings.push_back(std::make_unique<SpscRing>());
    for (int i = 0; i < n; ++i) {
      shared.workers[i]->outbox = shared.rings[i].get();
      shared.workers[(i + 1) % n]->inbox = shared.rings[i].get();
    }
  }
  void (*const worker_main)(Shared*, int) =
      remote ? &WorkerMain<Alloc, true> : &WorkerMain<Alloc, false>;

  std::vector<std::thread> threads;
  for (int i = 1; i < n; ++i) threads.emplace_back(worker_main, &shared, i);
  worker_main(&shared, 0);  // the main thread is worker 0
  for (std::thread& t : threads) t.join();

  WorkloadResult result;
  result.seconds = static_cast<double>(shared.end_ns - shared.start_ns) / 1e9;
  for (const auto& w : shared.workers) {
    result.allocs += w->counts.allocs;
    result.frees += w->counts.frees;
    result.remote_frees += w->counts.remote_frees;
    result.bytes += w->counts.bytes;
  }
  return result;
}

}  // namespace

WorkloadResult RunWorkload(const WorkloadParams& params, LoopAllocator alloc) {
  return alloc == LoopAllocator::kFloor ? Run<FloorAllocator>(params)
                                        : Run<LibcAllocator>(params);
}

}  // namespace bench
