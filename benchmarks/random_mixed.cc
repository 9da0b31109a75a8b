// random_mixed: Phase 9's benchmark, run side by side under hakmem, glibc,
// tcmalloc (gperftools), jemalloc and mimalloc.
//
// The parent process measures nothing itself. For every lane (workload), rep
// and allocator it re-executes this binary with --child and LD_PRELOAD set to
// the allocator's shared object, so every allocator runs the very same
// machine code, reached through the same PLT calls; the child checks that
// the intended allocator really serves malloc, runs the workload
// (workload.h) and reports on stdout. A separate, untimed child run under
// strace counts the memory-management syscalls. The parent then prints one
// table and writes JSON and an SVG chart (report.h).
//
//   bazel run //benchmarks:random_mixed                      # everything
//   bazel run //benchmarks:random_mixed -- --allocator=hakmem --profile=256
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "benchmarks/allocators.h"
#include "benchmarks/child_process.h"
#include "benchmarks/lanes.h"
#include "benchmarks/report.h"
#include "benchmarks/syscall_trace.h"
#include "benchmarks/workload.h"
#include "hakmem/config.h"

extern char** environ;

ABSL_FLAG(std::string, profile, "all",
          "Lanes to run, comma-separated: all, phase9, 16-1024, 256, "
          "4096-32768, 16-32768, app, remote50, remote90, 32769-262144, "
          "262145-1048576, custom. "
          "--min_size/--max_size without --profile mean custom.");
ABSL_FLAG(std::string, allocator, "all",
          "Allocators, comma-separated: hakmem, glibc, tcmalloc, jemalloc, "
          "mimalloc, floor, all. The floor row (loop cost) is always added.");
ABSL_FLAG(std::optional<int64_t>, iters, std::nullopt,
          "Timed iterations per lane, all threads together (default: the "
          "lane's: 20M; phase9 100K, 32769-262144 2M, 262145-1048576 1M).");
ABSL_FLAG(std::optional<int64_t>, ws, std::nullopt,
          "Working set: slots per thread (default 400).");
ABSL_FLAG(std::optional<int64_t>, min_size, std::nullopt,
          "Smallest block of --profile=custom (default 16).");
ABSL_FLAG(std::optional<int64_t>, max_size, std::nullopt,
          "Largest block of --profile=custom (default 1024).");
ABSL_FLAG(uint64_t, seed, 42,
          "Random seed; the same for every allocator and rep.");
ABSL_FLAG(std::optional<int64_t>, threads, std::nullopt,
          "Threads per lane (default: the lane's; remote lanes use 2).");
ABSL_FLAG(std::optional<int64_t>, remote_pct, std::nullopt,
          "Percent of frees handed to another thread (needs --threads >= 2; "
          "default: the lane's).");
ABSL_FLAG(int64_t, reps, 3, "Timed runs per lane and allocator (median).");
ABSL_FLAG(std::string, json_out, "",
          "JSON results (default, for the full run only: "
          "results/random_mixed.json in the workspace, or the current "
          "directory; 'none' to skip).");
ABSL_FLAG(std::string, svg_out, "",
          "SVG chart (default, for the full run only: results/random_mixed.svg "
          "in the workspace, or the current directory; 'none' to skip).");
ABSL_FLAG(std::optional<int64_t>, superslab_max_cached, std::nullopt,
          "hakmem: HAKMEM_SUPERSLAB_MAX_CACHED of its children (unset: "
          "hakmem's default).");
ABSL_FLAG(std::optional<int64_t>, superslab_max_memory_mb, std::nullopt,
          "hakmem: HAKMEM_SUPERSLAB_MAX_MEMORY_MB of its children (unset: "
          "hakmem's default).");
ABSL_FLAG(std::optional<int64_t>, superslab_ttl_sec, std::nullopt,
          "hakmem: HAKMEM_SUPERSLAB_TTL_SEC of its children (unset: "
          "hakmem's default).");
