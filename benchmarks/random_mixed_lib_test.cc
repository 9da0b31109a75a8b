// Unit tests of random_mixed's pieces: size sampling, the workload's
// counting, strace log parsing and the derived report figures.
#include <math.h>

#include <random>
#include <string>

#include "benchmarks/allocators.h"
#include "benchmarks/lanes.h"
#include "benchmarks/report.h"
#include "benchmarks/syscall_trace.h"
#include "benchmarks/workload.h"
#include "gtest/gtest.h"

namespace bench {
namespace {

TEST(SizeSamplerTest, FixedSizeAlwaysReturnsIt) {
  SizeSampler sampler({{256, 256, 100}});
  std::mt19937_64 rng(1);
  for (int i = 0; i < 10000; ++i) EXPECT_EQ(sampler.Sample(rng()), 256u);
}

TEST(SizeSamplerTest, UniformRangeStaysInsideAndReachesBothEnds) {
  SizeSampler sampler({{16, 1024, 100}});
  std::mt19937_64 rng(2);
  uint32_t lo = UINT32_MAX, hi = 0;
  for (int i = 0; i < 200000; ++i) {
    const uint32_t size = sampler.Sample(rng());
    ASSERT_GE(size, 16u);
    ASSERT_LE(size, 1024u);
    lo = std::min(lo, size);
    hi = std::max(hi, size);
  }
  EXPECT_EQ(lo, 16u);
  EXPECT_EQ(hi, 1024u);
}

TEST(SizeSamplerTest, AppMixFollowsTheWeights) {
  const std::vector<SizeBand> bands = {
      {16, 256, 80}, {257, 2048, 15}, {2049, 32768, 5}};
  SizeSampler sampler(bands);
  std::mt19937_64 rng(3);
  int counts[3] = {};
  constexpr int kDraws = 200000;
  for (int i = 0; i < kDraws; ++i) {
    const uint32_t size = sampler.Sample(rng());
    counts[size <= 256 ? 0 : size <= 2048 ? 1 : 2]++;
  }
  EXPECT_NEAR(counts[0] / double{kDraws}, 0.80, 0.01);
  EXPECT_NEAR(counts[1] / double{kDraws}, 0.15, 0.01);
  EXPECT_NEAR(counts[2] / double{kDraws}, 0.05, 0.01);
  EXPECT_EQ(sampler.max_size(), 32768u);
}

TEST(LanesTest, StandardLanesAreTheSpecifiedOnes) {
  const std::vector<Lane> lanes = StandardLanes();
  std::vector<std::string> names;
  for (const Lane& lane : lanes) {
    names.push_back(lane.name);
    uint32_t weight = 0;
    for (const SizeBand& band : lane.bands) weight += band.weight_pct;
    EXPECT_EQ(weight, 100u) << lane.name;
    EXPECT_EQ(lane.ws, 400u) << lane.name;
    EXPECT_EQ(lane.remote_pct > 0, lane.threads == 2) << lane.name;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"phase9", "16-1024", "256",
                                              "4096-32768", "16-32768", "app",
                                              "remote50", "remote90", "32769-262144",
                                              "262145-1048576"}));
  EXPECT_EQ(lanes[8].iters, 2000000u);
  EXPECT_EQ(lanes[9].iters, 1000000u);
  EXPECT_EQ(lanes[0].iters, 100000u);
  EXPECT_EQ(lanes[1].iters, 20000000u);
  EXPECT_EQ(DescribeSizes(lanes[5].bands),
            "80% 16-256 B + 15% 257-2048 B + 5% 2049-32768 B");
}

WorkloadParams SmallParams(uint64_t seed) {
  WorkloadParams params;
  params.iters = 50000;
  params.warmup_iters = DefaultWarmupIters(params.iters, 64, 1);
  params.ws = 64;
  params.seed = seed;
  params.bands = {{16, 1024, 100}};
  return params;
}

TEST(WorkloadTest, CountsEveryIterationAndDependsOnTheSeed) {
  for (LoopAllocator alloc : {LoopAllocator::kFloor, LoopAllocator::kLibc}) {
    const WorkloadResult a = RunWorkload(SmallParams(7), alloc);
    const WorkloadResult b = RunWorkload(SmallParams(7), alloc);
    const WorkloadResult c = RunWorkload(SmallParams(8), alloc);
    EXPECT_EQ(a.allocs + a.frees, 50000u);
    EXPECT_GT(a.allocs, 0u);
    EXPECT_GT(a.frees, 0u);
    EXPECT_EQ(a.remote_frees, 0u);
    EXPECT_GE(a.bytes, 16 * a.allocs);
    EXPECT_LE(a.bytes, 1024 * a.allocs);
    EXPECT_GT(a.seconds, 0);
    EXPECT_EQ(a.bytes, b.bytes) << "same seed, same sequence";
    EXPECT_NE(a.bytes, c.bytes) << "another seed, another sequence";
  }
}

TEST(WorkloadTest, HandsTheRequestedShareOfFreesToTheOtherThread) {
  for (LoopAllocator alloc : {LoopAllocator::kFloor, LoopAllocator::kLibc}) {
    WorkloadParams params = SmallParams(9);
    params.threads = 2;
    params.remote_pct = 90;
    params.warmup_iters = DefaultWarmupIters(params.iters, params.ws, 2);
    const WorkloadResult r = RunWorkload(params, alloc);
    EXPECT_EQ(r.allocs + r.frees, 50000u);
    EXPECT_NEAR(static_cast<double>(r.remote_frees) / r.frees, 0.90, 0.03);
  }
}

