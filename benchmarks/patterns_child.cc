// patterns_child: allocation patterns that random_mixed's lanes leave out,
// timed under whatever malloc the process has (LD_PRELOAD decides; see
// patterns.cc, which runs this under each allocator side by side).
//
// Prints one line per pattern, "<name> <ns (us where the label says) per
// call or pair>", the best of
// three rounds. --scale=S multiplies every pattern's work (the test runs a
// small fraction).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <new>
#include <thread>
#include <utility>
#include <vector>

namespace {

double NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

// Pointers stored here escape, so the compiler keeps every allocation.
constexpr int kSlots = 64;
void* volatile g_slots[kSlots];

template <typename Body>
double BestOfThree(double calls, Body body) {
  double best = 1e300;
  for (int round = 0; round < 3; round++) {
    const double start = NowNs();
    body();
    const double ns = NowNs() - start;
    if (ns < best) best = ns;
  }
  return best / calls;
}

// A working set of 64 blocks, each replaced in turn: `release` frees a
// slot's block, `acquire(i)` allocates the next one. The common case of
// short-lived objects, through each entry point.
template <typename Release, typename Acquire>
double ReplaceInTurn(long n, Release release, Acquire acquire) {
  const double ns = BestOfThree(n, [&] {
    for (long i = 0; i < n; i++) {
      void* volatile& slot = g_slots[i & (kSlots - 1)];
      if (slot != nullptr) release(slot);
      slot = acquire(i);
    }
  });
  for (void* volatile& slot : g_slots) {
    if (slot != nullptr) release(slot);
    slot = nullptr;
  }
  return ns;
}

double NewDelete(long n) {
  return ReplaceInTurn(
      n, [](void* p) { ::operator delete(p); },
      [](long i) { return ::operator new(48 + static_cast<size_t>(i & 7) * 16); });
}

double SizedDelete(long n) {
  return ReplaceInTurn(
      n, [](void* p) { ::operator delete(p, 64); }, [](long) { return ::operator new(64); });
}

double AlignedAlloc(long n) {
  return ReplaceInTurn(n, free, [](long) { return aligned_alloc(64, 128); });
}

double Calloc(long n) {
  return ReplaceInTurn(
      n, free, [](long i) { return calloc(1, 16 + static_cast<size_t>(i & 63) * 16); });
}

// Larson's server loop, `n` rounds: a random one of the kLarsonLive
// blocks at `live` freed and replaced by one of 16-1024 B, with almost no
// other work in between (random_mixed's loop hides more of the
// allocator). `*x`: the xorshift state.
constexpr int kLarsonLive = 1000;
void ReplaceRandomBlocks(void** live, long n, uint64_t* x) {
  uint64_t r = *x;
  for (long i = 0; i < n; i++) {
    r ^= r << 13;
    r ^= r >> 7;
    r ^= r << 17;
    void*& slot = live[r % kLarsonLive];
    free(slot);
    char* p = static_cast<char*>(malloc(16 + (r >> 32) % 1009));
    p[0] = 1;
    slot = p;
  }
  *x = r;
}

// Larson's loop on one thread.
double ReplaceRandom(long n) {
  static void* live[kLarsonLive];
  uint64_t x = 88172645463325252ull;
  for (void*& p : live) p = malloc(16);
  const double ns = BestOfThree(n, [&] { ReplaceRandomBlocks(live, n, &x); });
  for (void*& p : live) free(p);
  return ns;
}

// Larson's benchmark itself: 4 threads, each with 1,000 live blocks of
// 16-1024 B that it replaces at random, are replaced by 4 new threads every
// round (10 rounds), which take over the old ones' blocks: a server whose
// worker threads come and go. Each new thread frees blocks another thread
// allocated (or, with an allocator that hands an exited thread's heap to
// the next thread, its own heap's). ns per free + malloc pair, all threads
// together (2 CPUs).
double LarsonChurn(long n) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 10;
  const long per_thread = n / (kThreads * kRounds) > 0 ? n / (kThreads * kRounds) : 1;
  std::vector<std::vector<void*>> live(kThreads, std::vector<void*>(kLarsonLive));
  for (std::vector<void*>& slots : live) {
    for (void*& p : slots) p = malloc(16);
  }
  std::vector<uint64_t> seeds(kThreads);
  for (int t = 0; t < kThreads; t++) seeds[t] = 88172645463325252ull + 7919 * t;
  const double ns = BestOfThree(static_cast<double>(per_thread) * kThreads * kRounds, [&] {
    for (int round = 0; round < kRounds; round++) {
      std::vector<std::thread> threads;
      for (int t = 0; t < kThreads; t++) {
        threads.emplace_back([&live, &seeds, t, per_thread] {
          ReplaceRandomBlocks(live[t].data(), per_thread, &seeds[t]);
        });
      }
      for (std::thread& thread : threads) thread.join();
    }
  });
  for (std::vector<void*>& slots : live) {
    for (void* p : slots) free(p);
  }
  return ns;
}

