// patterns: allocation patterns beyond random_mixed's lanes (C++ new and
// delete, sized delete, aligned_alloc, calloc, realloc growth, building a
// structure and freeing it all, passive false sharing between threads),
// side by side under each allocator.
//
// Runs patterns_child under every allocator through LD_PRELOAD, round-robin
// for --reps rounds, and prints the median ns per call (or pair) of each
// pattern, and hakmem's ratio to the best of tcmalloc, jemalloc and mimalloc
// (above 1: hakmem is faster). As everywhere here, read only the ratios of
// one run; the test (patterns_test.sh) checks that it runs, not the times.
//
//   bazel run //benchmarks:patterns
//   bazel run //benchmarks:patterns -- --reps=5 --allocator=hakmem,mimalloc
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "benchmarks/allocators.h"
#include "benchmarks/child_process.h"
#include "benchmarks/report.h"

ABSL_FLAG(int, reps, 3, "Rounds over all allocators (median reported).");
ABSL_FLAG(double, scale, 1.0, "Work per pattern, relative to the default (0-100].");
ABSL_FLAG(std::string, allocator, "all",
          "Allocators, comma-separated: hakmem, glibc, tcmalloc, jemalloc, "
          "mimalloc, all. glibc is always added.");
ABSL_FLAG(std::string, hakmem_so, "",
          "Path of libhakmem.so (default: //hakmem:libhakmem.so from the "
          "runfiles).");

