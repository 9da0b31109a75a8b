// Threads: short-lived threads by the thousand, allocation from TLS
// destructors and atexit handlers, blocks freed by other threads in storms,
// and threads that only free.
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace {

using hakmem_test::Check;
using hakmem_test::CheckSparse;
using hakmem_test::Fill;
using hakmem_test::FillSparse;
using hakmem_test::Rng;
using hakmem_test::RssBytes;

constexpr size_t kMiB = 1024 * 1024;

// Runs fn(i) for i in [0, n) on fresh threads, `batch` at a time.
void RunThreadsInBatches(int n, int batch, const std::function<void(int)>& fn) {
  std::vector<std::thread> threads;
  for (int i = 0; i < n; i += batch) {
    threads.clear();
    for (int j = i; j < n && j < i + batch; j++) threads.emplace_back(fn, j);
    for (std::thread& t : threads) t.join();
  }
}

// Sizes touching many classes, small and large.
const size_t kSpreadSizes[] = {1,    16,   24,    40,    64,    100,   128,   200,
                               256,  320,  500,   512,   700,   1000,  1024,  1500,
                               2048, 3000, 4096,  6000,  8192,  12000, 16384, 24000,
                               32768, 100, 48,    80,    96,    160,   384,   768};

// A self-describing block: its size and seed live in the first 16 bytes, the
// pattern after them, so whoever frees it can verify it.
struct Header {
  size_t size;
  uint64_t seed;
};
void* NewTagged(size_t size, uint64_t seed) {
  if (size < sizeof(Header)) size = sizeof(Header);
  char* p = static_cast<char*>(malloc(size));
  if (p == nullptr) return nullptr;
  Header h{size, seed};
  memcpy(p, &h, sizeof(h));
  if (size > 64 * 1024) {
    FillSparse(p + sizeof(h), size - sizeof(h), seed);
  } else {
    Fill(p + sizeof(h), size - sizeof(h), seed);
  }
  return p;
}
// Verifies and frees; false if the block was corrupted.
bool FreeTagged(void* block) {
  char* p = static_cast<char*>(block);
  Header h;
  memcpy(&h, p, sizeof(h));
  bool ok = h.size >= sizeof(Header) && h.size < (size_t{1} << 30) &&
            malloc_usable_size(p) >= h.size;
  if (ok) {
    ok = h.size > 64 * 1024 ? CheckSparse(p + sizeof(h), h.size - sizeof(h), h.seed)
                            : Check(p + sizeof(h), h.size - sizeof(h), h.seed);
  }
  free(p);
  return ok;
}

// ---- many short-lived threads ----------------------------------------------------

TEST(Threads, TenThousandShortLivedThreadsKeepRssBounded) {
  constexpr int kThreads = 10000;
  constexpr int kKeep = 16;  // blocks each thread leaves for main to free
  std::vector<std::vector<void*>> handed_over(kThreads);
  std::atomic<int> corrupt{0};
  auto body = [&](int i) {
    Rng rng(static_cast<uint64_t>(i) + 1);
    void* blocks[sizeof(kSpreadSizes) / sizeof(kSpreadSizes[0]) + 1];
    int n = 0;
    for (size_t size : kSpreadSizes) blocks[n++] = NewTagged(size, rng.Next());
    blocks[n++] = NewTagged(100 * 1024 + static_cast<size_t>(i % 7) * 4096, rng.Next());
    for (int k = 0; k < n; k++) {
      if (blocks[k] == nullptr) {
        corrupt++;
        return;
      }
    }
    // Free most of them here, hand the rest over to a thread that outlives us.
    for (int k = kKeep; k < n; k++) {
      if (!FreeTagged(blocks[k])) corrupt++;
    }
    handed_over[i].assign(blocks, blocks + kKeep);
  };
  // Warm up: thread stacks cached by glibc, first SuperSlabs mapped.
  RunThreadsInBatches(200, 8, body);
  for (int i = 0; i < 200; i++) {
    for (void* p : handed_over[i]) {
      if (!FreeTagged(p)) corrupt++;
    }
    handed_over[i].clear();
  }
  const size_t rss_before = RssBytes();
  for (int start = 0; start < kThreads; start += 500) {
    RunThreadsInBatches(500, 8, [&](int i) { body(start + i); });
    // Blocks of threads that have exited, freed by main.
    for (int i = start; i < start + 500; i++) {
      for (void* p : handed_over[i]) {
        if (!FreeTagged(p)) corrupt++;
      }
      handed_over[i].clear();
      handed_over[i].shrink_to_fit();
    }
  }
  const size_t rss_after = RssBytes();
  EXPECT_EQ(corrupt.load(), 0);
  const double growth_mib =
      (static_cast<double>(rss_after) - static_cast<double>(rss_before)) / kMiB;
  printf("RSS %.1f MiB -> %.1f MiB after %d threads (growth %.1f MiB)\n",
         static_cast<double>(rss_before) / kMiB, static_cast<double>(rss_after) / kMiB,
         kThreads, growth_mib);
  EXPECT_LT(growth_mib, 200.0) << "thread caches or heaps of dead threads leak";
}

// ---- TLS destructors ---------------------------------------------------------

std::atomic<int> g_tls_ok{0};
std::atomic<int> g_tls_bad{0};

// A C++ thread_local whose constructor and destructor allocate. Its
// destructor runs at thread exit before any pthread key destructor.
struct ThreadLocalAllocator {
  ThreadLocalAllocator() {
    for (int i = 0; i < 20; i++) blocks.push_back(NewTagged(kSpreadSizes[i], 1000 + i));
    text = std::string(3000, 'q');
  }
  ~ThreadLocalAllocator() {
    bool ok = text == std::string(3000, 'q');
    for (void* b : blocks) ok &= FreeTagged(b);
    // Allocate afresh during thread teardown.
    std::vector<std::string> fresh;
    for (int i = 0; i < 50; i++) fresh.emplace_back(static_cast<size_t>(i * 37), 'z');
    for (int i = 0; i < 50; i++) ok &= fresh[i].size() == static_cast<size_t>(i * 37);
    void* big = NewTagged(300 * 1024, 7);
    ok &= big != nullptr && FreeTagged(big);
    (ok ? g_tls_ok : g_tls_bad)++;
  }
  std::vector<void*> blocks;
  std::string text;
};

TEST(Threads, AllocationInThreadLocalDestructors) {
  g_tls_ok = 0;
  g_tls_bad = 0;
  constexpr int kThreads = 1500;
  auto body = [](int) {
    thread_local ThreadLocalAllocator local;  // constructed here, per thread
    EXPECT_EQ(local.text.size(), 3000u);
  };
  RunThreadsInBatches(100, 4, body);  // warm-up
  const size_t rss_before = RssBytes();
  RunThreadsInBatches(kThreads, 4, body);
  const size_t rss_after = RssBytes();
  EXPECT_EQ(g_tls_bad.load(), 0);
  EXPECT_EQ(g_tls_ok.load(), kThreads + 100);
  const double growth_mib =
      (static_cast<double>(rss_after) - static_cast<double>(rss_before)) / kMiB;
  printf("RSS growth over %d threads with allocating thread_local destructors: %.1f MiB\n",
         kThreads, growth_mib);
  EXPECT_LT(growth_mib, 100.0) << "memory allocated in TLS destructors leaks";
}

// pthread_key destructor: verifies and frees the value; in the first rounds
// it also allocates scratch blocks and a new value and re-arms the key, so it
// runs again after hakmem's own thread-exit destructor. The last round only
// frees. (Allocating in the very last round: see tls_teardown_test.cc.)
pthread_key_t g_key;
std::atomic<int> g_key_destructor_calls{0};
struct KeyValue {
  int round;
  void* block;
};
void KeyDestructor(void* v) {
  g_key_destructor_calls++;
  KeyValue* kv = static_cast<KeyValue*>(v);
  bool ok = FreeTagged(kv->block);
  const int round = kv->round;
  free(kv);
  if (round + 1 < PTHREAD_DESTRUCTOR_ITERATIONS) {
    void* scratch[16];
    for (int i = 0; i < 16; i++) scratch[i] = NewTagged(kSpreadSizes[i + 8], 99 + i);
    for (void* s : scratch) ok &= s != nullptr && FreeTagged(s);
    KeyValue* next = static_cast<KeyValue*>(malloc(sizeof(KeyValue)));
    next->round = round + 1;
    next->block = NewTagged(500 + static_cast<size_t>(round) * 1000, 5);
    pthread_setspecific(g_key, next);
  }
  (ok ? g_tls_ok : g_tls_bad)++;
}

TEST(Threads, AllocationInPthreadKeyDestructors) {
  ASSERT_EQ(pthread_key_create(&g_key, &KeyDestructor), 0);
  g_tls_ok = 0;
  g_tls_bad = 0;
  g_key_destructor_calls = 0;
  constexpr int kThreads = 1500;
  auto body = [](int i) {
    KeyValue* kv = static_cast<KeyValue*>(malloc(sizeof(KeyValue)));
    kv->round = 0;
    kv->block = NewTagged(64 + static_cast<size_t>(i % 100), 3);
    pthread_setspecific(g_key, kv);
  };
  RunThreadsInBatches(100, 4, body);  // warm-up
  const size_t rss_before = RssBytes();
  RunThreadsInBatches(kThreads, 4, body);
  const size_t rss_after = RssBytes();
  EXPECT_EQ(g_tls_bad.load(), 0);
  EXPECT_EQ(g_key_destructor_calls.load(), PTHREAD_DESTRUCTOR_ITERATIONS * (kThreads + 100));
  EXPECT_EQ(g_tls_ok.load(), g_key_destructor_calls.load());
  const double growth_mib =
      (static_cast<double>(rss_after) - static_cast<double>(rss_before)) / kMiB;
  printf("RSS growth over %d threads with allocating pthread key destructors: %.1f MiB\n",
         kThreads, growth_mib);
  EXPECT_LT(growth_mib, 100.0) << "memory allocated in TLS destructors leaks";
  pthread_key_delete(g_key);
}

// ---- atexit handlers ---------------------------------------------------------
// Run in a child process (a death test that exits normally): exit() runs the
// handlers, the main thread's thread_local destructors and static
// destructors, which all allocate and free.

std::vector<void*>* g_exit_blocks = nullptr;
void ExitFail(const char* what) {
  fprintf(stderr, "atexit: FAILED (%s)\n", what);
  fflush(stderr);
  _exit(3);
}
void LateAtexitHandler() {  // registered from inside another handler
  void* blocks[100];
  for (int i = 0; i < 100; i++) blocks[i] = NewTagged(static_cast<size_t>(i) * 331 + 1, i);
  for (void* b : blocks) {
    if (b == nullptr || !FreeTagged(b)) ExitFail("late handler");
  }
  fprintf(stderr, "atexit: late handler ok\n");
}
void AtexitHandler() {
  // Blocks allocated before exit(), freed now.
  for (void* b : *g_exit_blocks) {
    if (!FreeTagged(b)) ExitFail("blocks from main");
  }
  delete g_exit_blocks;
  // Fresh allocations, small and large, C and C++.
  std::vector<std::string> strings;
  for (int i = 0; i < 2000; i++) strings.push_back(std::string(static_cast<size_t>(i % 500), 'x'));
  void* large = NewTagged(5 * kMiB, 11);
  if (large == nullptr || !FreeTagged(large)) ExitFail("large block");
  void* aligned = aligned_alloc(4096, 10000);
  if (aligned == nullptr || reinterpret_cast<uintptr_t>(aligned) % 4096 != 0) {
    ExitFail("aligned block");
  }
  free(aligned);
  atexit(&LateAtexitHandler);
  fprintf(stderr, "atexit: handler ok\n");
}
struct MainThreadLocal {
  ~MainThreadLocal() {
    void* b = NewTagged(777, 1);
    if (b == nullptr || !FreeTagged(b)) ExitFail("main thread_local destructor");
    fprintf(stderr, "atexit: thread_local destructor ok\n");
  }
};

TEST(Threads, AllocationInAtexitHandlers) {
  EXPECT_EXIT(
      {
        g_exit_blocks = new std::vector<void*>;
        for (int i = 0; i < 500; i++) {
          g_exit_blocks->push_back(NewTagged(static_cast<size_t>(i) * 97 % 40000 + 1, i));
        }
        thread_local MainThreadLocal main_thread_local;
        (void)&main_thread_local;
        atexit(&AtexitHandler);
        exit(0);
      },
      ::testing::ExitedWithCode(0),
      "atexit: thread_local destructor ok[^\n]*\n(.*\n)*atexit: handler ok\n(.*\n)*"
      "atexit: late handler ok");
}

// ---- cross-thread frees ------------------------------------------------------

// A blocking queue of block batches.
class BatchQueue {
 public:
  void Push(std::vector<void*> batch) {
    std::lock_guard<std::mutex> lock(mu_);
    q_.push_back(std::move(batch));
    cv_.notify_one();
  }
  // Empty batch = closed and drained.
  std::vector<void*> Pop() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !q_.empty() || closed_; });
    if (q_.empty()) return {};
    std::vector<void*> b = std::move(q_.front());
    q_.pop_front();
    return b;
  }
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::vector<void*>> q_;
  bool closed_ = false;
};