ABSL_FLAG(std::optional<int64_t>, superslab_resident_mb, std::nullopt,
          "hakmem: HAKMEM_SUPERSLAB_RESIDENT_MB of its children (unset: "
          "hakmem's default).");
ABSL_FLAG(std::optional<int64_t>, superslab_decay_ms, std::nullopt,
          "hakmem: HAKMEM_SUPERSLAB_DECAY_MS of its children (unset: "
          "hakmem's default).");
ABSL_FLAG(std::optional<int64_t>, superslab_demand_window_sec, std::nullopt,
          "hakmem: HAKMEM_SUPERSLAB_DEMAND_WINDOW_SEC of its children (unset: "
          "hakmem's default).");
ABSL_FLAG(std::optional<int64_t>, superslab_retain_mb, std::nullopt,
          "hakmem: HAKMEM_SUPERSLAB_RETAIN_MB of its children (unset: "
          "hakmem's default).");
ABSL_FLAG(std::optional<int64_t>, large_cache_max_mb, std::nullopt,
          "hakmem: HAKMEM_LARGE_CACHE_MAX_MB of its children (unset: "
          "hakmem's default).");
ABSL_FLAG(std::optional<int64_t>, large_extents, std::nullopt,
          "hakmem: HAKMEM_LARGE_EXTENTS of its children (unset: hakmem's "
          "default).");
ABSL_FLAG(std::optional<int64_t>, page_moves, std::nullopt,
          "hakmem: HAKMEM_PAGE_MOVES of its children (unset: hakmem's "
          "default).");
ABSL_FLAG(std::string, hakmem_so, "",
          "Path of libhakmem.so (default: //hakmem:libhakmem.so from the "
          "runfiles).");
ABSL_FLAG(bool, syscalls, true,
          "Count syscalls in a separate strace run per lane and allocator.");
ABSL_FLAG(int64_t, syscall_iters, 2'000'000,
          "Iteration cap of the strace runs.");
ABSL_FLAG(bool, print_child_stats, false,
          "hakmem children print their config (HAKMEM_VERBOSE=1) and, at "
          "exit, their statistics (HAKMEM_STATS=1) on stderr.");
ABSL_FLAG(std::optional<int64_t>, warmup_iters, std::nullopt,
          "Internal (with --child): untimed iterations before the timed loop "
          "(default: a tenth of --iters, at least 4 x ws x threads).");
ABSL_FLAG(bool, child, false,
          "Internal: run one lane under one allocator in this process and "
          "report on stdout.");

