#include "hakmem/config.h"

#include <stdlib.h>

#include <atomic>

#include "hakmem/platform.h"

namespace hakmem {
namespace {

constexpr uint64_t kU32Max = 0xffffffffu;

// The options table: one row per knob (mimalloc's options.c style).
const OptionInfo kOptions[] = {
    {Option::kSuperslabMaxCached, "HAKMEM_SUPERSLAB_MAX_CACHED",
     "empty SuperSlabs kept mapped for reuse", 256, 0, 1u << 20},
    {Option::kSuperslabMaxMemoryMb, "HAKMEM_SUPERSLAB_MAX_MEMORY_MB",
     "memory of cached empty SuperSlabs, MiB", 512, 0, 1u << 24},
    {Option::kSuperslabTtlSec, "HAKMEM_SUPERSLAB_TTL_SEC",
     "seconds an empty SuperSlab stays cached", 60, 0, kU32Max},
    {Option::kSuperslabResidentMb, "HAKMEM_SUPERSLAB_RESIDENT_MB",
     "of cached SuperSlabs, MiB kept resident (the rest madvised away)", 64,
     0, 1u << 24},
    {Option::kSuperslabDecayMs, "HAKMEM_SUPERSLAB_DECAY_MS",
     "ms a cached SuperSlab beyond the resident budget keeps its pages (0: "
     "given back at once)",
     1000, 0, 3600u * 1000},
    {Option::kSuperslabDemandWindowSec, "HAKMEM_SUPERSLAB_DEMAND_WINDOW_SEC",
     "adaptive cache: keep no more cached regions than were taken in any "
     "two consecutive seconds of the last this many (0: off)",
     16, 0, 60},
    {Option::kLargeCacheMaxMb, "HAKMEM_LARGE_CACHE_MAX_MB",
     "memory of freed large blocks kept mapped, MiB (64 of it resident)", 512, 0, 1u << 24},
    {Option::kSuperslabRetainMb, "HAKMEM_SUPERSLAB_RETAIN_MB",
     "address space of evicted SuperSlabs kept reserved for reuse, their "
     "pages given back, MiB, in whole 2 MiB SuperSlabs (0: unmapped)",
     512, 0, 131072},
    {Option::kSuperslabPrewarm, "HAKMEM_SUPERSLAB_PREWARM",
     "SuperSlabs mapped into the cache at start-up", 0, 0, 1024},
    {Option::kLargeExtents, "HAKMEM_LARGE_EXTENTS",
     "large blocks up to 16 MiB split and coalesce in shared 1 GiB chunks "
     "(0: each has a region of its own)",
     1, 0, 1},
    {Option::kPageMoves, "HAKMEM_PAGE_MOVES",
     "a layer about to fault pages in takes the other's free resident pages "
     "beyond its budget by moving them (mremap), not fresh ones (0: off)",
     1, 0, 1},
    {Option::kStats, "HAKMEM_STATS", "print statistics at exit (0/1)", 0, 0,
     1},
    {Option::kVerbose, "HAKMEM_VERBOSE", "print the effective config (0/1)", 0,
     0, 1},
};
static_assert(sizeof(kOptions) / sizeof(kOptions[0]) ==
                  static_cast<size_t>(Option::kCount),
              "one row per option");

HAKMEM_STARTUP_DATA std::atomic<uint64_t> g_values[static_cast<int>(Option::kCount)];
// 0 = not loaded, 1 = loading, 2 = loaded.
HAKMEM_STARTUP_DATA std::atomic<int> g_state{0};

// secure_getenv: a setuid or setgid program (or one that gained
// capabilities) ignores the knobs, as glibc ignores MALLOC_* there, so that
// an unprivileged user cannot tune a privileged program's allocator.
const char* SystemGetenv(const char* name) { return secure_getenv(name); }

void StoreDefaults() {
  for (const OptionInfo& info : kOptions) {
    g_values[static_cast<int>(info.option)].store(info.default_value,
                                                  std::memory_order_relaxed);
  }
}

void Warn(const OptionInfo& info, const char* text, const char* why) {
  platform::LogLine line;
  line.Str("hakmem: warning: ")
      .Str(info.env_name)
      .Str("='")
      .Str(text)
      .Str("' ")
      .Str(why)
      .Str("; using the default ")
      .Dec(info.default_value)
      .Str("\n");
  line.WriteToStderr();
}

}  // namespace

namespace config_internal {

bool ParseUnsigned(const char* text, uint64_t min_value, uint64_t max_value,
                   uint64_t* out) {
  if (text == nullptr || *text == '\0') return false;
  uint64_t value = 0;
  for (const char* p = text; *p != '\0'; ++p) {
    if (*p < '0' || *p > '9') return false;
    const uint64_t digit = static_cast<uint64_t>(*p - '0');
    if (value > (UINT64_MAX - digit) / 10) return false;  // overflow
    value = value * 10 + digit;
  }
  if (value < min_value || value > max_value) return false;
  *out = value;
  return true;
}

void LoadFromEnvironment(GetEnvFn getenv_fn) {
  StoreDefaults();
  for (const OptionInfo& info : kOptions) {
    const char* text = getenv_fn(info.env_name);
    if (text == nullptr) continue;
    uint64_t value;
    if (ParseUnsigned(text, 0, UINT64_MAX, &value)) {
      if (value < info.min_value || value > info.max_value) {
        Warn(info, text, "is out of range");
        continue;
      }
      g_values[static_cast<int>(info.option)].store(value,
                                                    std::memory_order_relaxed);
    } else if (*text == '\0') {
      Warn(info, text, "is empty");
    } else {
      Warn(info, text, "is not a non-negative decimal integer");
    }
  }
}

void ResetToDefaults() {
  StoreDefaults();
  g_state.store(2, std::memory_order_release);
}

}  // namespace config_internal

const OptionInfo& GetOptionInfo(Option option) {
  return kOptions[static_cast<int>(option)];
}

void InitConfigFromEnvironment() {
  int expected = 0;
  if (g_state.compare_exchange_strong(expected, 1, std::memory_order_acquire)) {
    // getenv neither allocates nor locks; environ is set before any
    // constructor or allocation can run.
    config_internal::LoadFromEnvironment(&SystemGetenv);
    g_state.store(2, std::memory_order_release);
    return;
  }
  while (g_state.load(std::memory_order_acquire) != 2) {
    // Another thread is parsing; it takes microseconds.
  }
}

uint64_t GetOption(Option option) {
  if (HAKMEM_UNLIKELY(g_state.load(std::memory_order_acquire) != 2)) {
    InitConfigFromEnvironment();
  }
  return g_values[static_cast<int>(option)].load(std::memory_order_relaxed);
}

bool SetOption(Option option, uint64_t value) {
  InitConfigFromEnvironment();
  const OptionInfo& info = GetOptionInfo(option);
  if (value < info.min_value || value > info.max_value) return false;
  g_values[static_cast<int>(option)].store(value, std::memory_order_relaxed);
  return true;
}

void PrintConfig() {
  for (const OptionInfo& info : kOptions) {
    platform::LogLine line;
    line.Str("hakmem: ")
        .Str(info.env_name)
        .Str("=")
        .Dec(GetOption(info.option))
        .Str("  (")
        .Str(info.description)
        .Str(")\n");
    line.WriteToStderr();
  }
}

}  // namespace hakmem
