// The random_mixed workload (Phase 9's bench_random_mixed), run inside the
// benchmark's child process.
//
// Each thread owns a slot array of `ws` entries. Every iteration draws one
// 64-bit random number r, picks a slot from it, and either frees the block in
// that slot (slot full) or allocates a block of a size drawn from the profile
// and writes its first and last byte (slot empty). One iteration is one op.
// With several threads, a freed block is handed, with probability
// `remote_pct`%, to the next thread through a single-producer ring, and that
// thread frees it: a cross-thread ("remote") free.
#ifndef BENCHMARKS_WORKLOAD_H_
#define BENCHMARKS_WORKLOAD_H_

#include <stdint.h>

#include <vector>

namespace bench {

// Sizes uniform in [min_size, max_size], drawn with weight_pct % probability.
struct SizeBand {
  uint32_t min_size;
  uint32_t max_size;
  uint32_t weight_pct;
};

// Draws a block size from up to kMaxBands bands with 16 random bits for the
// band and 16 for the offset in it: no division, a few instructions.
class SizeSampler {
 public:
  static constexpr int kMaxBands = 4;

  // `bands` non-empty, at most kMaxBands, weights summing to 100.
  explicit SizeSampler(const std::vector<SizeBand>& bands);

  // Uses bits 32..63 of `r` (the slot pick uses bits 0..31).
  uint32_t Sample(uint64_t r) const {
    const uint32_t band_bits = static_cast<uint32_t>(r >> 32) & 0xffff;
    int i = 0;
    while (i < num_bands_ - 1 && band_bits >= threshold_[i]) ++i;
    const uint64_t offset_bits = r >> 48;
    return min_[i] + static_cast<uint32_t>((offset_bits * span_[i]) >> 16);
  }

  uint32_t max_size() const { return max_size_; }

 private:
  int num_bands_ = 0;
  uint32_t threshold_[kMaxBands] = {};  // cumulative weight in 1/65536
  uint32_t min_[kMaxBands] = {};
  uint64_t span_[kMaxBands] = {};       // max - min + 1
  uint32_t max_size_ = 0;
};

struct WorkloadParams {
  uint64_t iters = 0;         // timed iterations, all threads together
  uint64_t warmup_iters = 0;  // untimed, right before, all threads together
  uint32_t ws = 0;            // slots per thread
  int threads = 1;
  int remote_pct = 0;         // needs threads >= 2
  uint64_t seed = 0;
  std::vector<SizeBand> bands;
};

// The warm-up random_mixed uses: 10% of the timed iterations, at least 4 ws
// per thread, so every slot array starts the timed loop in steady state.
uint64_t DefaultWarmupIters(uint64_t iters, uint32_t ws, int threads);

struct WorkloadResult {
  double seconds = 0;  // wall time of the timed loop
  // Counts of the timed loop. `bytes` (requested bytes) doubles as a
  // checksum of the random sequence: same seed, same bytes.
  uint64_t allocs = 0;
  uint64_t frees = 0;         // including remote ones
  uint64_t remote_frees = 0;  // blocks handed to another thread
  uint64_t bytes = 0;
};

enum class LoopAllocator {
  kLibc,   // malloc/free of the process (LD_PRELOAD decides whose)
  kFloor,  // the do-nothing bump allocator
};

// Runs warm-up, timed loop, and frees every remaining block. Aborts with a
// message if an allocation fails.
WorkloadResult RunWorkload(const WorkloadParams& params, LoopAllocator alloc);

// The child writes these with write(-1, ...) right before and right after
// the timed loop: the call fails at once (EBADF) but shows in an strace log,
// which is how the syscall counter cuts out the loop's calls.
inline constexpr char kLoopBeginMarker[] = "random_mixed:timed-loop-begin";
inline constexpr char kLoopEndMarker[] = "random_mixed:timed-loop-end";

}  // namespace bench

#endif  // BENCHMARKS_WORKLOAD_H_
