// Runs the fuzz target over deterministic pseudo-random programs, so every
// `bazel test` exercises it even without clang's libFuzzer.
#include <stddef.h>
#include <stdint.h>

#include <random>
#include <vector>

#include "gtest/gtest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

#ifdef HAKMEM_SANITIZER
constexpr int kRounds = 200;  // instrumented byte loops are ~50x slower
#else
constexpr int kRounds = 3000;
#endif

TEST(FuzzRegressionTest, RandomPrograms) {
  std::mt19937 rng(1234);
  for (int round = 0; round < kRounds; round++) {
    std::vector<uint8_t> input(rng() % 2048);
    for (uint8_t& byte : input) byte = static_cast<uint8_t>(rng());
    ASSERT_EQ(LLVMFuzzerTestOneInput(input.data(), input.size()), 0);
  }
}

TEST(FuzzRegressionTest, EdgeInputs) {
  const uint8_t empty[1] = {0};
  EXPECT_EQ(LLVMFuzzerTestOneInput(empty, 0), 0);
  std::vector<uint8_t> all_ff(4096, 0xff);  // huge sizes, max alignment
  EXPECT_EQ(LLVMFuzzerTestOneInput(all_ff.data(), all_ff.size()), 0);
  std::vector<uint8_t> reallocs;
  for (int i = 0; i < 1000; i++) {
    reallocs.push_back(2);  // realloc
    reallocs.push_back(7);  // slot
    reallocs.push_back(static_cast<uint8_t>(i * 37));
    reallocs.push_back(static_cast<uint8_t>(i));
    reallocs.push_back(static_cast<uint8_t>(i * 11));
  }
  EXPECT_EQ(LLVMFuzzerTestOneInput(reallocs.data(), reallocs.size()), 0);
}