namespace bench {
namespace {

constexpr char kUsage[] =
    "Phase 9's random_mixed workload under hakmem and its peers.\n"
    "  random_mixed                        all lanes x all allocators\n"
    "  random_mixed --allocator=hakmem --profile=256 --iters=1000000\n";

// Limits beyond which a run makes no sense on one machine.
constexpr int64_t kMaxIters = int64_t{1} << 40;
constexpr int64_t kMaxWs = int64_t{1} << 24;
constexpr int64_t kMaxThreads = 64;
constexpr int64_t kMaxBlock = int64_t{64} << 20;
constexpr int64_t kMaxReps = 100;

struct Options {
  std::vector<Lane> lanes;
  std::vector<const AllocatorInfo*> allocators;
  int reps = 0;
  uint64_t seed = 0;
  std::string hakmem_so;  // absolute; set when hakmem runs
  std::vector<std::pair<std::string, uint64_t>> hakmem_env;
  std::string json_out;  // "" = don't write
  std::string svg_out;
  bool syscalls = false;
  uint64_t syscall_iters = 0;
  bool print_child_stats = false;
  std::optional<uint64_t> warmup_iters;  // child only
};

bool InRange(const char* flag, int64_t value, int64_t lo, int64_t hi,
             std::string* error) {
  if (value >= lo && value <= hi) return true;
  *error = absl::StrFormat(
      "--%s=%d is out of range: expected an integer in [%d, %d]", flag, value,
      lo, hi);
  return false;
}

// Applies an optional integer flag (after a range check) to `*target`.
template <typename T>
bool Override(const char* flag, const std::optional<int64_t>& value, int64_t lo,
              int64_t hi, T* target, std::string* error) {
  if (!value.has_value()) return true;
  if (!InRange(flag, *value, lo, hi, error)) return false;
  *target = static_cast<T>(*value);
  return true;
}

bool ResolveLanes(std::vector<Lane>* lanes, std::string* error) {
  const std::optional<int64_t> min_flag = absl::GetFlag(FLAGS_min_size);
  const std::optional<int64_t> max_flag = absl::GetFlag(FLAGS_max_size);
  uint32_t min_size = kCustomMinSize, max_size = kCustomMaxSize;
  if (!Override("min_size", min_flag, 1, kMaxBlock, &min_size, error) ||
      !Override("max_size", max_flag, 1, kMaxBlock, &max_size, error)) {
    return false;
  }
  if (min_size > max_size) {
    *error = absl::StrFormat("--min_size=%d is larger than --max_size=%d",
                             min_size, max_size);
    return false;
  }
  const bool sizes_given = min_flag.has_value() || max_flag.has_value();
  std::string profile = absl::GetFlag(FLAGS_profile);
  if (profile == "all" && sizes_given) profile = "custom";

  lanes->clear();
  for (absl::string_view name : absl::StrSplit(profile, ',')) {
    bool found = false;
    for (const Lane& lane : StandardLanes()) {
      if (name == "all" || name == lane.name) {
        lanes->push_back(lane);
        found = true;
      }
    }
    if (name == "custom") {
      lanes->push_back(CustomLane(min_size, max_size));
      found = true;
    }
    if (!found) {
      *error = absl::StrCat("--profile=", absl::GetFlag(FLAGS_profile),
                            ": unknown profile '", name,
                            "'; expected all or a comma-separated list of ",
                            absl::StrJoin(ProfileNames(), ", "));
      return false;
    }
  }
  if (sizes_given && !absl::StrContains(profile, "custom")) {
    *error = "--min_size/--max_size only apply to --profile=custom";
    return false;
  }

  for (Lane& lane : *lanes) {
    if (!Override("iters", absl::GetFlag(FLAGS_iters), 1, kMaxIters,
                  &lane.iters, error) ||
        !Override("ws", absl::GetFlag(FLAGS_ws), 1, kMaxWs, &lane.ws, error) ||
        !Override("threads", absl::GetFlag(FLAGS_threads), 1, kMaxThreads,
                  &lane.threads, error) ||
        !Override("remote_pct", absl::GetFlag(FLAGS_remote_pct), 0, 100,
                  &lane.remote_pct, error)) {
      return false;
    }
    if (lane.remote_pct > 0 && lane.threads < 2) {
      *error = absl::StrFormat(
          "lane %s: %d%% remote frees need another thread, but it runs %d "
          "(set --threads >= 2 or --remote_pct=0)",
          lane.name, lane.remote_pct, lane.threads);
      return false;
    }
  }
  return true;
}

bool ResolveAllocators(bool child, Options* options, std::string* error) {
  const std::string flag = absl::GetFlag(FLAGS_allocator);
  std::vector<const AllocatorInfo*>& out = options->allocators;
  if (!ParseAllocatorList(flag, "random_mixed", &out, error)) return false;
  auto add = [&out](const AllocatorInfo* info) {
    if (std::find(out.begin(), out.end(), info) == out.end()) out.push_back(info);
  };
  if (child) {
    if (out.size() != 1) {
      *error = "--child runs exactly one allocator";
      return false;
    }
  } else {
    // Every table shows the loop's own cost: it takes one cheap run.
    add(FindAllocator("floor"));
  }

  for (const AllocatorInfo* info : out) {
    if (info->preload != Preload::kHakmem) continue;
    const std::string flag_so = absl::GetFlag(FLAGS_hakmem_so);
    options->hakmem_so = flag_so.empty() ? FindHakmemSo() : ExistingFile(flag_so);
    if (options->hakmem_so.empty()) {
      *error = flag_so.empty()
                   ? "cannot find libhakmem.so in the runfiles; build "
                     "//benchmarks:random_mixed with Bazel or pass --hakmem_so"
                   : absl::StrCat("--hakmem_so=", flag_so, ": no such file");
      return false;
    }
  }
  return true;
}

// The hakmem knobs: ranges and variable names come from hakmem's own table.
bool ResolveHakmemEnv(Options* options, std::string* error) {
  const struct {
    const char* flag;
    std::optional<int64_t> value;
    hakmem::Option option;
  } knobs[] = {
      {"superslab_max_cached", absl::GetFlag(FLAGS_superslab_max_cached),
       hakmem::Option::kSuperslabMaxCached},
      {"superslab_max_memory_mb", absl::GetFlag(FLAGS_superslab_max_memory_mb),
       hakmem::Option::kSuperslabMaxMemoryMb},
      {"superslab_ttl_sec", absl::GetFlag(FLAGS_superslab_ttl_sec),
       hakmem::Option::kSuperslabTtlSec},
      {"superslab_resident_mb", absl::GetFlag(FLAGS_superslab_resident_mb),
       hakmem::Option::kSuperslabResidentMb},
      {"superslab_decay_ms", absl::GetFlag(FLAGS_superslab_decay_ms),
       hakmem::Option::kSuperslabDecayMs},
      {"superslab_demand_window_sec",
       absl::GetFlag(FLAGS_superslab_demand_window_sec),
       hakmem::Option::kSuperslabDemandWindowSec},
      {"large_cache_max_mb", absl::GetFlag(FLAGS_large_cache_max_mb),
       hakmem::Option::kLargeCacheMaxMb},
      {"superslab_retain_mb", absl::GetFlag(FLAGS_superslab_retain_mb),
       hakmem::Option::kSuperslabRetainMb},
      {"large_extents", absl::GetFlag(FLAGS_large_extents), hakmem::Option::kLargeExtents},
      {"page_moves", absl::GetFlag(FLAGS_page_moves), hakmem::Option::kPageMoves},
  };
  for (const auto& knob : knobs) {
    if (!knob.value.has_value()) continue;
    const hakmem::OptionInfo& info = hakmem::GetOptionInfo(knob.option);
    if (!InRange(knob.flag, *knob.value, static_cast<int64_t>(info.min_value),
                 static_cast<int64_t>(info.max_value), error)) {
      return false;
    }
    options->hakmem_env.emplace_back(info.env_name,
                                     static_cast<uint64_t>(*knob.value));
  }
  return true;
}

// `flag_value`, or, for the full default run, `file_name` in results/ under
// the workspace (bazel run) or the current directory; "none" disables the
// output. A partial run (some lanes, allocators or iterations) writes
// nothing unless asked, so it never overwrites the published results.
std::string OutputPath(const std::string& flag_value, const char* file_name) {
  if (flag_value == "none") return "";
  if (!flag_value.empty()) return flag_value;
  const bool full_run = absl::GetFlag(FLAGS_profile) == "all" &&
                        absl::GetFlag(FLAGS_allocator) == "all" &&
                        !absl::GetFlag(FLAGS_iters).has_value();
  if (!full_run) return "";
  const char* workspace = getenv("BUILD_WORKSPACE_DIRECTORY");
  return absl::StrCat(workspace != nullptr ? workspace : ".", "/results/",
                      file_name);
}

bool ResolveOptions(bool child, Options* options, std::string* error) {
  const int64_t reps = absl::GetFlag(FLAGS_reps);
  const int64_t syscall_iters = absl::GetFlag(FLAGS_syscall_iters);
  if (!InRange("reps", reps, 1, kMaxReps, error) ||
      !InRange("syscall_iters", syscall_iters, 1, kMaxIters, error) ||
      !ResolveLanes(&options->lanes, error) ||
      !ResolveAllocators(child, options, error) ||
      !ResolveHakmemEnv(options, error)) {
    return false;
  }
  if (child && options->lanes.size() != 1) {
    *error = "--child runs exactly one lane";
    return false;
  }
  options->reps = static_cast<int>(reps);
  options->seed = absl::GetFlag(FLAGS_seed);
  options->json_out = OutputPath(absl::GetFlag(FLAGS_json_out), "random_mixed.json");
  options->svg_out = OutputPath(absl::GetFlag(FLAGS_svg_out), "random_mixed.svg");
  options->syscalls = absl::GetFlag(FLAGS_syscalls);
  options->syscall_iters = static_cast<uint64_t>(syscall_iters);
  options->print_child_stats = absl::GetFlag(FLAGS_print_child_stats);
  if (const std::optional<int64_t> warmup = absl::GetFlag(FLAGS_warmup_iters)) {
    if (!InRange("warmup_iters", *warmup, 0, kMaxIters, error)) return false;
    options->warmup_iters = static_cast<uint64_t>(*warmup);
  }
  return true;
}

// ---- Child -------------------------------------------------------------------

// Checks that malloc resolves into the allocator this child is meant to
// measure; a silently ignored LD_PRELOAD would make a fine-looking table of
// glibc numbers.
bool CheckMallocProvider(const AllocatorInfo& allocator,
                         const std::string& hakmem_so, std::string* provider,
                         std::string* error) {
  Dl_info info;
  void* symbol = dlsym(RTLD_DEFAULT, "malloc");
  if (symbol == nullptr || dladdr(symbol, &info) == 0 ||
      info.dli_fname == nullptr) {
    *error = "cannot find which object defines malloc";
    return false;
  }
  const std::string resolved = ExistingFile(info.dli_fname);
  *provider = resolved.empty() ? info.dli_fname : resolved;
  std::string expected;
  switch (allocator.preload) {
    case Preload::kHakmem:
      expected = hakmem_so;
      break;
    case Preload::kFixedPath:
      expected = ExistingFile(allocator.shared_object);
      break;
    case Preload::kNone: {
      const std::string base = provider->substr(provider->rfind('/') + 1);
      if (absl::StartsWith(base, "libc.so")) return true;
      expected = "glibc's libc.so.6";
      break;
    }
  }
  if (*provider == expected) return true;
  const char* preload = getenv("LD_PRELOAD");
  *error = absl::StrFormat(
      "allocator %s: malloc comes from %s, expected %s (LD_PRELOAD=%s)",
      allocator.name, *provider, expected, preload != nullptr ? preload : "");
  return false;
}

int ChildMain(const Options& options) {
  const AllocatorInfo& allocator = *options.allocators.front();
  const Lane& lane = options.lanes.front();
  std::string provider, error;
  if (!CheckMallocProvider(allocator, options.hakmem_so, &provider, &error)) {
    fprintf(stderr, "random_mixed --child: %s\n", error.c_str());
    return 3;
  }
  WorkloadParams params;
  params.iters = lane.iters;
  params.warmup_iters = options.warmup_iters.value_or(
      DefaultWarmupIters(lane.iters, lane.ws, lane.threads));
  params.ws = lane.ws;
  params.threads = lane.threads;
  params.remote_pct = lane.remote_pct;
  params.seed = options.seed;
  params.bands = lane.bands;
  const WorkloadResult r = RunWorkload(
      params, allocator.is_floor ? LoopAllocator::kFloor : LoopAllocator::kLibc);
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  // One line for the parent; the provider goes last (a path).
  printf("RESULT seconds=%.9f iters=%llu allocs=%llu frees=%llu "
         "remote_frees=%llu bytes=%llu maxrss_kb=%ld malloc_from=%s\n",
         r.seconds, static_cast<unsigned long long>(params.iters),
         static_cast<unsigned long long>(r.allocs),
         static_cast<unsigned long long>(r.frees),
         static_cast<unsigned long long>(r.remote_frees),
         static_cast<unsigned long long>(r.bytes), usage.ru_maxrss,
         provider.c_str());
  return fflush(stdout) == 0 ? 0 : 4;
}

// ---- Parent ------------------------------------------------------------------

// `iters` timed iterations after the warm-up of the lane's full timed run.
std::vector<std::string> ChildArgs(const std::string& exe, const Lane& lane,
                                   uint64_t iters, const AllocatorInfo& allocator,
                                   const Options& options) {
  std::vector<std::string> args = {
      exe,
      "--child",
      absl::StrCat("--allocator=", allocator.name),
      absl::StrCat("--profile=", lane.name),
      absl::StrCat("--iters=", iters),
      absl::StrCat("--warmup_iters=",
                   DefaultWarmupIters(lane.iters, lane.ws, lane.threads)),
      absl::StrCat("--ws=", lane.ws),
      absl::StrCat("--threads=", lane.threads),
      absl::StrCat("--remote_pct=", lane.remote_pct),
      absl::StrCat("--seed=", options.seed),
  };
  if (lane.name == "custom") {
    args.push_back(absl::StrCat("--min_size=", lane.bands[0].min_size));
    args.push_back(absl::StrCat("--max_size=", lane.bands[0].max_size));
  }
  if (allocator.preload == Preload::kHakmem) {
    args.push_back(absl::StrCat("--hakmem_so=", options.hakmem_so));
  }
  return args;
}

std::string PreloadOf(const AllocatorInfo& allocator, const Options& options) {
  switch (allocator.preload) {
    case Preload::kHakmem:
      return options.hakmem_so;
    case Preload::kFixedPath:
      return allocator.shared_object;
    case Preload::kNone:
      break;
  }
  return "";
}

// The variables a child gets on top of the parent's environment.
std::vector<std::string> ChildVars(const AllocatorInfo& allocator,
                                   const Options& options) {
  std::vector<std::string> vars;
  const std::string preload = PreloadOf(allocator, options);
  if (!preload.empty()) vars.push_back("LD_PRELOAD=" + preload);
  if (allocator.preload == Preload::kHakmem) {
    for (const auto& [name, value] : options.hakmem_env) {
      vars.push_back(absl::StrCat(name, "=", value));
    }
    if (options.print_child_stats) {
      vars.push_back("HAKMEM_STATS=1");
      vars.push_back("HAKMEM_VERBOSE=1");
    }
  }
  return vars;
}

// The parent's environment without LD_PRELOAD (each child gets its own).
std::vector<std::string> BaseEnvironment() {
  std::vector<std::string> env;
  for (char** var = environ; *var != nullptr; ++var) {
    if (!absl::StartsWith(*var, "LD_PRELOAD=")) env.push_back(*var);
  }
  return env;
}

bool ParseResult(const std::string& text, RepSample* sample,
                 std::string* malloc_from) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::ConsumePrefix(&line, "RESULT ")) continue;
    int fields = 0;
    for (absl::string_view field : absl::StrSplit(line, ' ')) {
      const std::pair<absl::string_view, absl::string_view> kv =
          absl::StrSplit(field, absl::MaxSplits('=', 1));
      const absl::string_view key = kv.first, value = kv.second;
      bool ok = true;
      if (key == "seconds") ok = absl::SimpleAtod(value, &sample->seconds);
      if (key == "iters") ok = absl::SimpleAtoi(value, &sample->iters);
      if (key == "allocs") ok = absl::SimpleAtoi(value, &sample->allocs);
      if (key == "frees") ok = absl::SimpleAtoi(value, &sample->frees);
      if (key == "remote_frees") ok = absl::SimpleAtoi(value, &sample->remote_frees);
      if (key == "bytes") ok = absl::SimpleAtoi(value, &sample->bytes);
      if (key == "maxrss_kb") ok = absl::SimpleAtoi(value, &sample->maxrss_kb);
      if (key == "malloc_from") *malloc_from = std::string(value);
      if (!ok) return false;
      ++fields;
    }
    return fields == 8;
  }
  return false;
}

