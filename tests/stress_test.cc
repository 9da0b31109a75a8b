// Randomized multi-threaded stress: random sizes from 0 to 1 MiB (skewed
// small), every allocation entry point, blocks freed by their own thread or
// handed to another through a shared exchange, short-lived threads joining
// in, contents pattern-filled and verified before every free.
//
// Runs ~10 s by default (CI), 120 s with HAKMEM_LONG=1
// (bazel test --config=long). A watchdog fails the test if any worker stops
// making progress (deadlock) instead of waiting for Bazel's timeout.
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <chrono>
#include <new>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace {

using hakmem_test::Check;
using hakmem_test::CheckSparse;
using hakmem_test::CheckSparsePrefix;
using hakmem_test::Fill;
using hakmem_test::FillSparse;
using hakmem_test::Rng;
using hakmem_test::RssBytes;
using Clock = std::chrono::steady_clock;

constexpr size_t kMiB = 1024 * 1024;

enum class Kind : uint8_t { kMalloc, kNewArray, kAlignedNew };

// One live block and how to check and release it.
struct Item {
  char* p = nullptr;
  size_t size = 0;
  uint64_t seed = 0;
  size_t alignment = 0;
  Kind kind = Kind::kMalloc;
};

bool Big(size_t size) { return size > 64 * 1024; }

void FillItem(const Item& it) {
  if (Big(it.size)) {
    FillSparse(it.p, it.size, it.seed);
  } else {
    Fill(it.p, it.size, it.seed);
  }
}

// Prints the first few problems, so a failure says what went wrong.
std::atomic<int> g_reports{0};
void ReportProblem(const char* what, const Item& it) {
  if (g_reports++ >= 10) return;
  fprintf(stderr, "stress: %s: block %p size %zu alignment %zu kind %d usable %zu\n", what,
          static_cast<void*>(it.p), it.size, it.alignment, static_cast<int>(it.kind),
          it.p != nullptr ? malloc_usable_size(it.p) : 0);
}

bool CheckItem(const Item& it) {
  if (it.alignment != 0 && reinterpret_cast<uintptr_t>(it.p) % it.alignment != 0) {
    ReportProblem("misaligned", it);
    return false;
  }
  if (malloc_usable_size(it.p) < it.size) {
    ReportProblem("usable size too small", it);
    return false;
  }
  if (!(Big(it.size) ? CheckSparse(it.p, it.size, it.seed) : Check(it.p, it.size, it.seed))) {
    ReportProblem("contents changed", it);
    return false;
  }
  return true;
}

void Release(const Item& it) {
  switch (it.kind) {
    case Kind::kMalloc: free(it.p); break;
    case Kind::kNewArray: delete[] it.p; break;
    case Kind::kAlignedNew:
      if (it.seed & 1) {
        ::operator delete(it.p, it.size, std::align_val_t{it.alignment});
      } else {
        ::operator delete(it.p, std::align_val_t{it.alignment});
      }
      break;
  }
}

size_t RandomSize(Rng& rng) {
  const uint64_t r = rng.Below(1000);
  if (r < 600) return rng.Range(0, 128);
  if (r < 850) return rng.Range(129, 1024);
  if (r < 950) return rng.Range(1025, 32768);
  if (r < 990) return rng.Range(32769, 256 * 1024);
  return rng.Range(256 * 1024 + 1, kMiB);
}