size_t StormSize(Rng& rng) {
  const uint64_t r = rng.Below(1000);
  if (r < 700) return rng.Range(1, 256);
  if (r < 950) return rng.Range(257, 4096);
  if (r < 995) return rng.Range(4097, 32768);
  return rng.Range(32769, 400000);
}

TEST(Threads, ProducersAndConsumersFreeEachOthersBlocks) {
  constexpr int kProducers = 3;
  constexpr int kConsumers = 3;
  const int kBatchesPerProducer = hakmem_test::LongMode() ? 4000 : 800;
  constexpr int kBatch = 128;
  BatchQueue queue;
  std::atomic<long> produced{0}, consumed{0}, corrupt{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kConsumers; c++) {
    threads.emplace_back([&] {
      for (;;) {
        std::vector<void*> batch = queue.Pop();
        if (batch.empty()) return;
        for (void* p : batch) {
          if (!FreeTagged(p)) corrupt++;
        }
        consumed += static_cast<long>(batch.size());
      }
    });
  }
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; p++) {
    producers.emplace_back([&, p] {
      Rng rng(static_cast<uint64_t>(p) * 7919 + 1);
      for (int b = 0; b < kBatchesPerProducer; b++) {
        std::vector<void*> batch;
        batch.reserve(kBatch);
        for (int i = 0; i < kBatch; i++) {
          void* block = NewTagged(StormSize(rng), rng.Next());
          if (block == nullptr) {
            corrupt++;
            continue;
          }
          batch.push_back(block);
        }
        produced += static_cast<long>(batch.size());
        queue.Push(std::move(batch));
      }
    });
  }
  for (std::thread& t : producers) t.join();
  queue.Close();
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(corrupt.load(), 0);
  EXPECT_EQ(produced.load(), long{kProducers} * kBatchesPerProducer * kBatch);
  EXPECT_EQ(consumed.load(), produced.load());
}