std::string ShellQuoted(const std::vector<std::string>& words) {
  std::vector<std::string> quoted;
  for (const std::string& w : words) {
    const bool plain = w.find_first_of(" '\"$\\") == std::string::npos;
    quoted.push_back(plain ? w : absl::StrCat("'", w, "'"));
  }
  return absl::StrJoin(quoted, " ");
}

class Runner {
 public:
  explicit Runner(const Options& options)
      : options_(options), exe_(SelfExePath()), base_env_(BaseEnvironment()) {}

  // One timed child run. Fails loudly: a broken row must not look measured.
  bool RunTimed(const Lane& lane, Row* row) {
    const AllocatorInfo& allocator = *row->allocator;
    const std::vector<std::string> args =
        ChildArgs(exe_, lane, lane.iters, allocator, options_);
    const std::vector<std::string> vars = ChildVars(allocator, options_);
    std::vector<std::string> env = base_env_;
    env.insert(env.end(), vars.begin(), vars.end());
    const ChildOutput out = RunChild(args, env);
    RepSample sample;
    if (out.exit_code != 0 || !ParseResult(out.stdout_text, &sample, &row->malloc_from)) {
      fprintf(stderr,
              "random_mixed: error: the %s child for lane %s %s without a "
              "result.\n  command: %s %s\n",
              allocator.name, lane.name.c_str(), DescribeExit(out).c_str(),
              absl::StrJoin(vars, " ").c_str(), ShellQuoted(args).c_str());
      return false;
    }
    row->reps.push_back(sample);
    return true;
  }