// Allocates a random block with a random entry point; false on failure.
bool NewItemImpl(Rng& rng, Item* it);
bool NewItem(Rng& rng, Item* it) {
  if (NewItemImpl(rng, it)) return true;
  ReportProblem("allocation failed or calloc block not zeroed", *it);
  return false;
}
bool NewItemImpl(Rng& rng, Item* it) {
  *it = Item();
  it->size = RandomSize(rng);
  it->seed = rng.Next();
  const uint64_t how = rng.Below(100);
  if (how < 65) {
    it->p = static_cast<char*>(malloc(it->size));
  } else if (how < 75) {
    it->p = static_cast<char*>(calloc(1, it->size));
    if (it->p == nullptr) return false;
    for (size_t i = 0; i < it->size; i += Big(it->size) ? 4096 : 1) {
      if (it->p[i] != 0) return false;
    }
  } else if (how < 80) {
    it->alignment = size_t{16} << rng.Below(9);  // 16 .. 4096
    it->p = static_cast<char*>(aligned_alloc(it->alignment, it->size));
  } else if (how < 85) {
    it->alignment = size_t{8} << rng.Below(14);  // 8 .. 64 KiB
    void* out = nullptr;
    if (posix_memalign(&out, it->alignment, it->size) != 0) return false;
    it->p = static_cast<char*>(out);
  } else if (how < 95) {
    it->kind = Kind::kNewArray;
    it->p = new char[it->size];
  } else {
    it->kind = Kind::kAlignedNew;
    it->alignment = size_t{32} << rng.Below(8);  // 32 .. 4096
    it->p = static_cast<char*>(::operator new(it->size, std::align_val_t{it->alignment}));
  }
  if (it->p == nullptr) return false;
  if (reinterpret_cast<uintptr_t>(it->p) % 16 != 0) return false;
  FillItem(*it);
  return true;
}

class Stress {
 public:
  static constexpr int kExchange = 512;

  Stress() {
    for (auto& e : exchange_) e.store(nullptr);
  }

  // A worker: local slots, plus the exchange shared by all threads.
  void Worker(int id, Clock::time_point deadline, std::atomic<uint64_t>* progress) {
    Rng rng(static_cast<uint64_t>(id) * 0x51ed27 + 1);
    std::vector<Item> slots(2048);
    uint64_t ops = 0;
    while (true) {
      if ((ops & 255) == 0) {
        progress->store(ops, std::memory_order_relaxed);
        if (Clock::now() >= deadline) break;
      }
      ops++;
      Item& it = slots[rng.Below(slots.size())];
      if (it.p == nullptr) {
        if (!NewItem(rng, &it)) {
          errors_++;
          it = Item();
        }
        continue;
      }
      if (!CheckItem(it)) {
        errors_++;
        it = Item();  // leak it: it is corrupt
        continue;
      }
      const uint64_t what = rng.Below(100);
      if (what < 25) {
        // Cross-thread: park it in the exchange, free whatever was there.
        Item* mine = new Item(it);
        Item* theirs = exchange_[rng.Below(kExchange)].exchange(mine);
        if (theirs != nullptr) {
          if (CheckItem(*theirs)) {
            Release(*theirs);
          } else {
            errors_++;
          }
          delete theirs;  // allocated by another thread
          cross_frees_++;
        }
      } else if (what < 35 && it.kind == Kind::kMalloc && it.alignment == 0) {
        // realloc, keeping the common prefix.
        const size_t n = RandomSize(rng) + 1;
        char* q = static_cast<char*>(realloc(it.p, n));
        if (q == nullptr) {
          errors_++;
          Release(it);
        } else {
          const size_t keep = std::min(n, it.size);
          const bool kept = Big(it.size) ? CheckSparsePrefix(q, it.size, keep, it.seed)
                                         : Check(q, keep, it.seed);
          if (!kept) {
            ReportProblem("realloc lost the contents", Item{q, keep, it.seed, 0, Kind::kMalloc});
            errors_++;
          }
          Item fresh{q, n, rng.Next(), 0, Kind::kMalloc};
          FillItem(fresh);
          it = fresh;
          continue;
        }
      } else {
        Release(it);
      }
      it = Item();
    }
    for (Item& it : slots) {
      if (it.p == nullptr) continue;
      if (CheckItem(it)) {
        Release(it);
      } else {
        errors_++;
      }
    }
    total_ops_ += ops;
  }