namespace {

struct PatternInfo {
  const char* key;    // as patterns_child prints it
  const char* label;  // for the table
};

const PatternInfo kPatterns[] = {
    {"new_delete", "new + delete, 48-160 B (ns/pair)"},
    {"sized_delete", "new + sized delete, 64 B (ns/pair)"},
    {"aligned_alloc", "aligned_alloc(64, 128) + free (ns/pair)"},
    {"calloc", "calloc 16-1024 B + free (ns/pair)"},
    {"calloc_sparse_fresh", "calloc 200 KB x 500, 1 B used (us/call)"},
    {"calloc_sparse_again", "  then again, freed memory (us/call)"},
    {"replace_random", "free + malloc 16-1024 B, 1000 live (ns/pair)"},
    {"larson_churn", "  the same, 4 threads replaced 10 times (ns/pair)"},
    {"realloc_small", "realloc +1 B, 1 B to 32 KiB (ns/call)"},
    {"realloc_large", "realloc +1 B, 40 to 240 KiB (ns/call)"},
    {"realloc_double", "realloc x2, 1 to 256 MiB, filled (us/call)"},
    {"teardown16:malloc", "build 2M x 16 B: malloc (ns/call)"},
    {"teardown16:free", "  then free all (ns/call)"},
    {"teardown64:malloc", "build 2M x 64 B: malloc (ns/call)"},
    {"teardown64:free", "  then free all (ns/call)"},
    {"teardown256:malloc", "build 1M x 256 B: malloc (ns/call)"},
    {"teardown256:free", "  then free all (ns/call)"},
    {"shuffled64:malloc", "build 2M x 64 B, after frees in random order (ns/call)"},
    {"shuffled64:free", "  then free all in random order (ns/call)"},
    {"shuffled256:malloc", "build 1M x 256 B, after frees in random order (ns/call)"},
    {"shuffled256:free", "  then free all in random order (ns/call)"},
    {"refill_half", "1M x 256 B, free every other, malloc (ns/call)"},
    {"producer_consumer", "one thread mallocs, another frees (ns/block)"},
    {"exited64:free", "1M x 64 B built by a thread that exited: free (ns/call)"},
    {"exited64_shuffled:free", "  the same, freed in random order (ns/call)"},
    {"false_sharing", "passive false sharing, 8 B (ns/write)"},
};

// Parses "<key> <ns>" lines into `out`; false on anything else.
bool ParseChildOutput(const std::string& text, std::map<std::string, double>* out) {
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
    double ns;
    if (fields.size() != 2 || !absl::SimpleAtod(fields[1], &ns)) return false;
    (*out)[std::string(fields[0])] = ns;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Allocation patterns beyond random_mixed, side by side under each allocator.");
  absl::ParseCommandLine(argc, argv);
  const int reps = absl::GetFlag(FLAGS_reps);
  const double scale = absl::GetFlag(FLAGS_scale);
  if (reps < 1 || !(scale > 0 && scale <= 100)) {
    fprintf(stderr, "patterns: need --reps >= 1 and --scale in (0, 100]\n");
    return 2;
  }
  std::vector<bench::PreloadedAllocator> allocators;
  std::string error;
  if (!bench::ResolvePreloadedAllocators(absl::GetFlag(FLAGS_allocator),
                                         absl::GetFlag(FLAGS_hakmem_so), "patterns",
                                         &allocators, &error)) {
    fprintf(stderr, "patterns: %s\n", error.c_str());
    return 2;
  }
  const std::string child = bench::FindRunfile("benchmarks/patterns_child");
  if (child.empty()) {
    fprintf(stderr, "patterns: cannot find patterns_child (build with Bazel)\n");
    return 2;
  }

  // samples[allocator][pattern key]
  std::vector<std::map<std::string, std::vector<double>>> samples(allocators.size());
  for (int rep = 0; rep < reps; rep++) {
    for (size_t a = 0; a < allocators.size(); a++) {
      std::vector<std::string> env = {"PATH=/usr/bin:/bin"};
      if (!allocators[a].preload.empty()) {
        env.push_back(absl::StrCat("LD_PRELOAD=", allocators[a].preload));
      }
      // hakmem's knobs pass through, so a pattern can be measured under
      // another setting (e.g. HAKMEM_SUPERSLAB_DECAY_MS=0).
      for (char** var = environ; *var != nullptr; var++) {
        if (strncmp(*var, "HAKMEM_", 7) == 0) env.emplace_back(*var);
      }
      fprintf(stderr, "[rep %d/%d] %s ...\n", rep + 1, reps, allocators[a].info->name);
      const bench::ChildOutput out =
          bench::RunChild({child, absl::StrCat("--scale=", scale)}, env);
      std::map<std::string, double> values;
      if (!out.started || out.exit_code != 0 || !ParseChildOutput(out.stdout_text, &values)) {
        fprintf(stderr, "patterns: the child under %s failed: %s\n", allocators[a].info->name,
                out.started ? bench::DescribeExit(out).c_str() : out.error.c_str());
        return 1;
      }
      for (const auto& [key, ns] : values) samples[a][key].push_back(ns);
    }
  }

  printf("patterns: median of %d round(s), each allocator in its own process, interleaved\n",
         reps);
  printf("x peer: the best of tcmalloc, jemalloc and mimalloc over hakmem (above 1: hakmem\n"
         "is faster)\n\n");
  int label_width = 0;  // the longest label's
  for (const PatternInfo& pattern : kPatterns) {
    label_width = std::max(label_width, static_cast<int>(strlen(pattern.label)));
  }
  printf("%-*s", label_width, "pattern");
  for (const bench::PreloadedAllocator& a : allocators) printf(" %10s", a.info->name);
  printf(" %7s\n", "x peer");
  for (const PatternInfo& pattern : kPatterns) {
    printf("%-*s", label_width, pattern.label);
    double hakmem = NAN, best_peer = NAN;
    for (size_t a = 0; a < allocators.size(); a++) {
      const double ns = bench::Median(samples[a][pattern.key]);
      printf(" %10.2f", ns);
      if (allocators[a].info->preload == bench::Preload::kHakmem) hakmem = ns;
      if (allocators[a].info->is_peer && !isnan(ns) && (isnan(best_peer) || ns < best_peer)) {
        best_peer = ns;
      }
    }
    if (isnan(hakmem) || isnan(best_peer)) {
      printf(" %7s\n", "-");
    } else {
      printf(" %7.2f\n", best_peer / hakmem);
    }
  }
  return 0;
}