  // The untimed strace run. Only a failing child is an error; without a
  // usable strace the row says n/a and why.
  bool RunTraced(const Lane& lane, Row* row) {
    SyscallResult& result = row->syscalls;
    if (!strace_problem_.empty()) {
      result.note = strace_problem_;
      return true;
    }
    const AllocatorInfo& allocator = *row->allocator;
    const char* tmp = getenv("TEST_TMPDIR");
    std::string log_path =
        absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/random_mixed_strace_XXXXXX");
    const int fd = mkstemp(log_path.data());
    if (fd < 0) {
      result.note = absl::StrCat("cannot create ", log_path);
      return true;
    }
    close(fd);
    result.iters = std::min<uint64_t>(lane.iters, options_.syscall_iters);
    std::vector<std::string> args =
        StraceArgs(strace_, log_path, ChildVars(allocator, options_));
    const std::vector<std::string> child =
        ChildArgs(exe_, lane, result.iters, allocator, options_);
    args.insert(args.end(), child.begin(), child.end());
    const ChildOutput out = RunChild(args, base_env_);
    std::ifstream log_file(log_path);
    const std::string log((std::istreambuf_iterator<char>(log_file)),
                          std::istreambuf_iterator<char>());
    unlink(log_path.c_str());
    RepSample ignored;
    std::string ignored_from;
    const bool child_ok = out.exit_code == 0 && ParseResult(out.stdout_text, &ignored, &ignored_from);
    if (!child_ok && log.empty()) {
      // strace itself could not run (e.g. ptrace is not permitted here).
      strace_problem_ = absl::StrCat("strace could not trace the child (",
                                     DescribeExit(out), "; see stderr)");
      result.note = strace_problem_;
      return true;
    }
    if (!child_ok) {
      fprintf(stderr,
              "random_mixed: error: the %s child for lane %s failed under "
              "strace: %s\n  command: %s\n",
              allocator.name, lane.name.c_str(), DescribeExit(out).c_str(),
              ShellQuoted(args).c_str());
      return false;
    }
    std::string error;
    if (!ParseStraceLog(log, &result.counts, &error)) {
      fprintf(stderr, "random_mixed: error: strace log of the %s child for lane %s: %s\n",
              allocator.name, lane.name.c_str(), error.c_str());
      return false;
    }
    result.measured = true;
    return true;
  }

