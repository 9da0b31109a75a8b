// The workloads ("lanes") random_mixed runs, selected with --profile.
#ifndef BENCHMARKS_LANES_H_
#define BENCHMARKS_LANES_H_

#include <stdint.h>

#include <string>
#include <vector>

#include "benchmarks/workload.h"

namespace bench {

struct Lane {
  std::string name;  // the --profile value
  uint64_t iters;    // timed iterations, all threads together
  uint32_t ws;       // slots per thread
  int threads;
  int remote_pct;
  std::vector<SizeBand> bands;
};

// Defaults of the standard lanes (and of --profile=custom).
constexpr uint64_t kStandardIters = 20'000'000;
constexpr uint32_t kStandardWs = 400;
constexpr uint32_t kCustomMinSize = 16;
constexpr uint32_t kCustomMaxSize = 1024;

// The lanes run by default, in order: phase9 (the headline), 16-1024, 256,
// 4096-32768, 16-32768, app, remote50, remote90.
std::vector<Lane> StandardLanes();

// --profile=custom: uniform sizes in [min_size, max_size], one thread.
Lane CustomLane(uint32_t min_size, uint32_t max_size);

// Every --profile value but "all", for messages.
std::vector<std::string> ProfileNames();

// "256 B", "16-1024 B", "80% 16-256 B + 15% 257-2048 B + 5% 2049-32768 B".
std::string DescribeSizes(const std::vector<SizeBand>& bands);

// Phase 9's published figures (other machine, 100K iterations of 256 B),
// printed beside the phase9 lane for context.
struct Phase9Reference {
  const char* text;
  double hakmem_mops;
  int hakmem_syscalls;
  double glibc_mops;
  int glibc_syscalls;
};
const Phase9Reference& GetPhase9Reference();

}  // namespace bench

#endif  // BENCHMARKS_LANES_H_