TEST(SyscallTraceTest, CountsProcessAndLoopCalls) {
  const std::string log =
      "100  brk(NULL) = 0x1000\n"
      "100  mmap(NULL, 8192, PROT_READ, MAP_PRIVATE, 3, 0) = 0x7f00\n"
      "100  write(-1, \"random_mixed:timed-loop-begin\", 29) = -1 EBADF\n"
      "100  mmap(NULL, 2097152, PROT_READ|PROT_WRITE, ...) = 0x7e00\n"
      "101  munmap(0x7e00, 4096 <unfinished ...>\n"
      "100  madvise(0x7e00, 4096, MADV_DONTNEED) = 0\n"
      "101  <... munmap resumed>) = 0\n"
      "100  write(-1, \"random_mixed:timed-loop-end\", 27) = -1 EBADF\n"
      "100  munmap(0x7f00, 8192) = 0\n"
      "100  write(1, \"RESULT seconds=1\", 16) = 16\n"
      "100  +++ exited with 0 +++\n";
  SyscallCounts counts;
  std::string error;
  ASSERT_TRUE(ParseStraceLog(log, &counts, &error)) << error;
  // mmap, munmap, madvise, mincore, brk, mremap
  EXPECT_EQ(counts.process, (std::array<uint64_t, 6>{2, 2, 1, 0, 1, 0}));
  EXPECT_EQ(counts.in_loop, (std::array<uint64_t, 6>{1, 1, 1, 0, 0, 0}));
}

TEST(SyscallTraceTest, FailsWithoutBothMarkers) {
  SyscallCounts counts;
  std::string error;
  EXPECT_FALSE(ParseStraceLog("1 mmap(NULL) = 0\n", &counts, &error));
  EXPECT_NE(error.find("begin"), std::string::npos);
  EXPECT_FALSE(ParseStraceLog(
      "1 write(-1, \"random_mixed:timed-loop-begin\", 29) = -1\n", &counts,
      &error));
  EXPECT_NE(error.find("end"), std::string::npos);
}

TEST(SyscallTraceTest, StraceArgsSetTheTraceeEnvironment) {
  const std::vector<std::string> args =
      StraceArgs("/usr/bin/strace", "/tmp/log", {"LD_PRELOAD=/x.so"});
  const std::string joined = [&] {
    std::string s;
    for (const std::string& a : args) s += a + " ";
    return s;
  }();
  EXPECT_NE(joined.find("-f "), std::string::npos);
  EXPECT_NE(joined.find("-o /tmp/log "), std::string::npos);
  EXPECT_NE(joined.find("-E LD_PRELOAD=/x.so "), std::string::npos);
  EXPECT_NE(joined.find("trace=write,mmap,munmap,madvise,mincore,brk,mremap"),
            std::string::npos);
}

Row MakeRow(const char* allocator, double seconds_per_rep_1, double seconds_2,
            double seconds_3) {
  Row row;
  row.allocator = FindAllocator(allocator);
  for (double s : {seconds_per_rep_1, seconds_2, seconds_3}) {
    RepSample sample;
    sample.seconds = s;
    sample.iters = 1000000;
    sample.maxrss_kb = 2048;
    row.reps.push_back(sample);
  }
  return row;
}

TEST(ReportTest, SummarizeTakesMediansAndRatios) {
  LaneReport lane;
  lane.lane = StandardLanes()[2];
  // Medians: 0.02 s, 0.01 s, 0.008 s, 0.016 s, 0.004 s for 1M iterations.
  lane.rows.push_back(MakeRow("hakmem", 0.02, 0.5, 0.01));
  lane.rows.push_back(MakeRow("glibc", 0.01, 0.01, 0.01));
  lane.rows.push_back(MakeRow("jemalloc", 0.008, 0.008, 0.008));
  lane.rows.push_back(MakeRow("mimalloc", 0.016, 0.016, 0.016));
  lane.rows.push_back(MakeRow("floor", 0.004, 0.004, 0.004));
  Summarize(&lane);
  const Row& hakmem = lane.rows[0];
  EXPECT_DOUBLE_EQ(hakmem.ops_per_sec, 50e6);
  EXPECT_DOUBLE_EQ(hakmem.ns_per_op, 20);
  EXPECT_DOUBLE_EQ(hakmem.ratio_to_glibc, 0.5);
  EXPECT_DOUBLE_EQ(hakmem.ratio_to_best_peer, 0.4);
  EXPECT_DOUBLE_EQ(hakmem.own_ns_per_op, 16);
  EXPECT_DOUBLE_EQ(hakmem.peak_rss_mib, 2);
  EXPECT_EQ(lane.best_peer, "jemalloc");
  EXPECT_DOUBLE_EQ(lane.rows[2].ratio_to_best_peer, 1);
  EXPECT_TRUE(isnan(lane.rows[4].ratio_to_glibc)) << "floor has no ratios";
}

TEST(ReportTest, RatiosAreNotApplicableWithoutTheirReference) {
  LaneReport lane;
  lane.lane = StandardLanes()[2];
  lane.rows.push_back(MakeRow("hakmem", 0.02, 0.02, 0.02));
  Summarize(&lane);
  EXPECT_TRUE(isnan(lane.rows[0].ratio_to_glibc));
  EXPECT_TRUE(isnan(lane.rows[0].ratio_to_best_peer));
  EXPECT_TRUE(isnan(lane.rows[0].own_ns_per_op));
  EXPECT_EQ(lane.best_peer, "");
}

}  // namespace
}  // namespace bench