  void FindStrace() {
    strace_ = FindInPath("strace");
    if (strace_.empty()) {
      strace_problem_ =
          "strace is not installed (Debian package strace); syscall counts "
          "are n/a";
      fprintf(stderr, "random_mixed: note: %s\n", strace_problem_.c_str());
    }
  }

 private:
  const Options& options_;
  const std::string exe_;
  const std::vector<std::string> base_env_;
  std::string strace_;
  std::string strace_problem_;  // set once strace proved unusable
};

bool WriteFile(const std::string& path, const std::string& content) {
  // Creates the missing directories of `path` first (results/ on a fresh
  // checkout).
  for (size_t slash = path.find('/', 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    mkdir(path.substr(0, slash).c_str(), 0755);
  }
  std::ofstream file(path, std::ios::trunc);
  file << content;
  file.close();
  if (!file) {
    fprintf(stderr, "random_mixed: error: cannot write %s: %s\n", path.c_str(),
            strerror(errno));
    return false;
  }
  fprintf(stderr, "random_mixed: wrote %s\n", path.c_str());
  return true;
}

int ParentMain(const Options& options) {
  Runner runner(options);
  if (options.syscalls) runner.FindStrace();

  Report report;
  report.machine = GetMachineInfo();
  report.reps = options.reps;
  report.seed = options.seed;
  report.syscalls_requested = options.syscalls;
  report.syscall_iters_cap = options.syscall_iters;
  report.hakmem_so = options.hakmem_so;
  report.hakmem_env = options.hakmem_env;

  const int num_lanes = static_cast<int>(options.lanes.size());
  for (int l = 0; l < num_lanes; ++l) {
    const Lane& lane = options.lanes[l];
    const std::string tag = absl::StrFormat("[lane %d/%d %s]", l + 1, num_lanes, lane.name);
    LaneReport lane_report;
    lane_report.lane = lane;
    lane_report.warmup_iters = DefaultWarmupIters(lane.iters, lane.ws, lane.threads);
    for (const AllocatorInfo* allocator : options.allocators) {
      Row row;
      row.allocator = allocator;
      row.shared_object = PreloadOf(*allocator, options);
      lane_report.rows.push_back(row);
    }
    // Reps outermost, so that a noisy moment hits every allocator alike.
    for (int rep = 1; rep <= options.reps; ++rep) {
      for (Row& row : lane_report.rows) {
        fprintf(stderr, "%s %s rep %d/%d ...", tag.c_str(), row.allocator->name,
                rep, options.reps);
        if (!runner.RunTimed(lane, &row)) return 1;
        const RepSample& s = row.reps.back();
        fprintf(stderr, " %.2fM ops/s\n", static_cast<double>(s.iters) / s.seconds / 1e6);
      }
    }
    if (options.syscalls) {
      for (Row& row : lane_report.rows) {
        fprintf(stderr, "%s %s syscall count (strace) ...\n", tag.c_str(),
                row.allocator->name);
        if (!runner.RunTraced(lane, &row)) return 1;
      }
    }
    Summarize(&lane_report);
    report.lanes.push_back(std::move(lane_report));
  }

  PrintTable(report, stdout);
  fflush(stdout);
  bool ok = true;
  if (!options.json_out.empty()) ok &= WriteFile(options.json_out, ToJson(report));
  if (!options.svg_out.empty()) ok &= WriteFile(options.svg_out, ToSvg(report));
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(bench::kUsage);
  const std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() > 1) {
    fprintf(stderr, "random_mixed: error: unexpected argument '%s' (flags are --name=value)\n",
            positional[1]);
    return 1;
  }
  const bool child = absl::GetFlag(FLAGS_child);
  bench::Options options;
  std::string error;
  if (!bench::ResolveOptions(child, &options, &error)) {
    fprintf(stderr, "random_mixed: error: %s\n", error.c_str());
    return 1;
  }
  return child ? bench::ChildMain(options) : bench::ParentMain(options);
}
