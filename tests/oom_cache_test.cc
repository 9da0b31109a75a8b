// Out of memory, then recovery *across kinds*: once everything is freed, the
// address space of empty cached SuperSlabs (or cached large blocks) must be
// usable for the other kind of block. An allocator whose mmap fails while it
// holds empty cached memory should release that cache and retry, as it
// would under RLIMIT_AS, a memory cgroup or strict overcommit.
//
// See FINDINGS.md ("F2"): tagged manual until hakmem handles it.
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "gtest/gtest.h"
#include "tests/oom_util.h"
#include "tests/test_util.h"

namespace {

using hakmem_test::Chain;
using hakmem_test::Exhaust;
using hakmem_test::LimitAddressSpace;

constexpr size_t kMiB = hakmem_test::kOomMiB;

void SmallThenLarge() {
  LimitAddressSpace();
  Chain small;
  const size_t small_bytes = Exhaust(&small, 64);
  fprintf(stderr, "oom child: %zu MiB of 64-byte blocks\n", small_bytes / kMiB);
  CHILD_CHECK(small_bytes >= 64 * kMiB);
  small.FreeAll();
  Chain large;
  const size_t large_bytes = Exhaust(&large, kMiB, small_bytes);
  fprintf(stderr, "oom child: then %zu MiB of 1 MiB blocks\n", large_bytes / kMiB);
  CHILD_CHECK(large_bytes >= small_bytes - 16 * kMiB);
  large.FreeAll();
  fprintf(stderr, "oom child: ok\n");
  _exit(0);
}

TEST(OutOfMemoryCache, FreedSmallBlocksMakeRoomForLargeOnes) {
  EXPECT_EXIT(SmallThenLarge(), ::testing::ExitedWithCode(0), "oom child: ok");
}

void LargeThenSmall() {
  LimitAddressSpace();
  Chain large;
  const size_t large_bytes = Exhaust(&large, kMiB);
  fprintf(stderr, "oom child: %zu MiB of 1 MiB blocks\n", large_bytes / kMiB);
  CHILD_CHECK(large_bytes >= 64 * kMiB);
  large.FreeAll();
  Chain small;
  const size_t small_bytes = Exhaust(&small, 64, large_bytes);
  fprintf(stderr, "oom child: then %zu MiB of 64-byte blocks\n", small_bytes / kMiB);
  CHILD_CHECK(small_bytes >= large_bytes - 16 * kMiB);
  small.FreeAll();
  fprintf(stderr, "oom child: ok\n");
  _exit(0);
}

TEST(OutOfMemoryCache, FreedLargeBlocksMakeRoomForSmallOnes) {
  EXPECT_EXIT(LargeThenSmall(), ::testing::ExitedWithCode(0), "oom child: ok");
}

// Threads exhaust memory with small and large blocks at once and free
// everything; then each allocates 100 blocks of its kind again, without a
// malloc_trim (oom_test runs the same with one).
TEST(OutOfMemoryCache, ThreadsRecoverWithoutTrim) {
  EXPECT_EXIT(hakmem_test::ThreadedOutOfMemoryChild(/*trim=*/false),
              ::testing::ExitedWithCode(0), "oom child: ok");
}

}  // namespace
