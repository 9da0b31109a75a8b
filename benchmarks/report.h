// random_mixed's results: the data, the derived figures (medians, ratios,
// the floor's share), and the three renderings: a text table, JSON, SVG.
#ifndef BENCHMARKS_REPORT_H_
#define BENCHMARKS_REPORT_H_

#include <stdint.h>
#include <stdio.h>

#include <string>
#include <utility>
#include <vector>

#include "benchmarks/allocators.h"
#include "benchmarks/lanes.h"
#include "benchmarks/syscall_trace.h"

namespace bench {

struct MachineInfo {
  int nproc = 0;
  std::string cpu_model;  // /proc/cpuinfo "model name"
  std::string kernel;     // uname -r
  std::string date;       // local time, "2025-11-25 23:40"
};
MachineInfo GetMachineInfo();

// One timed child run.
struct RepSample {
  double seconds = 0;
  uint64_t iters = 0;
  uint64_t allocs = 0;
  uint64_t frees = 0;
  uint64_t remote_frees = 0;
  uint64_t bytes = 0;
  int64_t maxrss_kb = 0;
};

// The separate strace run.
struct SyscallResult {
  bool measured = false;
  std::string note;  // why not measured
  uint64_t iters = 0;
  SyscallCounts counts;
};

struct Row {
  const AllocatorInfo* allocator = nullptr;
  std::string shared_object;  // LD_PRELOAD value; "" for none
  std::string malloc_from;    // the object the child found serving malloc
  std::vector<RepSample> reps;
  SyscallResult syscalls;

  // Filled by Summarize(). NaN where a figure does not apply (no glibc or
  // peer row in the lane, the floor row itself).
  double ops_per_sec = 0;  // median over reps
  double ns_per_op = 0;
  double own_ns_per_op = 0;
  double ratio_to_glibc = 0;
  double ratio_to_best_peer = 0;
  double peak_rss_mib = 0;  // median over reps
};

struct LaneReport {
  Lane lane;
  uint64_t warmup_iters = 0;
  std::vector<Row> rows;
  std::string best_peer;  // allocator name; "" if no peer ran
};

struct Report {
  MachineInfo machine;
  int reps = 0;
  uint64_t seed = 0;
  bool syscalls_requested = false;
  uint64_t syscall_iters_cap = 0;
  std::string hakmem_so;
  // HAKMEM_* variables set for hakmem's children.
  std::vector<std::pair<std::string, uint64_t>> hakmem_env;
  std::vector<LaneReport> lanes;
};

// The median of `values` (NaN if empty).
double Median(std::vector<double> values);

// Medians, ratios and own ns/op of every row in `lane`.
void Summarize(LaneReport* lane);

// The readable table, all lanes.
void PrintTable(const Report& report, FILE* out);

std::string ToJson(const Report& report);

// Bar chart: one group per lane, one bar per allocator (the floor left out),
// height = ops/s relative to glibc (or Mops/s when glibc did not run).
std::string ToSvg(const Report& report);

}  // namespace bench

#endif  // BENCHMARKS_REPORT_H_