// Every thread allocates, hands its blocks to the next thread in a ring and
// frees what the previous one sent: all frees are remote, in bursts.
TEST(Threads, RingOfThreadsFreeingEachOthersBlocksInStorms) {
  constexpr int kThreads = 4;
  const int kRounds = hakmem_test::LongMode() ? 2000 : 300;
  constexpr int kBurst = 512;
  std::vector<BatchQueue> queues(kThreads);
  std::atomic<long> corrupt{0}, freed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      Rng rng(static_cast<uint64_t>(t) + 100);
      for (int r = 0; r < kRounds; r++) {
        std::vector<void*> burst;
        burst.reserve(kBurst);
        for (int i = 0; i < kBurst; i++) burst.push_back(NewTagged(StormSize(rng), rng.Next()));
        queues[(t + 1) % kThreads].Push(std::move(burst));
        std::vector<void*> incoming = queues[t].Pop();
        for (void* p : incoming) {
          if (p == nullptr || !FreeTagged(p)) corrupt++;
        }
        freed += static_cast<long>(incoming.size());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(corrupt.load(), 0);
  EXPECT_EQ(freed.load(), long{kThreads} * kRounds * kBurst);
}

// A thread that never allocates frees everything other threads allocated,
// some of them already dead; the memory must be reused, not pile up.
TEST(Threads, AThreadThatOnlyFrees) {
  constexpr int kBlocks = 150000;
  const int kRounds = 12;
  size_t rss_after_first = 0;
  for (int round = 0; round < kRounds; round++) {
    std::vector<void*> blocks(kBlocks);
    // Half from main, half from a thread that exits before the frees.
    Rng rng(static_cast<uint64_t>(round) + 1);
    for (int i = 0; i < kBlocks / 2; i++) blocks[i] = NewTagged(rng.Range(16, 600), rng.Next());
    std::thread([&] {
      Rng trng(static_cast<uint64_t>(round) + 1000);
      for (int i = kBlocks / 2; i < kBlocks; i++) {
        blocks[i] = NewTagged(trng.Range(16, 600), trng.Next());
      }
    }).join();
    std::atomic<long> corrupt{0};
    std::thread freer([&] {
      for (void* p : blocks) {
        if (p == nullptr || !FreeTagged(p)) corrupt++;
      }
    });
    freer.join();
    ASSERT_EQ(corrupt.load(), 0) << "round " << round;
    if (round == 0) rss_after_first = RssBytes();
  }
  const double growth_mib =
      (static_cast<double>(RssBytes()) - static_cast<double>(rss_after_first)) / kMiB;
  printf("RSS growth over %d rounds of remote-only frees: %.1f MiB\n", kRounds - 1,
         growth_mib);
  // One round is ~50 MiB of blocks; without reuse 11 more rounds add ~550.
  EXPECT_LT(growth_mib, 120.0) << "remotely freed blocks are not reused";
}

}  // namespace
