// fork() while other threads allocate: the child must be able to allocate
// and free (no lock left held by a thread that does not exist in the child),
// including blocks inherited from the parent, and must exit cleanly.
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/single_threaded.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace {

using hakmem_test::Check;
using hakmem_test::CheckSparse;
using hakmem_test::DescribeStatus;
using hakmem_test::Fill;
using hakmem_test::FillSparse;
using hakmem_test::Rng;
using hakmem_test::WaitWithTimeout;

constexpr size_t kMiB = 1024 * 1024;

// Background load: small and large blocks, new SuperSlabs, cache traffic,
// remote frees and thread creation, so that a fork lands inside every slow
// path sooner or later.
class Churn {
 public:
  explicit Churn(int threads) {
    for (int t = 0; t < threads; t++) {
      threads_.emplace_back([this, t] { Run(t); });
    }
  }
  ~Churn() {
    stop_ = true;
    for (std::thread& t : threads_) t.join();
  }
  long corrupt() const { return corrupt_.load(); }

 private:
  void Run(int t) {
    Rng rng(static_cast<uint64_t>(t) + 17);
    std::vector<std::pair<char*, size_t>> live(512);
    uint64_t n = 0;
    while (!stop_) {
      auto& [p, size] = live[rng.Below(live.size())];
      if (p != nullptr) {
        if (!(size > 65536 ? CheckSparse(p, size, size) : Check(p, size, size))) corrupt_++;
        free(p);
        p = nullptr;
        continue;
      }
      const uint64_t r = rng.Below(100);
      size = r < 80 ? rng.Range(1, 1024) : r < 97 ? rng.Range(1025, 32768)
                                                  : rng.Range(32769, 4 * kMiB);
      p = static_cast<char*>(malloc(size));
      if (p == nullptr) {
        corrupt_++;
        continue;
      }
      if (size > 65536) {
        FillSparse(p, size, size);
      } else {
        Fill(p, size, size);
      }
      if (++n % 4096 == 0) {
        // Short-lived helper thread freeing some of our blocks remotely.
        std::vector<char*> handoff;
        for (auto& [q, qs] : live) {
          if (q != nullptr && handoff.size() < 64 && qs <= 65536) {
            if (!Check(q, qs, qs)) corrupt_++;
            handoff.push_back(q);
            q = nullptr;
          }
        }
        std::thread([handoff] {
          for (char* q : handoff) free(q);
        }).join();
      }
    }
    for (auto& [p, size] : live) free(p);
  }

  std::atomic<bool> stop_{false};
  std::atomic<long> corrupt_{0};
  std::vector<std::thread> threads_;
};

// What every child does. Returns the exit code: 0 = fine.
int ChildWork(const std::vector<std::pair<char*, size_t>>& inherited, int iteration) {
  // Blocks from before the fork are intact and freeable.
  for (auto [p, size] : inherited) {
    if (!Check(p, size, size + 1)) return 10;
    free(p);
  }
  // Allocate, verify and free in every size range.
  Rng rng(static_cast<uint64_t>(iteration) + 99);
  std::vector<std::pair<char*, size_t>> blocks;
  for (int i = 0; i < 3000; i++) {
    const size_t size = i % 100 == 0 ? rng.Range(40000, 3 * kMiB) : rng.Range(0, 4000);
    char* p = static_cast<char*>(malloc(size));
    if (p == nullptr) return 11;
    Fill(p, size, size + 5);
    blocks.push_back({p, size});
  }
  for (auto [p, size] : blocks) {
    if (!Check(p, size, size + 5)) return 12;
    free(p);
  }
  // A thread in the child allocates too, and frees blocks of the main thread.
  char* shared = static_cast<char*>(malloc(1000));
  Fill(shared, 1000, 3);
  std::atomic<int> thread_status{0};
  std::thread t([&] {
    std::string s;
    for (int i = 0; i < 10000; i++) s += static_cast<char>('a' + i % 26);
    if (s.size() != 10000 || !Check(shared, 1000, 3)) thread_status = 1;
    free(shared);
  });
  t.join();
  if (thread_status != 0) return 13;
  return 0;
}

// A process that never started a thread forks from a signal handler (fork
// is async-signal-safe; crash reporters fork and exec so), each child only
// _exits, while this one thread allocates: the handler may interrupt it
// inside a slow path that holds an allocator lock. No deadlock (glibc's
// fork takes no malloc lock there either). Before session 22 the prepare
// handler took that lock again: 5 of 5 runs hung (a helper's hunt).
volatile sig_atomic_t g_handler_forks = 0;
void ForkFromASignalHandlerWhileAllocating() {
  if (!__libc_single_threaded) _exit(4);  // not the case under test
  signal(SIGUSR1, [](int) { _exit(3); });  // the watchdog: a hang
  sigevent event{};
  event.sigev_notify = SIGEV_SIGNAL;
  event.sigev_signo = SIGUSR1;
  timer_t watchdog;
  if (timer_create(CLOCK_MONOTONIC, &event, &watchdog) != 0) _exit(5);
  // A hang is 30 s without the loop below seeing a fork: re-armed at each.
  itimerspec in_30s{};
  in_30s.it_value.tv_sec = 30;
  timer_settime(watchdog, 0, &in_30s, nullptr);
  struct sigaction action{};
  action.sa_handler = [](int) {
    const pid_t child = fork();
    if (child == 0) _exit(0);
    if (child > 0) g_handler_forks = g_handler_forks + 1;
  };
  action.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &action, nullptr);
  signal(SIGCHLD, SIG_IGN);  // the children reap themselves
  // Not every 500 us: where a fork takes longer than the period (3-4 ms
  // on a slow VM), handlers run back to back and this thread never gets
  // through a malloc again (the watchdog took that for a hang).
  itimerval every_5ms{{0, 5000}, {0, 5000}};
  setitimer(ITIMER_REAL, &every_5ms, nullptr);
  // 1,000 forks, or as many as 20 s allow.
  const time_t give_up = time(nullptr) + 20;
  int seen = 0;
  while (g_handler_forks < 1000 && (seen < 100 || time(nullptr) < give_up)) {
    free(hakmem_test::Opaque(malloc(1 << 20)));  // the large cache's lock
    free(hakmem_test::Opaque(malloc(300 * 1024)));
    free(hakmem_test::Opaque(malloc(64)));
    if (g_handler_forks != seen) {
      seen = g_handler_forks;
      timer_settime(watchdog, 0, &in_30s, nullptr);
    }
  }
  itimerval off{};
  setitimer(ITIMER_REAL, &off, nullptr);
  _exit(0);
}

