#include "hakmem/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

#ifndef MADV_KEEPONFORK
#define MADV_KEEPONFORK 19  // (Linux 4.14; older headers)
#endif

namespace hakmem {
namespace platform {
namespace {

std::atomic<uint64_t> g_mmap_calls{0};
std::atomic<uint64_t> g_munmap_calls{0};
std::atomic<uint64_t> g_madvise_calls{0};
std::atomic<uint64_t> g_mremap_calls{0};
std::atomic<uint64_t> g_page_moves{0};
std::atomic<bool> g_page_moves_refused{false};
std::atomic<ClockFn> g_clock{nullptr};
std::atomic<LogSink> g_log_sink{nullptr};

// Aligned regions are placed by hint in the preferred window, so that one
// mmap usually returns an aligned address, no trimming munmaps are needed,
// and the registry's fast table covers them.
constexpr uintptr_t kHintStart = kPreferredMapStart;
constexpr uintptr_t kHintEnd = kPreferredMapEnd;
std::atomic<uintptr_t> g_next_hint{kHintStart};
// RandomizeMapHints starts the hints at one of this many 2 MiB steps into
// the first half of the window: 19 bits of entropy, as a heap base should
// have (glibc's, jemalloc's, mimalloc's vary from run to run).
constexpr int kHintSlotShift = 21;
constexpr uintptr_t kHintRandomSlots = ((kHintEnd - kHintStart) / 2) >> kHintSlotShift;
std::atomic<bool> g_use_hints{true};
HAKMEM_STARTUP_DATA std::atomic<MapFailureHandler> g_map_failure_handler{nullptr};

// Regions are mapped without MAP_NORESERVE: under the default overcommit
// heuristic the kernel then refuses a mapping bigger than memory and swap
// together, and malloc(1 TiB) returns NULL as glibc's does, instead of a
// pointer whose use gets the process killed.
void* RawMap(void* hint, size_t size, int extra_flags) {
  g_mmap_calls.fetch_add(1, std::memory_order_relaxed);
  void* p = mmap(hint, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

void* MapAlignedOnce(size_t size, size_t alignment, int extra_flags = 0) {
  const size_t span = (size + alignment - 1) & ~(alignment - 1);
  if (g_use_hints.load(std::memory_order_relaxed) && span + alignment <= kHintEnd - kHintStart) {
    // The hint aligned too: hints advance in 2 MiB steps from a random
    // start, and a 1 GiB extent chunk at an unaligned hint went where the
    // kernel put its over-mapping, outside the window (a review, session
    // 29: the registry's fast table missed it, and other mappings could
    // land in the holes mlockall leaves).
    const auto align_up = [alignment](uintptr_t at) { return (at + alignment - 1) & ~(alignment - 1); };
    uintptr_t next = g_next_hint.load(std::memory_order_relaxed), hint;
    do {
      hint = align_up(next);
      // Wrap around: regions unmapped earlier left holes the hints can reuse.
      if (hint + span > kHintEnd) hint = align_up(kHintStart);
    } while (!g_next_hint.compare_exchange_weak(next, hint + span, std::memory_order_relaxed));
    void* p = RawMap(reinterpret_cast<void*>(hint), size, extra_flags);
    if (p == nullptr) return nullptr;
    if ((reinterpret_cast<uintptr_t>(p) & (alignment - 1)) == 0) return p;
    // The hint was taken: over-map and trim to the alignment.
    Unmap(p, size);
  }
  const size_t padded = size + alignment;
  char* raw = static_cast<char*>(RawMap(nullptr, padded, extra_flags));
  if (raw == nullptr) return nullptr;
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + alignment - 1) & ~(alignment - 1);
  const size_t head = aligned - start;
  const size_t tail = padded - head - size;
  if (head != 0) Unmap(raw, head);
  if (tail != 0) Unmap(reinterpret_cast<void*>(aligned + size), tail);
  return reinterpret_cast<void*>(aligned);
}

}  // namespace

__thread bool tl_holds_fork_locks __attribute__((tls_model("initial-exec"))) = false;

void SetMapFailureHandler(MapFailureHandler handler) {
  g_map_failure_handler.store(handler, std::memory_order_relaxed);
}

void SetMapHintsForTesting(bool enabled) {
  g_use_hints.store(enabled, std::memory_order_relaxed);
}

void* MapAligned(size_t size, size_t alignment) {
  void* p = MapAlignedOnce(size, alignment);
  if (p != nullptr) return p;
  // Out of address space or memory: purge the caches and try once more.
  MapFailureHandler handler = g_map_failure_handler.load(std::memory_order_relaxed);
  if (handler == nullptr) return nullptr;
  handler();
  return MapAlignedOnce(size, alignment);
}

namespace {
// Address space mapped ahead: whole 2 MiB steps of it may back small
// regions or blocks, so no huge page for them (under THP "always", a 300 KB
// block's header faulted in 2 MiB: 50 blocks 6 -> 108 MiB RSS, a review,
// session 23).
void NoHugePages(void* p, size_t size) {
  g_madvise_calls.fetch_add(1, std::memory_order_relaxed);
  const int saved = errno;
  madvise(p, size, MADV_NOHUGEPAGE);
  errno = saved;
}
}  // namespace

void* MapAhead(size_t size, size_t alignment) {
  void* p = MapAlignedOnce(size, alignment, MAP_NORESERVE);
  if (p == nullptr) return nullptr;
  NoHugePages(p, size);
  return p;
}

namespace {
uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
}  // namespace

void RandomWords(uint64_t* words, size_t count) {
  const size_t bytes = count * sizeof(uint64_t);
  const int saved = errno;
  const long got = syscall(SYS_getrandom, words, bytes, GRND_NONBLOCK);
  errno = saved;
  if (got == static_cast<long>(bytes)) return;
  // No getrandom (an old kernel, a filter, the pool not ready at boot):
  // AT_RANDOM, mixed one way with addresses ASLR placed, the clock and the
  // word's index.
  const uint64_t* at_random = reinterpret_cast<const uint64_t*>(getauxval(AT_RANDOM));
  uint64_t seed[2] = {0, 0};
  if (at_random != nullptr) memcpy(seed, at_random, sizeof(seed));
  for (size_t i = 0; i < count; i++) {
    uint64_t random = Mix(reinterpret_cast<uintptr_t>(&seed) ^ NowNs() ^ (uint64_t{i} << 56));
    if (at_random != nullptr) {
      random = Mix(random ^ seed[0]) + Mix(seed[1] ^ reinterpret_cast<uintptr_t>(&RandomWords) ^ i);
    }
    words[i] = Mix(random);
  }
}

namespace {
std::atomic<bool> g_freed_since_oom_trim{false};
}  // namespace

void NoteMemoryFreed() {
  if (!g_freed_since_oom_trim.load(std::memory_order_relaxed)) {
    g_freed_since_oom_trim.store(true, std::memory_order_relaxed);
  }
}

bool TakeMemoryFreedNote() {
  return g_freed_since_oom_trim.exchange(false, std::memory_order_relaxed);
}

void RandomizeMapHints(uint64_t random_bits) {
  const uintptr_t offset = (random_bits % kHintRandomSlots) << kHintSlotShift;
  g_next_hint.store(kHintStart + offset, std::memory_order_relaxed);
}

void* MapSparse(size_t size) { return RawMap(nullptr, size, MAP_NORESERVE); }

namespace {
void ForgetMovedInto(const void* p, size_t size);  // (page moves, below)
}  // namespace

void Unmap(void* p, size_t size) {
  g_munmap_calls.fetch_add(1, std::memory_order_relaxed);
  const int saved = errno;
  // Refused (splitting a mapping at vm.max_map_count: ENOMEM): the pages
  // go back all the same, so that only address space is lost.
  if (munmap(p, size) != 0) {
    DiscardPages(p, size);
  } else {
    ForgetMovedInto(p, size);
  }
  errno = saved;
}

bool TryUnmap(void* p, size_t size) {
  g_munmap_calls.fetch_add(1, std::memory_order_relaxed);
  const int saved = errno;
  const bool done = munmap(p, size) == 0;
  errno = saved;
  if (done) ForgetMovedInto(p, size);
  return done;
}

bool DiscardPages(void* p, size_t size) {
  g_madvise_calls.fetch_add(1, std::memory_order_relaxed);
  // MADV_DONTNEED: pages read as zero afterwards, RSS drops at once.
  int saved = errno;
  const bool given_back = madvise(p, size, MADV_DONTNEED) == 0;
  errno = saved;
  return given_back;
}

bool MapAheadAt(void* at, size_t size) {
  g_mmap_calls.fetch_add(1, std::memory_order_relaxed);
  const int saved = errno;
  void* q = mmap(at, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
  errno = saved;
  if (q == MAP_FAILED) return false;
  if (q != at) {  // (kernels before 4.17 take the flag as a hint)
    Unmap(q, size);
    return false;
  }
  NoHugePages(q, size);
  return true;
}

bool ReplacePages(void* p, size_t size) {
  g_mmap_calls.fetch_add(1, std::memory_order_relaxed);
  const int saved = errno;
  void* q = mmap(p, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
  bool replaced = q == p;
  if (replaced) {
    g_madvise_calls.fetch_add(1, std::memory_order_relaxed);
    madvise(p, size, MADV_NOHUGEPAGE);
  }
  errno = saved;
  return replaced;
}

uint64_t AddressSpaceLimitBytes() {
  const int saved = errno;  // (a seccomp filter may refuse the call)
  uint64_t smallest = UINT64_MAX;
  const int resources[] = {RLIMIT_AS, RLIMIT_DATA};
  for (int resource : resources) {
    struct rlimit limit;
    if (syscall(SYS_prlimit64, 0, resource, nullptr, &limit) == 0 &&
        limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < smallest) {
      smallest = limit.rlim_cur;
    }
  }
  errno = saved;
  return smallest;
}

namespace {
std::atomic<uint64_t> g_idle_budget{UINT64_MAX};
}  // namespace

uint64_t IdleMappingBudget() { return g_idle_budget.load(std::memory_order_relaxed); }

namespace {
std::atomic<bool> g_future_mappings_locked{false};
}  // namespace
bool FutureMappingsLocked() { return g_future_mappings_locked.load(std::memory_order_relaxed); }
void NoteFutureMappingsLocked(bool locked) {
  g_future_mappings_locked.store(locked, std::memory_order_relaxed);
}

void ReadIdleMappingBudget() {
  uint64_t budget = UINT64_MAX;
  const uint64_t limit = AddressSpaceLimitBytes();
  if (limit != UINT64_MAX) budget = limit / 16 > kMinIdleBudget ? limit / 16 : kMinIdleBudget;
  if (StrictOvercommit() && budget > kStrictOvercommitIdleBudget) {
    budget = kStrictOvercommitIdleBudget;
  }
  g_idle_budget.store(budget, std::memory_order_relaxed);
}

bool StrictOvercommit() {
  // 0: not known yet (or the read failed: asked again next time); 1: no;
  // 2: yes.
  HAKMEM_STARTUP_DATA static std::atomic<int> strict{0};
  int known = strict.load(std::memory_order_relaxed);
  if (known == 0) {
    const int saved = errno;
    char mode = 0;
    // Raw system calls: open and read are cancellation points and may be
    // interposed, and this runs inside the allocator, maybe under its locks.
    const long fd = syscall(SYS_openat, AT_FDCWD, "/proc/sys/vm/overcommit_memory",
                            O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      if (syscall(SYS_read, fd, &mode, 1) != 1) mode = 0;
      syscall(SYS_close, fd);
    }
    errno = saved;
    if (mode == 0) return false;
    known = mode == '2' ? 2 : 1;
    strict.store(known, std::memory_order_relaxed);
  }
  return known == 2;
}

int RemapInPlace(void* p, size_t old_size, size_t new_size) {
  g_mremap_calls.fetch_add(1, std::memory_order_relaxed);
  int saved = errno;
  void* q = mremap(p, old_size, new_size, 0);
  const int error = q == MAP_FAILED ? errno : 0;
  errno = saved;
  return error;
}

bool RemapTo(void* p, size_t old_size, size_t new_size, void* to) {
  g_mremap_calls.fetch_add(1, std::memory_order_relaxed);
  int saved = errno;
  void* q = mremap(p, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, to);
  errno = saved;
  return q == to;
}

namespace {
// Moves under way (MovePages): TurnPageMovesOff waits for them; and
// whether this thread is inside one (a signal handler that locks memory
// there must not wait for itself).
std::atomic<int> g_moves_in_flight{0};
__thread bool tl_moving __attribute__((tls_model("initial-exec"))) = false;

// The 2 MiB windows of the preferred window pages were ever moved into (a
// bit each, 128 KiB of address space, touched where set), and how many.
// A move splits the mapping it lands in, and the pieces stay apart (their
// pages came from elsewhere): a process may hold 65,530 mappings
// (vm.max_map_count), the program's own too. Callers move into the same
// range of a window each time ([X + 4 KiB, X + 2 MiB)), whose later moves
// replace that piece: at most 2 more mappings a window. A window unmapped
// whole is forgotten.
constexpr size_t kMoveWindowShift = 21;
constexpr size_t kMoveWindows = (kPreferredMapEnd - kPreferredMapStart) >> kMoveWindowShift;
HAKMEM_BIG_BSS uint64_t g_moved_into[kMoveWindows / 64];
std::atomic<uint64_t> g_moved_into_count{0};
constexpr uint64_t kMostMovedIntoWindows = 8192;  // 16 GiB of windows, 16K mappings

bool InPreferredWindow(uintptr_t at) { return at >= kPreferredMapStart && at < kPreferredMapEnd; }
// The window of `at` (in the preferred window).
size_t MoveWindowOf(uintptr_t at) { return (at - kPreferredMapStart) >> kMoveWindowShift; }

bool MovedInto(size_t w) {
  return (__atomic_load_n(&g_moved_into[w / 64], __ATOMIC_RELAXED) >> (w % 64) & 1) != 0;
}

// Whether pages may move to `to`, counting its window if new.
bool TakeMoveWindow(const void* to) {
  const uintptr_t at = reinterpret_cast<uintptr_t>(to);
  if (!InPreferredWindow(at)) return false;
  const size_t w = MoveWindowOf(at);
  if (MovedInto(w)) return true;
  if (g_moved_into_count.fetch_add(1, std::memory_order_relaxed) >= kMostMovedIntoWindows) {
    g_moved_into_count.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  const uint64_t bit = uint64_t{1} << (w % 64);
  if ((__atomic_fetch_or(&g_moved_into[w / 64], bit, __ATOMIC_RELAXED) & bit) != 0) {
    g_moved_into_count.fetch_sub(1, std::memory_order_relaxed);  // another thread's, counted
  }
  return true;
}

void ForgetMovedInto(const void* p, size_t size) {
  const uintptr_t begin = reinterpret_cast<uintptr_t>(p), end = begin + size;
  const uintptr_t window = uintptr_t{1} << kMoveWindowShift;
  for (uintptr_t at = (begin + window - 1) & ~(window - 1); at + window <= end; at += window) {
    if (!InPreferredWindow(at)) continue;
    const size_t w = MoveWindowOf(at);
    const uint64_t bit = uint64_t{1} << (w % 64);
    if ((__atomic_fetch_and(&g_moved_into[w / 64], ~bit, __ATOMIC_RELAXED) & bit) != 0) {
      g_moved_into_count.fetch_sub(1, std::memory_order_relaxed);
    }
  }
}
}  // namespace

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

bool PageMovesAvailable() {
  // (seq_cst: MovePages reads it after counting itself in flight, and
  // TurnPageMovesOff writes it before reading that count.)
  return !g_page_moves_refused.load(std::memory_order_seq_cst) && !MappingsScarce() &&
         !FutureMappingsLocked();
}

bool PageMovesMayReach(const void* to) {
  if (!PageMovesAvailable()) return false;
  const uintptr_t at = reinterpret_cast<uintptr_t>(to);
  if (!InPreferredWindow(at)) return false;
  return MovedInto(MoveWindowOf(at)) ||
         g_moved_into_count.load(std::memory_order_relaxed) < kMostMovedIntoWindows;
}

void TurnPageMovesOff() {
  g_page_moves_refused.store(true, std::memory_order_seq_cst);
  // A move that saw them on may still be under way: done when this returns
  // (but this thread's own, under a signal handler; and at most 100 ms, in
  // case a count was left by a fork no handler of hakmem's saw).
  const int own = tl_moving ? 1 : 0;
  const uint64_t until = NowNs() + 100 * 1000 * 1000;
  while (g_moves_in_flight.load(std::memory_order_seq_cst) > own && NowNs() < until) {
    sched_yield();
  }
}

void ForgetPageMovesInFlightAfterFork() {
  // The child has one thread; a move of another thread's was done or not
  // begun when the address space was copied (both hold the mmap lock).
  g_moves_in_flight.store(0, std::memory_order_relaxed);
}

bool MovePages(void* from, void* to, size_t size) {
  g_moves_in_flight.fetch_add(1, std::memory_order_seq_cst);
  if (!PageMovesAvailable() || !TakeMoveWindow(to)) {
    g_moves_in_flight.fetch_sub(1, std::memory_order_seq_cst);
    return false;
  }
  g_page_moves.fetch_add(1, std::memory_order_relaxed);
  const int saved = errno;
  // The pages take the source mapping's flags with them: a freed block the
  // program marked MADV_DONTFORK or MADV_WIPEONFORK would pass that on to
  // the blocks they land in (a fork child then faulted on them or read
  // zero; a review). Cleared first (no split where they are clear).
  g_madvise_calls.fetch_add(2, std::memory_order_relaxed);
  madvise(from, size, MADV_DOFORK);
  madvise(from, size, MADV_KEEPONFORK);
  tl_moving = true;
  void* q = mremap(from, size, size, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, to);
  const int error = errno;
  tl_moving = false;
  errno = saved;
  const bool moved = q == to;
  if (!moved) {
    // Refused: a kernel before 5.7 (EINVAL, nothing changed), or the
    // mapping count at its limit: no more moves. EFAULT: `from` is not one
    // mapping (a kernel before 6.17 moves only within one; numpy's madvise
    // of an array but its first page splits a window so): that source
    // can't move, others may. The kernel may have taken `to` down first:
    // fresh pages there then (MAP_FIXED_NOREPLACE fails harmlessly if `to`
    // is still mapped).
    if (error != EFAULT) g_page_moves_refused.store(true, std::memory_order_relaxed);
    MapAheadAt(to, size);
  }
  g_moves_in_flight.fetch_sub(1, std::memory_order_seq_cst);
  return moved;
}

void UnmapReservationAfterFailedRemap(void* to, size_t size) {
  // MAP_FIXED_NOREPLACE: succeeds only if nothing is mapped there now (the
  // kernel took the reservation down before failing), and then the range
  // is ours again to unmap. If something is there, it is our reservation
  // (the kernel refused before taking it down: RLIMIT_AS counted it with
  // the growth, or the map count was at its limit) or another thread's new
  // mapping. In the preferred window it is ours: the kernel places nothing
  // there unasked (it maps top-down from near 128 TiB), and hakmem's own
  // hints never come back to an address until they wrap after 2 TiB. Left
  // mapped, it leaked for good (realloc 200 -> 350 MiB under RLIMIT_AS:
  // NULL, and 357 MiB mapped with nothing live; FINDINGS F29).
  g_mmap_calls.fetch_add(1, std::memory_order_relaxed);
  int saved = errno;
  void* q = mmap(to, size, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
  const bool taken = q == MAP_FAILED && errno == EEXIST;
  errno = saved;
  const uintptr_t at = reinterpret_cast<uintptr_t>(to);
  if (taken && at >= kPreferredMapStart && at + size <= kPreferredMapEnd) {
    Unmap(to, size);
    return;
  }
  if (q == MAP_FAILED) return;
  // (Kernels before 4.17 take the flag as a hint and may map elsewhere.)
  Unmap(q, size);
}

SyscallCounts GetSyscallCounts() {
  return SyscallCounts{g_mmap_calls.load(std::memory_order_relaxed),
                       g_munmap_calls.load(std::memory_order_relaxed),
                       g_madvise_calls.load(std::memory_order_relaxed),
                       g_mremap_calls.load(std::memory_order_relaxed),
                       g_page_moves.load(std::memory_order_relaxed)};
}

uint64_t NowNs() {
  ClockFn fake = g_clock.load(std::memory_order_relaxed);
  if (fake != nullptr) return fake();
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u +
         static_cast<uint64_t>(ts.tv_nsec);
}

void SetClockForTesting(ClockFn clock) {
  g_clock.store(clock, std::memory_order_relaxed);
}

LogLine& LogLine::Str(const char* s) {
  while (*s != '\0' && len_ < sizeof(buf_)) buf_[len_++] = *s++;
  return *this;
}

LogLine& LogLine::Dec(uint64_t v) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0 && len_ < sizeof(buf_)) buf_[len_++] = tmp[--n];
  return *this;
}

LogLine& LogLine::Hex(uint64_t v) {
  static const char kDigits[] = "0123456789abcdef";
  char tmp[16];
  int n = 0;
  do {
    tmp[n++] = kDigits[v & 15];
    v >>= 4;
  } while (v != 0);
  Str("0x");
  while (n > 0 && len_ < sizeof(buf_)) buf_[len_++] = tmp[--n];
  return *this;
}

void LogLine::WriteToStderr() {
  // A line cut short still ends as one, and says it was cut.
  if (len_ == sizeof(buf_) && buf_[len_ - 1] != '\n') {
    __builtin_memcpy(buf_ + len_ - 4, "...\n", 4);
  }
  EmitLog(buf_, len_);
}

void SetLogSinkForTesting(LogSink sink) {
  g_log_sink.store(sink, std::memory_order_relaxed);
}

void EmitLog(const char* data, size_t len) {
  LogSink sink = g_log_sink.load(std::memory_order_relaxed);
  if (sink != nullptr) {
    sink(data, len);
    return;
  }
  int saved = errno;
  while (len > 0) {
    // The raw call: write() is a cancellation point, and a thread with a
    // cancel pending was cancelled inside a misuse report, before its
    // abort, with an allocator lock perhaps held (a helper's hunt,
    // session 22). glibc writes its own reports the same way.
    const ssize_t n = syscall(SYS_write, STDERR_FILENO, data, len);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      break;
    }
    data += n;
    len -= static_cast<size_t>(n);
  }
  errno = saved;
}

void ReportAndAbort(const char* what, const void* p, const char* why) {
  LogLine line;
  line.Str("hakmem: ").Str(what).Str(" ").Ptr(p).Str(": ").Str(why).Str("\n");
  line.WriteToStderr();
  abort();
}

}  // namespace platform
}  // namespace hakmem
