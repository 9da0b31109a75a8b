// mlockall and munlockall under hakmem: a process that locks its memory
// locks what it uses, not the address space hakmem maps ahead of it (a
// helper's hunt, session 29: one 1 MiB block locked a whole 1 GiB extent
// chunk, 1,058 MB; glibc 3.4 MB, jemalloc 16.7, mimalloc 35), and once it
// unlocks, every block is writable again.
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <vector>

#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace {

// VmLck of /proc/self/status, in KiB.
long LockedKiB() {
  FILE* f = fopen("/proc/self/status", "r");
  if (f == nullptr) return -1;
  char line[256];
  long kib = -1;
  while (fgets(line, sizeof line, f) != nullptr) {
    if (sscanf(line, "VmLck: %ld kB", &kib) == 1) break;
  }
  fclose(f);
  return kib;
}

constexpr size_t kMiB = size_t{1} << 20;
constexpr long kMostLockedKiB = 64 * 1024;

// Locked KiB (smaps' Locked:) of the mappings over [p, p + n).
long LockedKiBOver(const void* p, size_t n) {
  FILE* f = fopen("/proc/self/smaps", "r");
  if (f == nullptr) return -1;
  const uintptr_t at = reinterpret_cast<uintptr_t>(p);
  char line[512];
  bool over = false;
  long kib = 0;
  while (fgets(line, sizeof line, f) != nullptr) {
    unsigned long lo, hi;
    char dash;
    if (sscanf(line, "%lx%c%lx ", &lo, &dash, &hi) == 3 && dash == '-') {
      over = at + n > lo && at < hi;
      continue;
    }
    long v;
    if (over && sscanf(line, "Locked: %ld kB", &v) == 1) kib += v;
  }
  fclose(f);
  return kib;
}

// First, before any test locks all memory (which turns page moves off):
// a block the program locked stays locked though freed pages beside it
// move away (a move clears the lock of the whole mapping it leaves, so
// mlock turns moves off; a review's reproducer: 8 MiB locked -> 0).
TEST(MlockTest, ALockedBlockStaysLockedWhenFreedPagesBesideItMove) {
  constexpr size_t kBlock = 8 * kMiB;
  char* freed = static_cast<char*>(malloc(kBlock));
  char* kept = static_cast<char*>(malloc(kBlock));
  ASSERT_NE(freed, nullptr);
  ASSERT_NE(kept, nullptr);
  memset(freed, 1, kBlock);
  memset(kept, 2, kBlock);
  if (mlock(freed, kBlock) != 0 || mlock(kept, kBlock) != 0) GTEST_SKIP() << "mlock refused";
  ASSERT_GE(LockedKiBOver(kept, kBlock), long{kBlock / 1024});
  // Large blocks freed beyond the budget, then small blocks on fresh
  // SuperSlabs, which would take freed large pages by a move.
  std::vector<char*> large;
  for (int i = 0; i < 40; i++) {
    large.push_back(static_cast<char*>(malloc(6 * kMiB)));
    ASSERT_NE(large.back(), nullptr);
    memset(large.back(), 3, 6 * kMiB);
  }
  free(freed);
  for (char* p : large) free(p);
  std::vector<void*> small;
  for (int i = 0; i < 1000000; i++) {
    small.push_back(malloc(100));
    ASSERT_NE(small.back(), nullptr);
    memset(small.back(), 4, 100);
  }
  EXPECT_GE(LockedKiBOver(kept, kBlock), long{kBlock / 1024}) << "the live block lost its lock";
  for (void* p : small) free(p);
  munlock(kept, kBlock);
  free(kept);
}