TEST(Fork, ASignalHandlerForksWhileTheOnlyThreadIsInsideMalloc) {
  // A process of its own, which has started no thread.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(ForkFromASignalHandlerWhileAllocating(), testing::ExitedWithCode(0), "");
}

TEST(Fork, RepeatedForksWhileThreadsAllocate) {
  const int kForks = hakmem_test::LongMode() ? 300 : 50;
  Churn churn(4);
  for (int i = 0; i < kForks; i++) {
    // Let the churn threads get going between forks.
    usleep(2000);
    std::vector<std::pair<char*, size_t>> inherited;
    for (size_t size : {size_t{24}, size_t{1000}, size_t{20000}, size_t{200000}}) {
      char* p = static_cast<char*>(malloc(size));
      ASSERT_NE(p, nullptr);
      Fill(p, size, size + 1);
      inherited.push_back({p, size});
    }
    fflush(nullptr);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0) << "fork failed";
    if (pid == 0) _exit(ChildWork(inherited, i));
    int status = 0;
    ASSERT_TRUE(WaitWithTimeout(pid, 30, &status))
        << "child of fork #" << i << " hung (killed after 30 s)";
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "child of fork #" << i << ": " << DescribeStatus(status);
    // The parent's copies are still fine too.
    for (auto [p, size] : inherited) {
      ASSERT_TRUE(Check(p, size, size + 1));
      free(p);
    }
  }
  EXPECT_EQ(churn.corrupt(), 0);
}