// Big tables calloc'd and used sparsely: 500 blocks of 200,000 B live, one
// byte of each written, then all freed; microseconds per calloc. The first
// round (in a child forked before any other pattern) gets memory fresh from
// the kernel, which needs no clearing (nor touching); the rounds after it
// (`*again`, the best of three) get what the first freed, unless the
// allocator gave it back meanwhile.
double CallocSparse(double* again) {
  constexpr int kTables = 500;
  constexpr size_t kSize = 200000;
  static char* tables[kTables];
  auto round = [] {
    const double start = NowNs();
    for (int i = 0; i < kTables; i++) {
      tables[i] = static_cast<char*>(calloc(1, kSize));
      tables[i][(static_cast<size_t>(i) * 4096) % kSize] = 1;
    }
    const double ns = NowNs() - start;
    for (char* t : tables) free(t);
    return ns / kTables / 1000;
  };
  const double first = round();
  *again = 1e300;
  for (int r = 0; r < 3; r++) {
    const double us = round();
    if (us < *again) *again = us;
  }
  return first;
}

// Runs `body(out)` in a forked child and copies its two results into `out`;
// false if the child failed.
template <typename Body>
bool InForkedChild(double out[2], Body body) {
  int fds[2];
  if (pipe(fds) != 0) return false;
  const pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    close(fds[0]);
    double result[2] = {0, 0};
    body(result);
    const bool written = write(fds[1], result, sizeof(result)) == sizeof(result);
    _exit(written ? 0 : 1);
  }
  close(fds[1]);
  const bool read_all = read(fds[0], out, 2 * sizeof(double)) == 2 * sizeof(double);
  close(fds[0]);
  int status = 0;
  return waitpid(pid, &status, 0) == pid && read_all && WIFEXITED(status) &&
         WEXITSTATUS(status) == 0;
}

// A buffer grown one byte at a time (a string being appended to).
double ReallocGrow(size_t from, size_t to, long buffers) {
  return BestOfThree(static_cast<double>(buffers) * static_cast<double>(to - from + 1),
                     [from, to, buffers] {
                       for (long b = 0; b < buffers; b++) {
                         char* p = static_cast<char*>(malloc(from));
                         for (size_t size = from; size <= to; size++) {
                           p = static_cast<char*>(realloc(p, size));
                           p[size - 1] = 1;
                         }
                         g_slots[0] = p;  // escapes
                         free(p);
                         g_slots[0] = nullptr;
                       }
                     });
}

// A big buffer doubled from 1 to 256 MiB, filled as it grows, with another
// block allocated between two growths (so it can't always grow in place);
// microseconds per realloc, the fill included.
double ReallocDouble(long series) {
  constexpr size_t kFrom = size_t{1} << 20, kTo = size_t{256} << 20;
  constexpr int kGrowths = 8;
  return BestOfThree(static_cast<double>(series) * kGrowths * 1000, [series] {
    for (long s = 0; s < series; s++) {
      char* p = static_cast<char*>(malloc(kFrom));
      memset(p, 1, kFrom);
      void* between[kGrowths];
      int n = 0;
      for (size_t size = kFrom; size < kTo; size *= 2) {
        between[n++] = malloc(size / 2 + 1);
        g_slots[0] = between[n - 1];  // escapes
        p = static_cast<char*>(realloc(p, size * 2));
        memset(p + size, 2, size);
      }
      g_slots[0] = p;
      free(p);
      for (int i = 0; i < n; i++) free(between[i]);
      g_slots[0] = nullptr;
    }
  });
}

