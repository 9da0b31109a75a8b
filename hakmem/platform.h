// Platform layer: the only place that talks to the kernel.
//
// mmap/munmap/madvise wrappers that count every call (the benchmarks report
// these counts), the clock used for cache TTLs (injectable for tests), and a
// tiny stderr writer that formats numbers without printf or malloc, so the
// allocator can report errors from inside malloc itself.
#ifndef HAKMEM_PLATFORM_H_
#define HAKMEM_PLATFORM_H_

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define HAKMEM_ALWAYS_INLINE inline __attribute__((always_inline))
#define HAKMEM_NOINLINE __attribute__((noinline))
// For the hot entry points (malloc, free, new, delete): each starts a cache
// line, so that where the linker happens to place them does not change how
// many lines (and decoded-instruction windows) the fast path spans. An
// unaligned placement measured 1.5-2% slower on the small lanes.
#define HAKMEM_HOT_ENTRY __attribute__((aligned(64)))
// For globals the fast paths read: with -fvisibility=hidden alone, GCC still
// reaches an extern declaration through the GOT in a shared object.
#define HAKMEM_HIDDEN __attribute__((visibility("hidden")))
// For big zero-initialized tables (the registry's, the static heaps): in
// the large-bss section, which the linker places after .bss, so that they
// do not spread the small globals a program's start touches over several
// pages (each a page fault: the start-up row). (Clang would emit the
// section with its zeros in the file: there, plain .bss.)
#if defined(__clang__)
#define HAKMEM_BIG_BSS
#else
#define HAKMEM_BIG_BSS __attribute__((section(".lbss")))
#endif
// For small globals a process's start writes (the init lock and flag, the
// config, the CPU count): in .data, whose page the loader writes anyway (it
// zeroes the start of .bss there), rather than on a .bss page each start
// faults in for them alone.
#define HAKMEM_STARTUP_DATA __attribute__((section(".data.hakmem_startup")))
#define HAKMEM_LIKELY(x) __builtin_expect(!!(x), 1)
#define HAKMEM_UNLIKELY(x) __builtin_expect(!!(x), 0)