// The statistics calls take locks of their own: a fork while another thread
// is inside one must leave them usable in the child.
TEST(Fork, ChildCallsMallinfoWhileAThreadDidAtTheFork) {
  std::atomic<bool> stop{false};
  std::thread statistician([&] {
    while (!stop.load()) {
      const struct mallinfo2 info = mallinfo2();
      if (info.arena == 0 && info.hblkhd == 1) abort();  // keep the call
    }
  });
  for (int i = 0; i < 50; i++) {
    fflush(nullptr);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0) << "fork failed";
    if (pid == 0) {
      const struct mallinfo2 info = mallinfo2();
      FILE* null_stream = fopen("/dev/null", "w");
      const int written = null_stream != nullptr ? malloc_info(0, null_stream) : -1;
      _exit(info.arena > 0 && written == 0 ? 0 : 1);
    }
    int status = 0;
    ASSERT_TRUE(WaitWithTimeout(pid, 30, &status))
        << "child of fork #" << i << " hung in mallinfo2 (killed after 30 s)";
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "child of fork #" << i << ": " << DescribeStatus(status);
  }
  stop = true;
  statistician.join();
}

// Children that fork grandchildren, all allocating; every process exits
// through exit() (atexit handlers, stdio flush) rather than _exit().
TEST(Fork, NestedForksExitNormally) {
  fflush(nullptr);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    Churn churn(2);
    for (int i = 0; i < 10; i++) {
      fflush(nullptr);
      const pid_t grandchild = fork();
      if (grandchild < 0) _exit(20);
      if (grandchild == 0) {
        std::vector<std::pair<char*, size_t>> none;
        exit(ChildWork(none, i));
      }
      int status = 0;
      if (!WaitWithTimeout(grandchild, 30, &status)) _exit(21);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) _exit(22);
    }
    const long corrupt = churn.corrupt();
    exit(corrupt == 0 ? 0 : 23);
  }
  int status = 0;
  ASSERT_TRUE(WaitWithTimeout(pid, 120, &status)) << "child hung";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << DescribeStatus(status);
}

// posix_spawn-like fork + exec from a busy process: the exec'd program (this
// shell) starts with hakmem again under LD_PRELOAD, or glibc when linked.
TEST(Fork, ForkThenExecFromABusyProcess) {
  Churn churn(3);
  for (int i = 0; i < 20; i++) {
    fflush(nullptr);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      void* p = malloc(100);  // allocate between fork and exec
      free(p);
      execl("/bin/sh", "sh", "-c", "exit 7", static_cast<char*>(nullptr));
      _exit(127);
    }
    int status = 0;
    ASSERT_TRUE(WaitWithTimeout(pid, 30, &status)) << "exec'd child hung";
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 7) << DescribeStatus(status);
  }
  EXPECT_EQ(churn.corrupt(), 0);
}

// Runs `scenario` in a child process (so that a hang can't hang the test);
// true if it exited 0 within `timeout_sec`.
template <typename Scenario>
::testing::AssertionResult InAChildWithin(int timeout_sec, Scenario scenario) {
  fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return ::testing::AssertionFailure() << "fork failed";
  if (pid == 0) _exit(scenario());
  int status = 0;
  if (!WaitWithTimeout(pid, timeout_sec, &status)) {
    return ::testing::AssertionFailure() << "hung (killed after " << timeout_sec << " s)";
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return ::testing::AssertionFailure() << DescribeStatus(status);
  }
  return ::testing::AssertionSuccess();
}

// Forks (the child exits at once) for `seconds` of wall time; 0, or 3 if a
// fork failed, 4 if a child did not exit cleanly.
int ForkRepeatedlyFor(int seconds) {
  const time_t end = time(nullptr) + seconds;
  while (time(nullptr) < end) {
    const pid_t pid = fork();
    if (pid < 0) return 3;
    if (pid == 0) _exit(0);
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || status != 0) return 4;
  }
  return 0;
}

// Forks while one thread runs fflush(NULL) (stdio's list lock, then each
// FILE's) and another allocates holding a FILE's lock (as getline does):
// the forking thread must take stdio's list lock before the allocator's,
// as glibc's fork does before its own malloc's, or the three wait on each
// other for good.
TEST(Fork, ForksWhileAThreadFlushesStdioAndAnotherAllocatesHoldingAFile) {
  EXPECT_TRUE(InAChildWithin(20, [] {
    FILE* f = fopen("/dev/null", "w");
    if (f == nullptr) return 2;
    std::atomic<bool> stop{false};
    std::thread locker([&] {
      while (!stop.load()) {
        flockfile(f);
        for (int i = 0; i < 4; i++) free(hakmem_test::Opaque(malloc(kMiB)));  // large path
        funlockfile(f);
      }
    });
    std::thread flusher([&] {
      while (!stop.load()) fflush(nullptr);
    });
    const int failed = ForkRepeatedlyFor(4);  // (before the fix: stuck within 1-2 s)
    stop = true;
    locker.join();
    flusher.join();
    return failed;
  }));
}