TEST(MlockTest, LockingAllMemoryLocksWhatIsUsedNotTheChunksAhead) {
  // A large block live before the lock: the extent heap's chunk is mapped.
  char* before = static_cast<char*>(malloc(kMiB));
  ASSERT_NE(before, nullptr);
  memset(before, 1, kMiB);
  if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
    GTEST_SKIP() << "mlockall: " << strerror(errno) << " (no privilege or memlock limit)";
  }
  EXPECT_LT(LockedKiB(), kMostLockedKiB) << "the chunk ahead was locked with the block";
  // Blocks allocated, grown and freed while locked.
  char* during = static_cast<char*>(malloc(kMiB));
  ASSERT_NE(during, nullptr);
  memset(during, 2, kMiB);
  char* grown = static_cast<char*>(realloc(before, 3 * kMiB));
  ASSERT_NE(grown, nullptr);
  EXPECT_EQ(grown[0], 1);
  EXPECT_EQ(grown[kMiB - 1], 1);
  memset(grown + kMiB, 3, 2 * kMiB);
  EXPECT_LT(LockedKiB(), kMostLockedKiB) << "blocks allocated since map ahead of them";
  free(during);
  ASSERT_EQ(munlockall(), 0);
  EXPECT_EQ(LockedKiB(), 0);
  // Unlocked: blocks are carved where the lock kept hakmem from carving,
  // and must be writable there.
  char* after[8];
  for (char*& p : after) {
    p = static_cast<char*>(malloc(kMiB));
    ASSERT_NE(p, nullptr);
    memset(p, 4, kMiB);
  }
  char* regrown = static_cast<char*>(realloc(grown, 4 * kMiB));
  ASSERT_NE(regrown, nullptr);
  EXPECT_EQ(regrown[3 * kMiB - 1], 3);
  memset(regrown, 5, 4 * kMiB);
  for (char* p : after) free(p);
  free(regrown);
}

// Future mappings locked alone (no MCL_CURRENT): what a block maps is
// locked, nothing ahead of it.
TEST(MlockTest, LockingFutureMappingsMapsNothingAhead) {
  if (mlockall(MCL_FUTURE) != 0) {
    GTEST_SKIP() << "mlockall: " << strerror(errno) << " (no privilege or memlock limit)";
  }
  const long start = LockedKiB();
  char* blocks[4];
  for (size_t i = 0; i < 4; i++) {
    blocks[i] = static_cast<char*>(malloc((i + 1) * 300 * 1024));
    ASSERT_NE(blocks[i], nullptr);
    memset(blocks[i], 6, (i + 1) * 300 * 1024);
  }
  EXPECT_LT(LockedKiB() - start, kMostLockedKiB);
  for (char* p : blocks) free(p);
  ASSERT_EQ(munlockall(), 0);
  char* p = static_cast<char*>(malloc(kMiB));
  ASSERT_NE(p, nullptr);
  memset(p, 7, kMiB);
  free(p);
}

// Locked twice, blocks freed next to the holes each lock made: munlockall
// maps every hole again (a review, session 29: its walk aborted here).
TEST(MlockTest, UnlockingMapsBackEveryHoleOfTwoLocks) {
  constexpr int kBlocks = 6;
  char* b[kBlocks];
  for (char*& p : b) {
    p = static_cast<char*>(malloc(kMiB));
    ASSERT_NE(p, nullptr);
    memset(p, 1, kMiB);
  }
  free(b[1]);
  free(b[4]);
  if (mlockall(MCL_CURRENT) != 0) {
    GTEST_SKIP() << "mlockall: " << strerror(errno) << " (no privilege or memlock limit)";
  }
  free(b[3]);
  free(b[5]);
  ASSERT_EQ(mlockall(MCL_CURRENT), 0);
  free(b[2]);
  ASSERT_EQ(munlockall(), 0);
  // Every block writable, wherever it lands now.
  char* again[3 * kBlocks];
  for (char*& p : again) {
    p = static_cast<char*>(malloc(kMiB));
    ASSERT_NE(p, nullptr);
    memset(p, 2, kMiB);
  }
  for (char* p : again) free(p);
  free(b[0]);
}

TEST(MlockTest, FlagsTheKernelRefusesChangeNothing) {
  errno = 0;
  EXPECT_EQ(mlockall(0), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(mlockall(MCL_ONFAULT), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(mlockall(MCL_CURRENT | 0x100), -1);
  EXPECT_EQ(errno, EINVAL);
  char* p = static_cast<char*>(malloc(kMiB));
  ASSERT_NE(p, nullptr);
  memset(p, 3, kMiB);
  free(p);
}

}  // namespace
