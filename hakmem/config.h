// Config layer: hakmem's knobs, read once from the environment.
//
// One table (config.cc) lists every option: its HAKMEM_* variable, default and
// allowed range. Parsing allocates nothing and works before main() and under
// LD_PRELOAD. A bad value prints one warning naming the variable and the
// default used, and the default applies. Runtime setters let benchmarks and
// tests change a knob after start-up.
#ifndef HAKMEM_CONFIG_H_
#define HAKMEM_CONFIG_H_

#include <stddef.h>
#include <stdint.h>

namespace hakmem {

enum class Option : int {
  kSuperslabMaxCached = 0,   // HAKMEM_SUPERSLAB_MAX_CACHED, count, 256
  kSuperslabMaxMemoryMb,     // HAKMEM_SUPERSLAB_MAX_MEMORY_MB, 512
  kSuperslabTtlSec,          // HAKMEM_SUPERSLAB_TTL_SEC, 60
  kSuperslabResidentMb,      // HAKMEM_SUPERSLAB_RESIDENT_MB, 64
  kSuperslabDecayMs,         // HAKMEM_SUPERSLAB_DECAY_MS, 1000
  kSuperslabDemandWindowSec, // HAKMEM_SUPERSLAB_DEMAND_WINDOW_SEC, 16 (0: off)
  kLargeCacheMaxMb,          // HAKMEM_LARGE_CACHE_MAX_MB, 512
  kSuperslabRetainMb,        // HAKMEM_SUPERSLAB_RETAIN_MB, 512 (0: unmap)
  kSuperslabPrewarm,         // HAKMEM_SUPERSLAB_PREWARM, 0 SuperSlabs mapped at start
  kLargeExtents,             // HAKMEM_LARGE_EXTENTS, 0/1: large blocks up to 16 MiB share coalescing chunks
  kPageMoves,                // HAKMEM_PAGE_MOVES, 0/1: free pages move between layers (mremap)
  kStats,                    // HAKMEM_STATS, 0/1: print statistics at exit
  kVerbose,                  // HAKMEM_VERBOSE, 0/1: print the effective config
  kCount
};

struct OptionInfo {
  Option option;
  const char* env_name;
  const char* description;
  uint64_t default_value;
  uint64_t min_value;
  uint64_t max_value;
};

// The options table, indexed by Option.
const OptionInfo& GetOptionInfo(Option option);

// Current value (relaxed atomic read; parses the environment on first use).
uint64_t GetOption(Option option);
// Runtime setter. Returns false (and changes nothing) if out of range.
bool SetOption(Option option, uint64_t value);

// HAKMEM_SUPERSLAB_DECAY_MS in ns: how long every cache (SuperSlabs, idle
// slabs, large regions, extents) keeps free pages beyond its budget.
inline uint64_t DecayNs() { return GetOption(Option::kSuperslabDecayMs) * 1000000ull; }

// Parses the environment now (idempotent; called by the allocator's init).
void InitConfigFromEnvironment();

// Prints the effective configuration on stderr (HAKMEM_VERBOSE=1).
void PrintConfig();

namespace config_internal {

using GetEnvFn = const char* (*)(const char* name);

// Parses a decimal unsigned integer with no sign, no junk and no overflow,
// within [min_value, max_value]. Returns false on any error.
bool ParseUnsigned(const char* text, uint64_t min_value, uint64_t max_value,
                   uint64_t* out);

// Re-reads every option through `getenv_fn`, warning on bad values. For tests.
void LoadFromEnvironment(GetEnvFn getenv_fn);

// Restores every option to its default. For tests.
void ResetToDefaults();

}  // namespace config_internal
}  // namespace hakmem

#endif  // HAKMEM_CONFIG_H_