// A library's fork handlers, registered from its constructor (here a
// constructor(101), which runs before hakmem's own in the linked build; a
// program's libraries' constructors run before a preloaded library's):
// its prepare handler locks the library's mutex, which a thread holds
// while it flushes stdio, opens and closes a file, or allocates through a
// slow path. hakmem's handlers must be registered before it (its prepare
// handler then runs last, taking stdio's list lock and its own after the
// library's mutex, as glibc's fork does), and the library's handlers may
// allocate while hakmem holds its locks.
pthread_mutex_t g_library_mutex = PTHREAD_MUTEX_INITIALIZER;
std::atomic<bool> g_library_handlers_on{false};
void AllocateInAForkHandler() {
  std::vector<void*> blocks;
  for (int i = 0; i < 3000; i++) blocks.push_back(malloc(static_cast<size_t>(16 + i % 2000)));
  blocks.push_back(malloc(3 * kMiB));
  for (void* p : blocks) free(p);
}
void LibraryPrepare() {
  if (!g_library_handlers_on) return;
  pthread_mutex_lock(&g_library_mutex);
  AllocateInAForkHandler();
}
void LibraryParent() {
  if (!g_library_handlers_on) return;
  AllocateInAForkHandler();
  pthread_mutex_unlock(&g_library_mutex);
}
void LibraryChild() {
  if (!g_library_handlers_on) return;
  AllocateInAForkHandler();
  pthread_mutex_init(&g_library_mutex, nullptr);
}
__attribute__((constructor(101))) void RegisterLibraryForkHandlers() {
  pthread_atfork(&LibraryPrepare, &LibraryParent, &LibraryChild);
}

TEST(Fork, ALibrarysForkHandlersLockWhatAllocatingThreadsHoldAndAllocate) {
  for (int what = 0; what < 3; what++) {
    EXPECT_TRUE(InAChildWithin(20, [what] {
      g_library_handlers_on = true;
      std::atomic<bool> stop{false};
      std::thread holder([&] {
        while (!stop.load()) {
          pthread_mutex_lock(&g_library_mutex);
          if (what == 0) {
            fflush(nullptr);
          } else if (what == 1) {
            if (FILE* f = fopen("/dev/null", "r")) fclose(f);
          } else {
            free(hakmem_test::Opaque(malloc(3 * kMiB)));
          }
          pthread_mutex_unlock(&g_library_mutex);
        }
      });
      const int failed = ForkRepeatedlyFor(3);  // (before the fix: stuck within a second)
      stop = true;
      holder.join();
      g_library_handlers_on = false;
      return failed;
    })) << "the holder " << (what == 0 ? "flushes stdio" : what == 1 ? "opens and closes a file" : "allocates 3 MiB");
  }
}

// A thread cancelled inside malloc_stats (its writes are cancellation
// points) must not leave the statistics lock held: later forks and
// mallinfo2 calls would wait for it for good.
TEST(Fork, AThreadCancelledInMallocStatsLeavesNoLockHeld) {
  EXPECT_TRUE(InAChildWithin(20, [] {
    if (freopen("/dev/null", "w", stderr) == nullptr) return 2;  // malloc_stats' output
    pthread_t t;
    pthread_create(
        &t, nullptr,
        [](void*) -> void* {
          for (;;) {
            malloc_stats();
            pthread_testcancel();
          }
          return nullptr;
        },
        nullptr);
    usleep(100 * 1000);
    pthread_cancel(t);
    pthread_join(t, nullptr);
    const pid_t pid = fork();
    if (pid == 0) _exit(0);
    if (pid < 0 || waitpid(pid, nullptr, 0) != pid) return 3;
    const struct mallinfo2 info = mallinfo2();
    return info.arena > 0 ? 0 : 4;
  }));
}

}  // namespace