namespace hakmem {
namespace platform {

// Asks for the line holding `p` to be read, now (any address: a hint never
// faults).
HAKMEM_ALWAYS_INLINE void Prefetch(const void* p) { __builtin_prefetch(p, 0, 3); }

// Asks for the line holding `p` in a state to write it, now: on these cores
// a store asks for its line only as it commits, behind the stores before
// it, so stores to cold lines in a row wait for them one at a time. Unlike
// a read prefetch, it also takes the line from another core's cache in one
// step (no shared copy to upgrade). PREFETCHW; x86 processors that predate
// it run it as a no-op (it is among the prefetch hints).
HAKMEM_ALWAYS_INLINE void PrefetchForWrite(const void* p) {
#if defined(__x86_64__)
  asm volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p, 1);
#endif
}

struct SyscallCounts {
  uint64_t mmap;
  uint64_t munmap;
  uint64_t madvise;
  uint64_t mremap;
  uint64_t page_moves;  // MovePages calls (mremap too, not counted there)
};

// Where MapAligned places regions when it can: a 2 TiB window that the kernel
// leaves alone under ASLR (it maps top-down from near 128 TiB). The
// registry's fast table covers exactly this window.
constexpr uintptr_t kPreferredMapStart = uintptr_t{32} << 40;  // 32 TiB
constexpr uintptr_t kPreferredMapEnd = uintptr_t{34} << 40;

// Maps `size` bytes (a multiple of the page size) aligned to `alignment` (a
// power of two >= page size). Tries an address hint in the preferred window
// first, so that the common case costs one mmap; falls back to over-mapping
// anywhere and trimming. Returns nullptr when the kernel refuses.
void* MapAligned(size_t size, size_t alignment);
// Address space mapped ahead of need, which the caller can do without: as
// MapAligned without the purge and retry, without reserving swap (not
// charged as commit under the default overcommit heuristic; untouched, it
// is address space only) and without transparent huge pages.
void* MapAhead(size_t size, size_t alignment);
// `count` words of random bits for secrets and placement, at start-up: from
// the kernel's pool (one getrandom for all), not AT_RANDOM alone: glibc
// takes its stack canary and pointer guard from those bytes, which a leaked
// key or heap address would then give away.
void RandomWords(uint64_t* words, size_t count);
inline uint64_t RandomBits() {
  uint64_t word;
  RandomWords(&word, 1);
  return word;
}
// Starts the hints at a random 2 MiB step into the window's first half, so
// that heap addresses differ from run to run (ASLR). At start-up, from
// RandomWords' bits (its own, not the free key's).
void RandomizeMapHints(uint64_t random_bits);
// Tests: with hints off, MapAligned leaves placement to the kernel (outside
// the preferred window), as when the window is taken.
void SetMapHintsForTesting(bool enabled);
// Called when the kernel refuses a mapping, before one retry: gives cached
// memory back (set by the router; see hakmem.cc).
using MapFailureHandler = void (*)();
void SetMapFailureHandler(MapFailureHandler handler);

// Maps `size` bytes anywhere, without reserving swap (for sparse tables).
void* MapSparse(size_t size);
void Unmap(void* p, size_t size);
// munmap alone, errno kept: false if the kernel refused (the mapping count
// at its limit), the pages then still there.
bool TryUnmap(void* p, size_t size);
// Gives pages back to the kernel but keeps the mapping (reads then see
// zeros). False if the kernel refused (locked pages: mlock, mlockall; a
// seccomp filter): the bytes stay as they were, so nothing may count on
// zeros then.
bool DiscardPages(void* p, size_t size);
// Maps `size` bytes at `at` as MapAhead would (no swap reserved, no huge
// pages), only if nothing is mapped there; false otherwise.
bool MapAheadAt(void* at, size_t size);
// Where DiscardPages was refused (pages the program locked and freed): maps
// fresh pages over them (MAP_FIXED, no swap reserved, no huge pages), which
// read zero and drop the lock. False if the kernel refused that too.
bool ReplacePages(void* p, size_t size);
// Whether the kernel accounts memory strictly (vm.overcommit_memory = 2),
// where a private writable mapping is charged whole, touched or not. Read
// once (no allocation), by ReadIdleMappingBudget at start-up.
bool StrictOvercommit();
// The address-space limit in bytes: the smaller of RLIMIT_AS and
// RLIMIT_DATA (which counts private writable mappings since Linux 4.7), or
// UINT64_MAX when neither applies. Address space is then what runs out, for
// the program's own mappings and thread stacks too. A raw call, not a
// cancellation point or an interposable symbol.
uint64_t AddressSpaceLimitBytes();
// How many bytes the allocator may keep mapped but unused (its caches of
// empty regions) when mappings are scarce: a sixteenth of the address-space
// limit (at least kMinIdleBudget), at most kStrictOvercommitIdleBudget under
// strict overcommit, where unused mappings are charged system-wide;
// UINT64_MAX otherwise. Other code (thread stacks, the program's own
// mmaps, dlopen) cannot make the caches give back what they hold: only
// hakmem's own failed mappings purge them.
uint64_t IdleMappingBudget();
constexpr uint64_t kMinIdleBudget = uint64_t{8} << 20;
constexpr uint64_t kStrictOvercommitIdleBudget = uint64_t{32} << 20;
// Whether the process locks its future mappings: its last mlockall
// (through libc, which hakmem interposes) had MCL_FUTURE without
// MCL_ONFAULT, and no munlockall or fork came since. Each new mapping is
// then faulted in and locked whole, however little of it is used.
bool FutureMappingsLocked();
void NoteFutureMappingsLocked(bool locked);
// Whether mappings are scarce (IdleMappingBudget binds, or every new
// mapping is locked whole): nothing is then kept or mapped ahead beyond
// what is needed (retained SuperSlabs, the large reserve, pre-warming,
// extent chunks).
inline bool MappingsScarce() {
  return IdleMappingBudget() != UINT64_MAX || FutureMappingsLocked();
}
// Reads the limits and the overcommit mode (system calls: prlimit64,
// openat). Only at the first allocation and when a mapping fails (a limit
// may have been set since): a process that sandboxes itself with seccomp
// after start-up (OpenSSH's pre-auth child kills on any call it does not
// list) must see no call from the allocator that glibc's does not make.
void ReadIdleMappingBudget();
// Tries to resize a mapping in place (never moves). Returns 0, or the errno
// of the failure: ENOMEM when the address space right after is taken (or
// memory is short); EFAULT when [p, p + old_size) is no longer one kernel
// mapping (the program changed part of it: madvise, mprotect, mlock).
int RemapInPlace(void* p, size_t old_size, size_t new_size);
// Moves the pages of [p, p + old_size) to `to`, resized to `new_size`,
// replacing what was mapped at [to, to + new_size) (a reservation of the
// caller's). No copy: the kernel moves the page tables. Returns false if it
// can't; [p, p + old_size) is then untouched, but the kernel may have
// unmapped the reservation already: give it back with
// UnmapReservationAfterFailedRemap, never with Unmap.
bool RemapTo(void* p, size_t old_size, size_t new_size, void* to);
// Moves the pages of [from, from + size) to [to, to + size), replacing what
// was mapped there, and leaves `from` mapped, reading zero as after
// DiscardPages (mremap with MREMAP_DONTUNMAP, Linux 5.7 on). The kernel
// moves the page tables: 2 MiB of resident pages cost about 10 us, where
// faulting them in fresh costs about 800 (tests/FINDINGS.md F60). False if
// moves are off (PageMovesAvailable) or the kernel refused; `from` is then
// untouched and `to` mapped (with its old pages, or fresh ones if the
// kernel took them down before refusing), and moves stay off from then on,
// unless what the kernel refused was `from` being several mappings (EFAULT:
// kernels before 6.17; the caller gives that source up).
// `to` must lie in the preferred window (kPreferredMapStart), and the
// caller move into the same range of its 2 MiB window each time: a move
// splits the mapping it lands in, so new windows are moved into only up to
// a bound (platform.cc, kMostMovedIntoWindows).
bool MovePages(void* from, void* to, size_t size);
// Whether MovePages may be tried: not where mappings are scarce (a moved
// range is charged again under strict overcommit and RLIMIT_AS), not once
// the process locked its memory (mlockall: the lock would move with the
// pages), not after the kernel refused one (too old, or the mapping count at
// its limit). (The knob, HAKMEM_PAGE_MOVES, is the callers'.)
bool PageMovesAvailable();
// Whether a move to `to` may be tried now: available, `to` in the
// preferred window, and its 2 MiB window moved into before or room for a
// new one. (So that callers reserve nothing for a move that cannot be.)
bool PageMovesMayReach(const void* to);
// For good, once any moves under way are done: the process locks memory
// (mlockall, mlock, mlock2, interposed). MREMAP_DONTUNMAP clears the lock
// of the whole mapping it moves pages out of, which may hold a live block
// the program locked beside the freed pages (a review: 8 MiB locked -> 0).
// (Locks hakmem cannot see: a raw syscall, a static binary.)
void TurnPageMovesOff();
// In a fork child: no move is under way there.
void ForgetPageMovesInFlightAfterFork();
// Unmaps [to, to + size) only if it is still free for the taking (the
// failed RemapTo unmapped it: another thread may have mapped something
// there since) or provably still ours; otherwise leaves the address range
// alone (a leak of address space, no memory: the reservation is untouched).
void UnmapReservationAfterFailedRemap(void* to, size_t size);

SyscallCounts GetSyscallCounts();

// Frees on slow paths note that memory went idle since the last
// out-of-memory trim (see OnOutOfMemory in hakmem.cc): a program that
// freed nothing meanwhile gains nothing from another. A load, and a store
// only when the note is not already there (no cache line ping-pong).
void NoteMemoryFreed();
// Whether memory was freed since the last call.
bool TakeMemoryFreedNote();

// Monotonic time in nanoseconds (vDSO, no syscall). Tests inject a fake clock.
using ClockFn = uint64_t (*)();
// Stores `value` into `*word` (relaxed) unless it holds it already: for a
// word that a frequent path sets and that rarely changes (each store would
// take its line from the cores reading it).
template <typename T>
inline void StoreIfChanged(T* word, T value) {
  if (__atomic_load_n(word, __ATOMIC_RELAXED) != value) {
    __atomic_store_n(word, value, __ATOMIC_RELAXED);
  }
}

uint64_t NowNs();
void SetClockForTesting(ClockFn clock);  // nullptr restores the real clock

constexpr size_t kPageSize = 4096;

// ---- Error output without malloc or printf ---------------------------------
// A fixed-size line buffer; appends are cut when it is full, and a line
// cut short is written ending "...\n".
class LogLine {
 public:
  LogLine& Str(const char* s);
  LogLine& Dec(uint64_t v);
  LogLine& Hex(uint64_t v);
  LogLine& Ptr(const void* p) { return Hex(reinterpret_cast<uintptr_t>(p)); }
  const char* data() const { return buf_; }
  size_t size() const { return len_; }
  void WriteToStderr();  // writes the line as is (caller adds '\n')