  // Short-lived threads, one after another, that allocate, park blocks in
  // the exchange and exit.
  void Spawner(Clock::time_point deadline, std::atomic<uint64_t>* progress) {
    uint64_t n = 0;
    while (Clock::now() < deadline) {
      std::thread([this, n] {
        Rng rng(n + 777);
        std::vector<Item> local(200);
        for (Item& it : local) {
          if (!NewItem(rng, &it)) errors_++;
        }
        for (size_t i = 0; i < local.size(); i++) {
          if (local[i].p == nullptr) continue;
          if (i % 4 == 0) {
            Item* theirs = exchange_[rng.Below(kExchange)].exchange(new Item(local[i]));
            if (theirs != nullptr) {
              if (CheckItem(*theirs)) Release(*theirs); else errors_++;
              delete theirs;
            }
          } else {
            if (CheckItem(local[i])) Release(local[i]); else errors_++;
          }
        }
      }).join();
      progress->store(++n, std::memory_order_relaxed);
      threads_spawned_++;
    }
  }

  void DrainExchange() {
    for (auto& e : exchange_) {
      Item* it = e.exchange(nullptr);
      if (it == nullptr) continue;
      if (CheckItem(*it)) Release(*it); else errors_++;
      delete it;
    }
  }

  std::atomic<long> errors_{0};
  std::atomic<uint64_t> total_ops_{0};
  std::atomic<uint64_t> cross_frees_{0};
  std::atomic<uint64_t> threads_spawned_{0};

 private:
  std::atomic<Item*> exchange_[kExchange];
};

TEST(Stress, RandomizedMultiThreaded) {
  const int seconds = hakmem_test::LongMode() ? 120 : 10;
  constexpr int kWorkers = 4;
  const auto deadline = Clock::now() + std::chrono::seconds(seconds);
  Stress stress;
  std::vector<std::atomic<uint64_t>> progress(kWorkers + 1);
  for (auto& p : progress) p.store(0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kWorkers; t++) {
    threads.emplace_back([&, t] { stress.Worker(t, deadline, &progress[t]); });
  }
  threads.emplace_back([&] { stress.Spawner(deadline, &progress[kWorkers]); });

  // Watchdog: every thread must make progress; RSS must stay bounded.
  std::vector<uint64_t> last(kWorkers + 1, UINT64_MAX);
  std::vector<int> stalled(kWorkers + 1, 0);
  size_t max_rss = 0;
  while (Clock::now() < deadline + std::chrono::seconds(1)) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    max_rss = std::max(max_rss, RssBytes());
    bool all_done = Clock::now() >= deadline;
    for (int t = 0; t <= kWorkers; t++) {
      const uint64_t now = progress[t].load();
      stalled[t] = now == last[t] ? stalled[t] + 1 : 0;
      last[t] = now;
      if (stalled[t] >= 30) {
        fprintf(stderr, "stress: thread %d made no progress for 30 s (deadlock?)\n", t);
        abort();
      }
    }
    if (all_done) break;
  }
  for (std::thread& t : threads) t.join();
  stress.DrainExchange();
  printf("stress: %d s, %llu ops, %llu cross-thread frees, %llu short-lived threads, "
         "max RSS %.0f MiB\n",
         seconds, static_cast<unsigned long long>(stress.total_ops_.load()),
         static_cast<unsigned long long>(stress.cross_frees_.load()),
         static_cast<unsigned long long>(stress.threads_spawned_.load()),
         static_cast<double>(max_rss) / kMiB);
  EXPECT_EQ(stress.errors_.load(), 0) << "corrupt blocks or failed allocations";
  EXPECT_GT(stress.total_ops_.load(), 100000u) << "the workers barely ran";
  EXPECT_GT(stress.cross_frees_.load(), 1000u);
  EXPECT_GT(stress.threads_spawned_.load(), 10u);
  // Live data is ~4 x 2048 blocks of ~12 KiB on average plus the exchange.
  EXPECT_LT(max_rss, size_t{1536} * kMiB) << "memory use runs away";
}

}  // namespace