// Who builds the structure that BuildAndTearDown frees: the thread that
// frees it, or a thread that exits before (a loader thread's structure,
// freed by main).
enum class Builder { kSameThread, kExitedThread };

// Builds a structure of `n` blocks of `size` bytes, touching each, then
// frees it all, in the order built or (`shuffled`) in a random order, as a
// hash table's or a graph's nodes go; prints malloc's and free's ns per
// call (free's only if another thread built it: its time includes starting
// the thread). (The shuffle is not timed. After the first round the
// mallocs take back what the frees gave, in their order.)
void BuildAndTearDown(const char* name, long n, size_t size, bool shuffled = false,
                      Builder builder = Builder::kSameThread) {
  std::vector<void*> blocks(static_cast<size_t>(n));
  double best_malloc = 1e300, best_free = 1e300;
  uint64_t x = 0x9e3779b97f4a7c15;  // xorshift state
  const auto build = [&blocks, size] {
    for (void*& p : blocks) {
      p = malloc(size);
      static_cast<char*>(p)[0] = 1;
    }
  };
  for (int round = 0; round < 3; round++) {
    const double start = NowNs();
    if (builder == Builder::kSameThread) {
      build();
    } else {
      std::thread(build).join();
    }
    const double built = NowNs();
    if (shuffled) {
      for (size_t i = blocks.size() - 1; i > 0; i--) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::swap(blocks[i], blocks[x % (i + 1)]);
      }
    }
    const double freeing = NowNs();
    for (void* p : blocks) free(p);
    const double done = NowNs();
    if (built - start < best_malloc) best_malloc = built - start;
    if (done - freeing < best_free) best_free = done - freeing;
  }
  if (builder == Builder::kSameThread) {
    printf("%s:malloc %.2f\n", name, best_malloc / static_cast<double>(n));
  }
  printf("%s:free %.2f\n", name, best_free / static_cast<double>(n));
}

// Builds `n` blocks of `size` bytes, then, three times: frees every other
// one (in allocation order) and allocates as many again, touching each. The
// mallocs take the blocks the frees gave back, gone cold meanwhile (the
// structure is bigger than the caches): a slab allocator walks the free
// lists it built, block by block. ns per malloc of the second half.
double RefillAfterFreeingHalf(long n, size_t size) {
  std::vector<void*> blocks(static_cast<size_t>(n));
  for (void*& p : blocks) {
    p = malloc(size);
    static_cast<char*>(p)[0] = 1;
  }
  double best = 1e300;
  for (int round = 0; round < 3; round++) {
    for (size_t i = 0; i < blocks.size(); i += 2) free(blocks[i]);
    const double start = NowNs();
    for (size_t i = 0; i < blocks.size(); i += 2) {
      blocks[i] = malloc(size);
      static_cast<char*>(blocks[i])[0] = 2;
    }
    const double took = NowNs() - start;
    if (took < best) best = took;
  }
  for (void* p : blocks) free(p);
  return best / static_cast<double>((n + 1) / 2);
}

// One thread allocates blocks of 16-1024 B and hands each through a ring to
// a second thread, which frees it (a server's request objects, a queue of
// messages): every free is another thread's block, and the allocator must
// get it back to where the producer allocates. ns per block, both threads
// running at once.
double ProducerConsumer(long n) {
  constexpr size_t kRing = 4096;  // a power of two
  return BestOfThree(static_cast<double>(n), [n] {
    std::vector<std::atomic<void*>> ring(kRing);
    for (std::atomic<void*>& slot : ring) slot.store(nullptr, std::memory_order_relaxed);
    std::thread consumer([&ring, n] {
      for (long i = 0; i < n; i++) {
        std::atomic<void*>& slot = ring[static_cast<size_t>(i) & (kRing - 1)];
        void* p;
        while ((p = slot.load(std::memory_order_acquire)) == nullptr) {
        }
        slot.store(nullptr, std::memory_order_relaxed);
        free(p);
      }
    });
    uint64_t x = 88172645463325252ull;
    for (long i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      char* p = static_cast<char*>(malloc(16 + (x >> 20) % 1009));
      p[0] = 1;
      std::atomic<void*>& slot = ring[static_cast<size_t>(i) & (kRing - 1)];
      while (slot.load(std::memory_order_acquire) != nullptr) {
      }
      slot.store(p, std::memory_order_release);
    }
    consumer.join();
  });
}

