// Micro-benchmarks of the fast paths: hakmem's non-override API
// (hakmem::Malloc, ...) against glibc's malloc in the same process.
//
// Every benchmark is a template over an allocator policy, so both sides run
// identical code; names read "BM_MallocFree<Hakmem>/64".
//   bazel run //benchmarks:micro -- --benchmark_filter=MallocFree
#include <benchmark/benchmark.h>
#include <sched.h>
#include <stdlib.h>

#include <atomic>
#include <vector>

#include "hakmem/hakmem.h"

namespace {

struct Hakmem {
  static void* Malloc(size_t size) { return hakmem::Malloc(size); }
  static void Free(void* p) { hakmem::Free(p); }
  static void* Realloc(void* p, size_t size) { return hakmem::Realloc(p, size); }
  static void* AlignedAlloc(size_t alignment, size_t size) {
    return hakmem::AlignedAlloc(alignment, size);
  }
};

struct Glibc {
  static void* Malloc(size_t size) { return malloc(size); }
  static void Free(void* p) { free(p); }
  static void* Realloc(void* p, size_t size) { return realloc(p, size); }
  static void* AlignedAlloc(size_t alignment, size_t size) {
    return aligned_alloc(alignment, size);
  }
};

// Keeps each benchmark short: the point is the comparison, not precision.
constexpr double kMinTime = 0.2;

// malloc + free of one size: the thread-local pop and push.
template <typename A>
void BM_MallocFree(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    void* p = A::Malloc(size);
    // Escapes p, so the compiler can't drop the malloc/free pair.
    benchmark::DoNotOptimize(p);
    A::Free(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_TEMPLATE(BM_MallocFree, Hakmem)
    ->Arg(16)->Arg(64)->Arg(256)->Arg(1024)->Arg(4096)->Arg(32768)
    ->MinTime(kMinTime);
BENCHMARK_TEMPLATE(BM_MallocFree, Glibc)
    ->Arg(16)->Arg(64)->Arg(256)->Arg(1024)->Arg(4096)->Arg(32768)
    ->MinTime(kMinTime);

// 1000 mallocs, then 1000 frees: walks free lists past the cache of one
// block, and refills/drains slabs.
template <typename A>
void BM_BatchAllocFree(benchmark::State& state) {
  constexpr int kBatch = 1000;
  const size_t size = static_cast<size_t>(state.range(0));
  std::vector<void*> blocks(kBatch);
  for (auto _ : state) {
    for (void*& p : blocks) p = A::Malloc(size);
    benchmark::DoNotOptimize(blocks.data());
    for (void* p : blocks) A::Free(p);
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK_TEMPLATE(BM_BatchAllocFree, Hakmem)->Arg(64)->Arg(1024)->MinTime(kMinTime);
BENCHMARK_TEMPLATE(BM_BatchAllocFree, Glibc)->Arg(64)->Arg(1024)->MinTime(kMinTime);

// A buffer growing by doubling from 16 B to 64 KiB: crosses every size
// range, ends in the large path. Items = reallocs.
template <typename A>
void BM_ReallocGrowth(benchmark::State& state) {
  constexpr size_t kFirst = 16, kLast = 64 * 1024;
  int64_t reallocs = 0;
  for (auto _ : state) {
    char* p = static_cast<char*>(A::Malloc(kFirst));
    p[0] = 1;
    for (size_t size = 2 * kFirst; size <= kLast; size *= 2) {
      p = static_cast<char*>(A::Realloc(p, size));
      p[size - 1] = 1;  // the new tail is really usable
      ++reallocs;
    }
    benchmark::DoNotOptimize(p);
    A::Free(p);
  }
  state.SetItemsProcessed(reallocs);
}
BENCHMARK_TEMPLATE(BM_ReallocGrowth, Hakmem)->MinTime(kMinTime);
BENCHMARK_TEMPLATE(BM_ReallocGrowth, Glibc)->MinTime(kMinTime);

// aligned_alloc + free; args: alignment, size.
template <typename A>
void BM_AlignedAlloc(benchmark::State& state) {
  const size_t alignment = static_cast<size_t>(state.range(0));
  const size_t size = static_cast<size_t>(state.range(1));
  for (auto _ : state) {
    void* p = A::AlignedAlloc(alignment, size);
    benchmark::DoNotOptimize(p);
    A::Free(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_TEMPLATE(BM_AlignedAlloc, Hakmem)
    ->Args({64, 256})->Args({4096, 256})->Args({4096, 8192})->MinTime(kMinTime);
BENCHMARK_TEMPLATE(BM_AlignedAlloc, Glibc)
    ->Args({64, 256})->Args({4096, 256})->Args({4096, 8192})->MinTime(kMinTime);

// A bounded single-producer single-consumer queue of blocks.
class BlockQueue {
 public:
  static constexpr uint64_t kCapacity = 1024;

  bool TryPush(void* p) {
    const uint64_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - head_.load(std::memory_order_acquire) == kCapacity) return false;
    items_[tail % kCapacity] = p;
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }
  void* TryPop() {
    const uint64_t head = head_.load(std::memory_order_relaxed);
    if (head == tail_.load(std::memory_order_acquire)) return nullptr;
    void* p = items_[head % kCapacity];
    head_.store(head + 1, std::memory_order_release);
    return p;
  }

 private:
  alignas(64) std::atomic<uint64_t> head_{0};
  alignas(64) std::atomic<uint64_t> tail_{0};
  alignas(64) void* items_[kCapacity];
};

// Spins politely: the machine may have no spare core for the other side.
void Backoff(int* spins) {
  if (++*spins % 64 == 0) sched_yield();
}

// Thread 0 allocates, thread 1 frees what it receives: every free is a
// cross-thread ("remote") free. Both threads run the same number of
// iterations, each moving kBatch blocks, so the queue ends empty.
template <typename A>
void BM_CrossThreadFree(benchmark::State& state) {
  constexpr int kBatch = 64;
  static BlockQueue queue;
  const bool producer = state.thread_index() == 0;
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) {
      int spins = 0;
      if (producer) {
        void* p = A::Malloc(64);
        while (!queue.TryPush(p)) Backoff(&spins);
      } else {
        void* p;
        while ((p = queue.TryPop()) == nullptr) Backoff(&spins);
        A::Free(p);
      }
    }
  }
  // Both threads count the blocks they handled: Google Benchmark sums items
  // and thread times, so the rate reads as blocks moved per second.
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK_TEMPLATE(BM_CrossThreadFree, Hakmem)->Threads(2)->UseRealTime()->MinTime(kMinTime);
BENCHMARK_TEMPLATE(BM_CrossThreadFree, Glibc)->Threads(2)->UseRealTime()->MinTime(kMinTime);

}  // namespace
