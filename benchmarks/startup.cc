// startup: what an allocator costs a short-lived program.
//
// Runs two programs many times under each allocator, round-robin so that the
// machine's noise hits every allocator alike:
//   true        /bin/true, which never calls malloc: the cost of loading the
//               allocator and running its constructors.
//   alloc_once  a C program (alloc_once.c): one malloc and free, then it
//               reports its own VmSize and VmRSS (what the allocator mapped,
//               and touched, for one small block).
// Beside the allocators, glibc's malloc with an empty library preloaded
// (empty_preload.c): what LD_PRELOAD itself costs, the floor under any
// preloaded allocator's ratio.
// For each it prints the median wall time of spawn to exit and the ratio to
// glibc. Speed is a ratio from one run only (the machine is
// noisy); the test (startup_test.sh) checks the memory numbers, not time.
//
//   bazel run //benchmarks:startup
//   bazel run //benchmarks:startup -- --runs=500 --allocator=hakmem,glibc
#include <stdio.h>
#include <stdlib.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "benchmarks/allocators.h"
#include "benchmarks/child_process.h"
#include "benchmarks/report.h"

ABSL_FLAG(int, runs, 200, "Runs per program and allocator (median reported).");
ABSL_FLAG(std::string, allocator, "all",
          "Allocators, comma-separated: hakmem, glibc, tcmalloc, jemalloc, "
          "mimalloc, all. glibc is always added (the reference).");
ABSL_FLAG(std::string, hakmem_so, "",
          "Path of libhakmem.so (default: //hakmem:libhakmem.so from the "
          "runfiles).");

namespace {

struct Program {
  const char* name;
  std::vector<std::string> argv;
  bool reports_memory;  // prints "vmsize_kb=N vmrss_kb=N"
};

struct Sample {
  std::vector<double> micros;
  long vmsize_kb = -1;
  long vmrss_kb = -1;
};

// Runs `argv` with `env` once; false (with a message) unless it exits 0.
// Adds the wall time of spawn to exit to `sample`.
bool RunOnce(const std::vector<std::string>& argv, const std::vector<std::string>& env,
             Sample* sample, std::string* out) {
  const bench::ChildOutput child = bench::RunChild(argv, env);
  if (!child.started || child.exit_code != 0) {
    fprintf(stderr, "startup: %s %s\n", argv[0].c_str(),
            child.started ? bench::DescribeExit(child).c_str() : child.error.c_str());
    return false;
  }
  sample->micros.push_back(child.wall_us);
  if (out != nullptr) *out = child.stdout_text;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("What an allocator costs a short-lived program.");
  absl::ParseCommandLine(argc, argv);
  const int runs = absl::GetFlag(FLAGS_runs);
  if (runs < 1) {
    fprintf(stderr, "startup: --runs must be at least 1\n");
    return 2;
  }
  std::vector<bench::PreloadedAllocator> allocators;
  std::string error;
  if (!bench::ResolvePreloadedAllocators(absl::GetFlag(FLAGS_allocator),
                                         absl::GetFlag(FLAGS_hakmem_so), "startup",
                                         &allocators, &error)) {
    fprintf(stderr, "startup: %s\n", error.c_str());
    return 2;
  }
  // The empty library right after glibc (the reference, first).
  static const bench::AllocatorInfo kEmptyPreload = {
      "empty", "empty-preload", bench::Preload::kFixedPath, nullptr, nullptr, false, false};
  const std::string empty_so = bench::FindRunfile("benchmarks/libempty_preload.so");
  if (empty_so.empty()) {
    fprintf(stderr, "startup: cannot find libempty_preload.so (build with Bazel)\n");
    return 2;
  }
  allocators.insert(allocators.begin() + 1, bench::PreloadedAllocator{&kEmptyPreload, empty_so});
  const std::string true_path = bench::ExistingFile("/bin/true");
  std::vector<Program> programs;
  if (!true_path.empty()) programs.push_back({"true", {true_path}, false});
  const std::string alloc_once = bench::FindRunfile("benchmarks/alloc_once");
  if (alloc_once.empty()) {
    fprintf(stderr, "startup: cannot find alloc_once (build with Bazel)\n");
    return 2;
  }
  programs.push_back({"alloc_once", {alloc_once}, true});

  // samples[program][allocator]
  std::vector<std::vector<Sample>> samples(programs.size(),
                                           std::vector<Sample>(allocators.size()));
  for (int run = 0; run < runs; run++) {
    for (size_t p = 0; p < programs.size(); p++) {
      for (size_t a = 0; a < allocators.size(); a++) {
        std::vector<std::string> env = {"PATH=/usr/bin:/bin"};
        if (!allocators[a].preload.empty()) {
          env.push_back(absl::StrCat("LD_PRELOAD=", allocators[a].preload));
        }
        Sample& sample = samples[p][a];
        std::string out;
        const bool want_memory = programs[p].reports_memory && run == 0;
        if (!RunOnce(programs[p].argv, env, &sample, want_memory ? &out : nullptr)) {
          fprintf(stderr, "startup: %s under %s failed\n", programs[p].name,
                  allocators[a].info->name);
          return 1;
        }
        if (want_memory &&
            sscanf(out.c_str(), "vmsize_kb=%ld vmrss_kb=%ld", &sample.vmsize_kb,
                   &sample.vmrss_kb) != 2) {
          fprintf(stderr, "startup: unexpected child output: %s\n", out.c_str());
          return 1;
        }
      }
    }
  }

  printf("startup: median of %d runs of spawn+exec+exit per program and allocator, "
         "interleaved\n",
         runs);
  printf("x glibc: time relative to glibc (lower is better); alloc_once reports its\n"
         "own VmSize and VmRSS after one malloc+free.\n\n");
  printf("%-11s %-22s %9s %8s %11s %11s\n", "program", "allocator", "us/run",
         "x glibc", "VmSize KiB", "VmRSS KiB");
  for (size_t p = 0; p < programs.size(); p++) {
    const double glibc_us = bench::Median(samples[p][0].micros);
    for (size_t a = 0; a < allocators.size(); a++) {
      const Sample& s = samples[p][a];
      const double us = bench::Median(s.micros);
      char vmsize[32] = "-", vmrss[32] = "-";
      if (s.vmsize_kb >= 0) snprintf(vmsize, sizeof(vmsize), "%ld", s.vmsize_kb);
      if (s.vmrss_kb >= 0) snprintf(vmrss, sizeof(vmrss), "%ld", s.vmrss_kb);
      printf("%-11s %-22s %9.0f %8.2f %11s %11s\n", programs[p].name,
             allocators[a].info->label, us, us / glibc_us, vmsize, vmrss);
    }
  }
  return 0;
}