 private:
  char buf_[512];
  size_t len_ = 0;
};

// Where warnings and error reports go: stderr unless a test redirects them.
using LogSink = void (*)(const char* data, size_t len);
void SetLogSinkForTesting(LogSink sink);  // nullptr restores stderr
void EmitLog(const char* data, size_t len);

// Misuse of the allocator: prints "hakmem: <what> <pointer>: <why>" on stderr
// and aborts, like glibc does for an invalid free.
[[noreturn]] HAKMEM_NOINLINE void ReportAndAbort(const char* what,
                                                 const void* p,
                                                 const char* why);

// True in the thread that forks, from the moment fork's prepare handler has
// taken every allocator lock until its parent or child handler lets them
// go. Other fork handlers run in between (those registered before hakmem's:
// a program's libraries' constructors run before a preloaded library's) and
// may allocate: this thread owns every lock then, with the allocator at
// rest, so its locking is skipped instead of waiting on itself for good.
extern __thread bool tl_holds_fork_locks __attribute__((tls_model("initial-exec"))) HAKMEM_HIDDEN;

// Every allocator lock goes through these (see tl_holds_fork_locks).
inline void LockMutex(pthread_mutex_t* m) {
  if (!tl_holds_fork_locks) pthread_mutex_lock(m);
}
inline int TryLockMutex(pthread_mutex_t* m) {  // 0 when taken, as pthread's
  return tl_holds_fork_locks ? 0 : pthread_mutex_trylock(m);
}
inline void UnlockMutex(pthread_mutex_t* m) {
  if (!tl_holds_fork_locks) pthread_mutex_unlock(m);
}

}  // namespace platform
}  // namespace hakmem

#endif  // HAKMEM_PLATFORM_H_