// Passive false sharing (Hoard's cache-scratch, as in mimalloc-bench): the
// main thread allocates one small object per thread, neighbours in memory,
// and hands one to each thread. Each thread, already allocating on its own
// (a warm cache), frees the object it was handed, then allocates an object
// of that size, writes it many times, frees it, over and over. An
// allocator that gives the handed-over block back to the thread that freed
// it leaves the threads writing to one cache line. ns per write of the
// object, per thread (the threads run at once on a machine with 2 CPUs).
double PassiveFalseSharing(long iterations) {
  constexpr int kThreads = 2;
  constexpr size_t kSize = 8;
  constexpr int kWrites = 1000;
  return BestOfThree(static_cast<double>(iterations) * kWrites, [iterations] {
    void* handed[kThreads];
    for (void*& p : handed) p = malloc(kSize);
    std::vector<std::thread> threads;
    for (void* object : handed) {
      threads.emplace_back([object, iterations] {
        for (int i = 0; i < 1000; i++) {
          void* volatile own = malloc(kSize);  // kept: volatile
          free(own);
        }
        free(object);
        for (long i = 0; i < iterations; i++) {
          volatile char* a = static_cast<char*>(malloc(kSize));
          for (int w = 0; w < kWrites; w++) {
            for (size_t k = 0; k < kSize; k++) a[k] = static_cast<char>(a[k] + 1);
          }
          free(const_cast<char*>(a));
        }
      });
    }
    for (std::thread& t : threads) t.join();
  });
}

}  // namespace

int main(int argc, char** argv) {
  double scale = 1;
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--scale=", 8) == 0) scale = atof(argv[i] + 8);
  }
  if (!(scale > 0 && scale <= 100)) {
    fprintf(stderr, "patterns_child: --scale must be in (0, 100]\n");
    return 2;
  }
  auto count = [scale](double base) {
    const long n = static_cast<long>(base * scale);
    return n < 1 ? 1L : n;
  };
  // In a child forked first: fresh memory, and what it frees stays out of
  // the later patterns' way.
  double sparse[2];
  if (!InForkedChild(sparse, [](double* out) { out[0] = CallocSparse(&out[1]); })) return 1;
  printf("calloc_sparse_fresh %.2f\n", sparse[0]);
  printf("calloc_sparse_again %.2f\n", sparse[1]);
  printf("new_delete %.2f\n", NewDelete(count(4e6)));
  printf("sized_delete %.2f\n", SizedDelete(count(4e6)));
  printf("aligned_alloc %.2f\n", AlignedAlloc(count(4e6)));
  printf("calloc %.2f\n", Calloc(count(4e6)));
  printf("replace_random %.2f\n", ReplaceRandom(count(1e7)));
  printf("realloc_small %.2f\n", ReallocGrow(1, 32768, count(40)));
  printf("realloc_large %.2f\n", ReallocGrow(40000, 240000, count(10)));
  printf("realloc_double %.2f\n", ReallocDouble(count(1)));
  BuildAndTearDown("teardown16", count(2e6), 16);
  BuildAndTearDown("teardown64", count(2e6), 64);
  BuildAndTearDown("teardown256", count(1e6), 256);
  BuildAndTearDown("shuffled64", count(2e6), 64, /*shuffled=*/true);
  BuildAndTearDown("shuffled256", count(1e6), 256, /*shuffled=*/true);
  printf("refill_half %.2f\n", RefillAfterFreeingHalf(count(1e6), 256));
  printf("producer_consumer %.2f\n", ProducerConsumer(count(2e6)));
  BuildAndTearDown("exited64", count(1e6), 64, /*shuffled=*/false, Builder::kExitedThread);
  BuildAndTearDown("exited64_shuffled", count(1e6), 64, /*shuffled=*/true,
                   Builder::kExitedThread);
  printf("false_sharing %.2f\n", PassiveFalseSharing(count(4000)));
  // In a child of its own: the threads it makes and drops leave allocator
  // state (glibc's arenas: its realloc and build rows ran 2x slower after).
  double churn[2];
  if (!InForkedChild(churn, [&count](double* out) { out[0] = LarsonChurn(count(8e6)); })) {
    return 1;
  }
  printf("larson_churn %.2f\n", churn[0]);
  return 0;
}
