// API conformance of the whole allocator: the libc entry points and every
// operator new/delete form behave as a drop-in malloc must (glibc semantics
// where the standards leave a choice).
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <new>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "gtest/gtest.h"
#include "tests/test_util.h"

// Some tests read a block after a realloc/reallocarray that failed (and so,
// by contract, left the block alone); GCC can't know that.
#pragma GCC diagnostic ignored "-Wuse-after-free"

namespace {

using hakmem_test::Check;
using hakmem_test::HugePagesAlways;
using hakmem_test::ResidentPages;
using hakmem_test::CheckSparse;
using hakmem_test::Fill;
using hakmem_test::FillSparse;
using hakmem_test::FirstMismatch;
using hakmem_test::Opaque;
using hakmem_test::OpaqueSize;
using hakmem_test::Rng;

constexpr size_t kKiB = 1024;
constexpr size_t kMiB = 1024 * 1024;

bool Aligned(const void* p, size_t alignment) {
  return reinterpret_cast<uintptr_t>(p) % alignment == 0;
}

bool AllZero(const void* p, size_t n) {
  const unsigned char* c = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; i++) {
    if (c[i] != 0) return false;
  }
  return true;
}

// ---- malloc / free -----------------------------------------------------------

TEST(Malloc, ZeroSizeIsUniqueAndFreeable) {
  std::set<void*> seen;
  std::vector<void*> blocks;
  for (int i = 0; i < 2000; i++) {
    void* p = malloc(OpaqueSize(0));
    ASSERT_NE(p, nullptr) << "malloc(0) #" << i;
    ASSERT_TRUE(Aligned(p, 16)) << p;
    ASSERT_TRUE(seen.insert(p).second) << "malloc(0) returned " << p << " twice";
    blocks.push_back(p);
  }
  for (void* p : blocks) free(p);
  // And again after they were freed: still valid, distinct pointers.
  void* a = malloc(OpaqueSize(0));
  void* b = malloc(OpaqueSize(0));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  free(a);
  free(b);
}

TEST(Free, NullIsANoOp) {
  for (int i = 0; i < 100; i++) {
    errno = 1234;
    free(Opaque(nullptr));
    EXPECT_EQ(errno, 1234) << "free(NULL) changed errno";
  }
  ::operator delete(Opaque(nullptr));
  ::operator delete[](Opaque(nullptr));
  ::operator delete(Opaque(nullptr), size_t{16});
  ::operator delete(Opaque(nullptr), std::align_val_t{64});
  ::operator delete(Opaque(nullptr), size_t{64}, std::align_val_t{64});
  // The heap still works.
  void* p = malloc(32);
  ASSERT_NE(p, nullptr);
  free(p);
}

// POSIX.1-2024 and glibc >= 2.33: free() leaves errno alone; programs call
// free() between a failing call and reading its errno.
TEST(Free, PreservesErrno) {
  for (size_t size : {size_t{16}, size_t{1000}, 40 * kKiB, 4 * kMiB, 200 * kMiB}) {
    void* p = malloc(size);
    ASSERT_NE(p, nullptr);
    memset(p, 1, size);
    errno = EILSEQ;
    free(p);
    EXPECT_EQ(errno, EILSEQ) << "free() of a " << size << "-byte block changed errno";
  }
}

TEST(Malloc, ImpossibleSizesFailWithEnomem) {
  const size_t kHuge[] = {
      SIZE_MAX,          SIZE_MAX - 1,         SIZE_MAX - 4095,
      SIZE_MAX - 65536,  SIZE_MAX / 2,         SIZE_MAX / 2 + 1,
      size_t{1} << 62,   size_t{1} << 63,      (size_t{1} << 62) + 12345,
      size_t{1} << 56,   PTRDIFF_MAX,          size_t{PTRDIFF_MAX} + 1,
  };
  for (size_t size : kHuge) {
    SCOPED_TRACE(size);
    errno = 0;
    EXPECT_EQ(malloc(OpaqueSize(size)), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    errno = 0;
    EXPECT_EQ(calloc(1, OpaqueSize(size)), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    errno = 0;
    EXPECT_EQ(realloc(nullptr, OpaqueSize(size)), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    errno = 0;
    EXPECT_EQ(aligned_alloc(64, OpaqueSize(size)), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    errno = 0;
    EXPECT_EQ(memalign(4096, OpaqueSize(size)), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    errno = 0;
    EXPECT_EQ(valloc(OpaqueSize(size)), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    errno = 0;
    EXPECT_EQ(pvalloc(OpaqueSize(size)), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    void* out = reinterpret_cast<void*>(0x1234);
    EXPECT_EQ(posix_memalign(&out, 64, OpaqueSize(size)), ENOMEM);
    EXPECT_TRUE(out == reinterpret_cast<void*>(0x1234) || out == nullptr) << out;
  }
  // The heap is fine afterwards.
  void* p = malloc(100);
  ASSERT_NE(p, nullptr);
  free(p);
}

// ---- calloc / reallocarray ---------------------------------------------------

const size_t kCallocSizes[] = {
    1,          15,          16,          17,          100,        1000,
    1024,       1025,        2048,        4095,        4096,       4097,
    10000,      32767,       32768,       32769,       40000,      65536,
    100 * kKiB, 256 * kKiB,  256 * kKiB + 1, 1 * kMiB, 2 * kMiB - 1, 2 * kMiB,
    2 * kMiB + 1, 8 * kMiB,  40 * kMiB,
};

TEST(Calloc, Zeroes) {
  for (size_t size : kCallocSizes) {
    for (size_t count : {size_t{1}, size_t{3}}) {
      unsigned char* p = static_cast<unsigned char*>(calloc(count, size));
      ASSERT_NE(p, nullptr) << count << " x " << size;
      ASSERT_TRUE(Aligned(p, 16));
      EXPECT_TRUE(AllZero(p, count * size)) << count << " x " << size;
      free(p);
    }
  }
}

// A block that comes back from the free lists or the caches is dirty:
// calloc must still hand it out zeroed.
TEST(Calloc, ZeroesRecycledBlocks) {
  for (int round = 0; round < 3; round++) {
    for (size_t size : kCallocSizes) {
      // Dirty several blocks of the class so calloc can't dodge them.
      void* dirty[8];
      for (void*& d : dirty) {
        d = malloc(size);
        ASSERT_NE(d, nullptr);
        memset(d, 0xA5, size);
      }
      for (void* d : dirty) free(d);
      for (int i = 0; i < 8; i++) {
        unsigned char* p = static_cast<unsigned char*>(calloc(1, size));
        ASSERT_NE(p, nullptr);
        ASSERT_TRUE(AllZero(p, size)) << "calloc(1, " << size
                                      << ") returned a dirty block, round " << round;
        dirty[i] = p;
      }
      for (void* d : dirty) free(d);
      // Same total, other shape.
      unsigned char* q = static_cast<unsigned char*>(calloc(size, 1));
      ASSERT_NE(q, nullptr);
      ASSERT_TRUE(AllZero(q, size)) << "calloc(" << size << ", 1)";
      free(q);
    }
  }
}

// A big calloc'd block whose pages are fresh from the kernel (or were given
// back) is not cleared past its first page: a table used sparsely costs the
// pages it uses, as under glibc. Blocks written before are cleared whole.
TEST(Calloc, BigBlocksCostOnlyThePagesUsed) {
  std::thread([] {
    malloc_trim(0);  // hakmem's cached SuperSlabs unmapped: new ones come fresh
    constexpr size_t kSize = 150000;  // a class of its own in these tests
    constexpr int kBlocks = 64;
    std::vector<unsigned char*> blocks;
    int resident = 0;
    for (int i = 0; i < kBlocks; i++) {
      unsigned char* p = static_cast<unsigned char*>(calloc(1, OpaqueSize(kSize)));
      ASSERT_NE(p, nullptr);
      ASSERT_TRUE(Aligned(p, 4096));
      resident += ResidentPages(p, kSize);
      blocks.push_back(p);
    }
    // 37 pages each if cleared whole.
    if (!HugePagesAlways()) {
      EXPECT_LE(resident, 2 * kBlocks);
    }
    for (unsigned char* p : blocks) ASSERT_TRUE(AllZero(p, kSize));
    // Written all over, freed, calloc'd again: zero.
    for (unsigned char*& p : blocks) {
      memset(p, 0xA5, kSize);
      free(p);
    }
    for (unsigned char*& p : blocks) {
      p = static_cast<unsigned char*>(calloc(1, OpaqueSize(kSize)));
      ASSERT_TRUE(AllZero(p, kSize));
      memset(p, 0x5A, kSize);
    }
    // Freed around live ones, their pages past the first given back by a
    // trim, calloc'd again: zero (the first page, written, cleared).
    for (int i = 0; i < kBlocks; i++) {
      if (i % 8 != 0) free(blocks[i]);
    }
    malloc_trim(0);
    for (int i = 0; i < kBlocks; i++) {
      if (i % 8 == 0) continue;
      blocks[i] = static_cast<unsigned char*>(calloc(1, OpaqueSize(kSize)));
      ASSERT_TRUE(AllZero(blocks[i], kSize)) << i;
    }
    for (unsigned char* p : blocks) free(p);
  }).join();
}

TEST(Calloc, OverflowFailsWithEnomem) {
  const std::pair<size_t, size_t> kOverflow[] = {
      {SIZE_MAX, 2},
      {2, SIZE_MAX},
      {SIZE_MAX / 2 + 1, 2},
      {size_t{1} << 32, size_t{1} << 32},
      {size_t{1} << 33, size_t{1} << 31},
      {SIZE_MAX, SIZE_MAX},
      {(SIZE_MAX / 16) + 1, 16},
  };
  for (auto [n, size] : kOverflow) {
    errno = 0;
    EXPECT_EQ(calloc(OpaqueSize(n), OpaqueSize(size)), nullptr) << n << " x " << size;
    EXPECT_EQ(errno, ENOMEM) << n << " x " << size;
  }
  // Large but not overflowing, still impossible.
  errno = 0;
  EXPECT_EQ(calloc(OpaqueSize(size_t{1} << 31), OpaqueSize(size_t{1} << 31)), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  // calloc(0, x) and calloc(x, 0) are valid allocations.
  void* a = calloc(0, 100);
  void* b = calloc(100, 0);
  EXPECT_NE(a, nullptr);
  EXPECT_NE(b, nullptr);
  free(a);
  free(b);
}

TEST(Reallocarray, OverflowFailsWithEnomemAndKeepsTheBlock) {
  errno = 0;
  EXPECT_EQ(reallocarray(nullptr, OpaqueSize(SIZE_MAX), 2), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  void* p = reallocarray(nullptr, 10, 10);
  ASSERT_NE(p, nullptr);
  Fill(p, 100, 7);
  errno = 0;
  EXPECT_EQ(reallocarray(p, OpaqueSize(size_t{1} << 33), OpaqueSize(size_t{1} << 33)),
            nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(reallocarray(p, OpaqueSize(SIZE_MAX / 3), 4), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  // The original block is untouched and still owned by us.
  p = Opaque(p);  // not freed by the failed calls
  EXPECT_TRUE(Check(p, 100, 7));
  void* q = reallocarray(p, 1000, 8);
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(Check(q, 100, 7));
  free(q);
}

// ---- realloc -----------------------------------------------------------------

TEST(Realloc, NullPointerIsMalloc) {
  for (size_t size : {size_t{0}, size_t{1}, size_t{100}, 40 * kKiB, 3 * kMiB}) {
    void* p = realloc(nullptr, size);
    ASSERT_NE(p, nullptr) << size;
    ASSERT_TRUE(Aligned(p, 16));
    EXPECT_GE(malloc_usable_size(p), size);
    memset(p, 0x5a, size);
    free(p);
  }
}

TEST(Realloc, ImpossibleSizeKeepsTheBlock) {
  for (size_t size : {size_t{48}, 50 * kKiB, 5 * kMiB}) {
    void* p = malloc(size);
    ASSERT_NE(p, nullptr);
    Fill(p, size, size);
    for (size_t huge : {SIZE_MAX, SIZE_MAX / 2, size_t{1} << 62}) {
      errno = 0;
      EXPECT_EQ(realloc(p, OpaqueSize(huge)), nullptr);
      EXPECT_EQ(errno, ENOMEM);
    }
    p = Opaque(p);  // not freed by the failed calls
    EXPECT_TRUE(Check(p, size, size));
    free(p);
  }
}

// glibc semantics: realloc(p, 0) frees p and returns NULL. Freeing p again
// afterwards must then be a double free.
TEST(Realloc, ZeroSizeFreesAndReturnsNull) {
  for (size_t size : {size_t{1}, size_t{200}, 20 * kKiB, 1 * kMiB}) {
    void* p = malloc(size);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(realloc(p, OpaqueSize(0)), nullptr) << size;
  }
}

TEST(ReallocDeathTest, ZeroSizeReallyFrees) {
  for (size_t size : {size_t{64}, 2 * kMiB}) {
    EXPECT_DEATH(
        {
          void* p = Opaque(malloc(size));
          if (realloc(p, OpaqueSize(0)) != nullptr) _exit(0);
          free(Opaque(p));
          _exit(0);  // not reached if the double free is caught
        },
        "hakmem: [^\n]*0x[0-9a-f]+: ")
        << size;
  }
}

// Sizes that hit every size class and both neighbours of every class
// boundary from 1 byte to 70000 (where the slab classes end and large
// blocks begin).
std::vector<size_t> ClassWalkSizes() {
  std::set<size_t> sizes;
  for (size_t s = 1; s <= 70000; s += std::max<size_t>(1, s / 64)) {
    sizes.insert(s);
    void* p = malloc(s);
    const size_t usable = malloc_usable_size(p);
    free(p);
    sizes.insert(usable);
    sizes.insert(usable + 1);
    if (usable > 1) sizes.insert(usable - 1);
  }
  return {sizes.begin(), sizes.end()};
}

void ReallocWalk(const std::vector<size_t>& sizes, uint64_t seed) {
  size_t cur = sizes.front();
  char* p = static_cast<char*>(malloc(cur));
  ASSERT_NE(p, nullptr);
  Fill(p, cur, seed);
  for (size_t i = 1; i < sizes.size(); i++) {
    const size_t next = sizes[i];
    char* q = static_cast<char*>(realloc(p, next));
    ASSERT_NE(q, nullptr) << cur << " -> " << next;
    ASSERT_TRUE(Aligned(q, 16)) << cur << " -> " << next;
    ASSERT_GE(malloc_usable_size(q), next) << cur << " -> " << next;
    const size_t keep = std::min(cur, next);
    const size_t bad = FirstMismatch(q, keep, seed);
    ASSERT_EQ(bad, SIZE_MAX) << "realloc " << cur << " -> " << next
                             << " lost the contents at offset " << bad;
    seed++;
    Fill(q, next, seed);
    p = q;
    cur = next;
  }
  free(p);
}

TEST(Realloc, GrowsAndShrinksAcrossEverySizeClass) {
  std::vector<size_t> sizes = ClassWalkSizes();
  ASSERT_GT(sizes.size(), 200u);
  ReallocWalk(sizes, 1);  // growing
  std::reverse(sizes.begin(), sizes.end());
  ReallocWalk(sizes, 1000000);  // shrinking
}

TEST(Realloc, GrowsAndShrinksIntoLargeBlocks) {
  std::vector<size_t> sizes;
  for (double s = 30000; s < 64.0 * kMiB; s *= 1.7) sizes.push_back(static_cast<size_t>(s));
  sizes.push_back(64 * kMiB);
  ReallocWalk(sizes, 5);
  std::reverse(sizes.begin(), sizes.end());
  sizes.push_back(1000);
  sizes.push_back(16);
  sizes.push_back(1);
  ReallocWalk(sizes, 50000);
  // Large <-> small in one step, both ways.
  ReallocWalk({10, 64 * kMiB, 10, 5 * kMiB, 200, 33000, 32768, 100000, 8}, 77);
}

TEST(Realloc, RandomPairsKeepContents) {
  Rng rng(42);
  auto random_size = [&]() -> size_t {
    switch (rng.Below(4)) {
      case 0: return rng.Range(0, 256);
      case 1: return rng.Range(0, 4096);
      case 2: return rng.Range(0, 70000);
      default: return rng.Range(0, 3 * kMiB);
    }
  };
  for (int i = 0; i < 3000; i++) {
    const size_t a = random_size();
    const size_t b = random_size();
    char* p = static_cast<char*>(malloc(a));
    ASSERT_NE(p, nullptr);
    Fill(p, a, i);
    if (b == 0) {
      EXPECT_EQ(realloc(p, 0), nullptr);
      continue;
    }
    char* q = static_cast<char*>(realloc(p, b));
    ASSERT_NE(q, nullptr) << a << " -> " << b;
    ASSERT_TRUE(Aligned(q, 16));
    ASSERT_TRUE(Check(q, std::min(a, b), i)) << a << " -> " << b;
    free(q);
  }
}

// ---- aligned allocation -----------------------------------------------------

TEST(PosixMemalign, RejectsBadAlignmentWithEinval) {
  const size_t kBad[] = {0, 1, 2, 4, 3, 5, 6, 7, 12, 24, 48, 96, 100, 1000,
                         4097, 3 * 4096, (size_t{1} << 20) + 1, SIZE_MAX,
                         SIZE_MAX / 2};
  for (size_t alignment : kBad) {
    void* out = reinterpret_cast<void*>(0x5678);
    errno = 0;
    EXPECT_EQ(posix_memalign(&out, alignment, 64), EINVAL) << "alignment " << alignment;
    EXPECT_TRUE(out == reinterpret_cast<void*>(0x5678) || out == nullptr)
        << "alignment " << alignment << ": *memptr set to " << out;
  }
  // sizeof(void*) itself is fine.
  void* out = nullptr;
  ASSERT_EQ(posix_memalign(&out, sizeof(void*), 64), 0);
  EXPECT_TRUE(Aligned(out, 16));
  free(out);
}

TEST(AlignedAlloc, RejectsNonPowerOfTwoWithEinval) {
  for (size_t alignment : {size_t{0}, size_t{3}, size_t{24}, size_t{100}, size_t{4097}}) {
    errno = 0;
    EXPECT_EQ(aligned_alloc(OpaqueSize(alignment), 64), nullptr) << alignment;
    EXPECT_EQ(errno, EINVAL) << alignment;
  }
}

TEST(Memalign, RoundsANonPowerOfTwoAlignmentUp) {
  // glibc behaviour: memalign(24, n) is memalign(32, n).
  for (size_t alignment : {size_t{24}, size_t{48}, size_t{100}, size_t{3000}, size_t{5000}}) {
    size_t pow2 = 1;
    while (pow2 < alignment) pow2 <<= 1;
    void* p = memalign(OpaqueSize(alignment), 100);
    ASSERT_NE(p, nullptr) << alignment;
    EXPECT_TRUE(Aligned(p, pow2)) << alignment << " -> " << p;
    memset(p, 1, 100);
    free(p);
  }
}

const size_t kAlignedSizes[] = {0,     1,     15,     16,     17,    100,
                                1000,  4095,  4096,   4097,   32767, 32768,
                                32769, 65536, 100000, 262144, 262145, kMiB + 7};

TEST(AlignedAllocation, HonoursEveryPowerOfTwoUpTo1MiB) {
  for (size_t alignment = 1; alignment <= kMiB; alignment <<= 1) {
    SCOPED_TRACE("alignment " + std::to_string(alignment));
    struct Block {
      void* p;
      size_t size;
      int how;  // 0 aligned_alloc, 1 memalign, 2 posix_memalign, 3 new
    };
    std::vector<Block> blocks;
    for (size_t size : kAlignedSizes) {
      for (int how = 0; how < 4; how++) {
        void* p = nullptr;
        switch (how) {
          case 0: p = aligned_alloc(alignment, size); break;
          case 1: p = memalign(alignment, size); break;
          case 2:
            if (alignment < sizeof(void*)) continue;
            ASSERT_EQ(posix_memalign(&p, alignment, size), 0) << size;
            break;
          case 3: p = ::operator new(size, std::align_val_t{alignment}); break;
        }
        ASSERT_NE(p, nullptr) << "size " << size << " how " << how;
        ASSERT_TRUE(Aligned(p, alignment)) << p << " size " << size << " how " << how;
        ASSERT_TRUE(Aligned(p, 16)) << p;
        ASSERT_GE(malloc_usable_size(p), size) << "size " << size << " how " << how;
        Fill(p, size, size * 31 + how);
        blocks.push_back({p, size, how});
      }
    }
    for (const Block& b : blocks) {
      ASSERT_TRUE(Check(b.p, b.size, b.size * 31 + b.how))
          << "aligned block of " << b.size << " bytes (how " << b.how << ") overwritten";
      if (b.how == 3) {
        if (b.size % 2 == 0) {
          ::operator delete(b.p, b.size, std::align_val_t{alignment});
        } else {
          ::operator delete(b.p, std::align_val_t{alignment});
        }
      } else {
        free(b.p);
      }
    }
  }
}

// Huge-page-aligned buffers and beyond, up to 1 GiB: aligned, usable,
// reallocated with their contents, freed; above, ENOMEM (the alignment is
// valid: not EINVAL).
TEST(AlignedAllocation, AboveOneMiBUpTo1GiB) {
  for (size_t alignment : {2 * kMiB, 4 * kMiB, 64 * kMiB, 1024 * kMiB}) {
    for (size_t size : {size_t{100}, 3 * kMiB}) {
      void* p = nullptr;
      ASSERT_EQ(posix_memalign(&p, alignment, size), 0) << alignment << " " << size;
      EXPECT_TRUE(Aligned(p, alignment)) << p;
      EXPECT_GE(malloc_usable_size(p), size);
      hakmem_test::Fill(p, size, alignment);
      void* q = realloc(p, 2 * size + 5 * kMiB);
      ASSERT_NE(q, nullptr);
      EXPECT_EQ(hakmem_test::FirstMismatch(q, size, alignment), SIZE_MAX);
      free(q);
      q = aligned_alloc(alignment, size);
      ASSERT_NE(q, nullptr);
      EXPECT_TRUE(Aligned(q, alignment)) << q;
      free(q);
    }
  }
  void* p = nullptr;
  EXPECT_EQ(posix_memalign(&p, 2048 * kMiB, 100), ENOMEM);
  errno = 0;
  EXPECT_EQ(aligned_alloc(2048 * kMiB, 100), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

TEST(AlignedAllocation, VallocAndPvalloc) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  for (size_t size : {size_t{0}, size_t{1}, size_t{100}, page - 1, page, page + 1,
                      5 * page + 3, size_t{40000}, kMiB + 1}) {
    void* v = valloc(size);
    ASSERT_NE(v, nullptr) << size;
    EXPECT_TRUE(Aligned(v, page)) << v;
    EXPECT_GE(malloc_usable_size(v), size);
    memset(v, 0x11, size);
    void* pv = pvalloc(size);
    ASSERT_NE(pv, nullptr) << size;
    EXPECT_TRUE(Aligned(pv, page)) << pv;
    const size_t rounded = size == 0 ? page : (size + page - 1) / page * page;
    ASSERT_GE(malloc_usable_size(pv), rounded) << "pvalloc(" << size << ")";
    memset(pv, 0x22, rounded);  // pvalloc's whole rounded size is usable
    free(v);
    free(pv);
  }
}

// ---- sizes -------------------------------------------------------------------

// Every size from 0 to 64 KiB: aligned, usable >= size, writable to the end
// of the usable size, and no block overlaps the 255 allocated before it.
TEST(EverySize, ZeroTo64KiB) {
  constexpr size_t kWindow = 255;
  struct Live {
    void* p = nullptr;
    size_t usable = 0;
  };
  std::vector<Live> window(kWindow);
  for (size_t size = 0; size <= 64 * kKiB; size++) {
    Live& slot = window[size % kWindow];
    if (slot.p != nullptr) {
      const size_t bad = FirstMismatch(slot.p, slot.usable, slot.usable * 7 + 1);
      ASSERT_EQ(bad, SIZE_MAX) << "block of usable size " << slot.usable
                               << " corrupted at offset " << bad;
      free(slot.p);
    }
    void* p = malloc(size);
    ASSERT_NE(p, nullptr) << size;
    ASSERT_TRUE(Aligned(p, 16)) << "malloc(" << size << ") = " << p;
    const size_t usable = malloc_usable_size(p);
    ASSERT_GE(usable, size) << "malloc_usable_size(malloc(" << size << "))";
    ASSERT_LE(usable, size + size / 2 + 4096) << "wasteful class for " << size;
    Fill(p, usable, usable * 7 + 1);
    slot = {p, usable};
  }
  for (Live& slot : window) {
    ASSERT_TRUE(Check(slot.p, slot.usable, slot.usable * 7 + 1));
    free(slot.p);
  }
}

TEST(EverySize, LargeBlocksUpToHundredsOfMiB) {
  const size_t kSizes[] = {64 * kKiB + 1, 100000,       kMiB - 1,     kMiB,
                           kMiB + 1,      2 * kMiB - 1, 2 * kMiB,     2 * kMiB + 1,
                           3 * kMiB + 17, 16 * kMiB,    64 * kMiB + 5, 100 * kMiB,
                           256 * kMiB,    400 * kMiB};
  std::vector<std::pair<void*, size_t>> live;
  for (size_t size : kSizes) {
    void* p = malloc(size);
    ASSERT_NE(p, nullptr) << size;
    ASSERT_TRUE(Aligned(p, 16)) << p;
    const size_t usable = malloc_usable_size(p);
    ASSERT_GE(usable, size);
    FillSparse(p, usable, size);
    live.push_back({p, size});
  }
  for (auto [p, size] : live) {
    ASSERT_TRUE(CheckSparse(p, malloc_usable_size(p), size)) << size;
    free(p);
  }
  // Again, now that the caches have something in them.
  for (size_t size : kSizes) {
    void* p = malloc(size);
    ASSERT_NE(p, nullptr) << size;
    FillSparse(p, size, size + 1);
    ASSERT_TRUE(CheckSparse(p, size, size + 1));
    free(p);
  }
}

TEST(UsableSize, NullIsZero) { EXPECT_EQ(malloc_usable_size(nullptr), 0u); }

// ---- random mix ----------------------------------------------------------------

TEST(Random, AllocFreeWithContentsVerified) {
  Rng rng(20240601);
  struct Slot {
    char* p = nullptr;
    size_t size = 0;
    uint64_t seed = 0;
  };
  std::vector<Slot> slots(4096);
  const int kOps = 400000;
  for (int op = 0; op < kOps; op++) {
    Slot& s = slots[rng.Below(slots.size())];
    if (s.p != nullptr) {
      ASSERT_TRUE(Check(s.p, s.size, s.seed)) << "op " << op << " size " << s.size;
      if (rng.Below(4) == 0) {  // realloc instead of free
        const size_t n = rng.Below(8) == 0 ? rng.Range(0, 200000) : rng.Range(1, 2048);
        char* q = static_cast<char*>(realloc(s.p, n));
        if (n == 0) {
          ASSERT_EQ(q, nullptr);
          s = Slot();
          continue;
        }
        ASSERT_NE(q, nullptr);
        ASSERT_TRUE(Aligned(q, 16));
        ASSERT_TRUE(Check(q, std::min(n, s.size), s.seed)) << s.size << " -> " << n;
        s.p = q;
        s.size = n;
        s.seed = rng.Next();
        Fill(q, n, s.seed);
        continue;
      }
      free(s.p);
      s = Slot();
      continue;
    }
    size_t n;
    const uint64_t r = rng.Below(100);
    if (r < 70) n = rng.Range(0, 256);
    else if (r < 92) n = rng.Range(257, 4096);
    else if (r < 99) n = rng.Range(4097, 40000);
    else n = rng.Range(40001, 600000);
    char* p;
    switch (rng.Below(8)) {
      case 0: p = static_cast<char*>(calloc(1, n)); break;
      case 1: p = static_cast<char*>(aligned_alloc(size_t{1} << rng.Range(4, 12), n)); break;
      default: p = static_cast<char*>(malloc(n)); break;
    }
    ASSERT_NE(p, nullptr) << n;
    ASSERT_TRUE(Aligned(p, 16)) << p;
    s.p = p;
    s.size = n;
    s.seed = rng.Next();
    Fill(p, n, s.seed);
  }
  for (Slot& s : slots) {
    if (s.p == nullptr) continue;
    ASSERT_TRUE(Check(s.p, s.size, s.seed));
    free(s.p);
  }
}

// ---- C++ ---------------------------------------------------------------------

struct alignas(64) Aligned64 {
  char bytes[100];
};
struct alignas(4096) Aligned4K {
  char bytes[10];
};
struct alignas(256 * 1024) Aligned256K {
  int x;
};

int g_live_objects = 0;
struct Counted {
  Counted() : payload(0x12345678) { g_live_objects++; }
  ~Counted() {
    EXPECT_EQ(payload, 0x12345678u);
    g_live_objects--;
  }
  uint32_t payload;
};
struct alignas(128) CountedAligned {
  CountedAligned() { g_live_objects++; }
  ~CountedAligned() { g_live_objects--; }
  char bytes[40];
};

TEST(OperatorNew, EveryFormAllocatesAndEveryDeleteFrees) {
  for (size_t size : {size_t{0}, size_t{1}, size_t{24}, size_t{1000}, size_t{32768},
                      size_t{40000}, 3 * kMiB}) {
    SCOPED_TRACE(size);
    void* p;
    p = ::operator new(size);
    ASSERT_TRUE(Aligned(p, 16));
    memset(p, 1, size);
    ::operator delete(p);
    p = ::operator new(size);
    memset(p, 1, size);
    ::operator delete(p, size);
    p = ::operator new[](size);
    ASSERT_TRUE(Aligned(p, 16));
    memset(p, 1, size);
    ::operator delete[](p);
    p = ::operator new[](size);
    memset(p, 1, size);
    ::operator delete[](p, size);
    p = ::operator new(size, std::nothrow);
    ASSERT_NE(p, nullptr);
    memset(p, 1, size);
    ::operator delete(p, std::nothrow);
    p = ::operator new[](size, std::nothrow);
    ASSERT_NE(p, nullptr);
    memset(p, 1, size);
    ::operator delete[](p, std::nothrow);
    for (size_t alignment : {size_t{16}, size_t{32}, size_t{64}, size_t{4096}, size_t{65536}}) {
      const std::align_val_t al{alignment};
      p = ::operator new(size, al);
      ASSERT_TRUE(Aligned(p, alignment));
      memset(p, 2, size);
      ::operator delete(p, al);
      p = ::operator new(size, al);
      memset(p, 2, size);
      ::operator delete(p, size, al);
      p = ::operator new[](size, al);
      ASSERT_TRUE(Aligned(p, alignment));
      memset(p, 2, size);
      ::operator delete[](p, al);
      p = ::operator new[](size, al);
      memset(p, 2, size);
      ::operator delete[](p, size, al);
      p = ::operator new(size, al, std::nothrow);
      ASSERT_NE(p, nullptr);
      ASSERT_TRUE(Aligned(p, alignment));
      memset(p, 2, size);
      ::operator delete(p, al, std::nothrow);
      p = ::operator new[](size, al, std::nothrow);
      ASSERT_NE(p, nullptr);
      ASSERT_TRUE(Aligned(p, alignment));
      memset(p, 2, size);
      ::operator delete[](p, al, std::nothrow);
    }
  }
}

TEST(OperatorNew, NewExpressionsWithCookiesAndOverAlignment) {
  g_live_objects = 0;
  for (int n : {1, 2, 7, 100, 1000, 10000}) {
    Counted* c = new Counted[n];  // array cookie; sized delete[] with it
    EXPECT_EQ(g_live_objects, n);
    delete[] c;
    EXPECT_EQ(g_live_objects, 0);
    CountedAligned* ca = new CountedAligned[n];  // over-aligned with cookie
    EXPECT_TRUE(Aligned(ca, 128)) << ca;
    delete[] ca;
    EXPECT_EQ(g_live_objects, 0);
    Aligned64* a = new Aligned64[n];
    EXPECT_TRUE(Aligned(a, 64));
    memset(a, 3, sizeof(Aligned64) * n);
    delete[] a;
  }
  auto* one = new Aligned64;
  EXPECT_TRUE(Aligned(one, 64));
  delete one;
  auto* page = new Aligned4K;
  EXPECT_TRUE(Aligned(page, 4096));
  delete page;
  auto* big = new Aligned256K;
  EXPECT_TRUE(Aligned(big, 256 * 1024));
  delete big;
  auto* nothrow = new (std::nothrow) Aligned4K[3];
  ASSERT_NE(nothrow, nullptr);
  EXPECT_TRUE(Aligned(nothrow, 4096));
  delete[] nothrow;
  auto counted = std::make_unique<Counted>();
  auto shared = std::make_shared<Aligned64>();
  EXPECT_TRUE(Aligned(shared.get(), 64));
}

TEST(OperatorNew, ThrowsBadAllocOnHugeRequests) {
  for (size_t size : {SIZE_MAX, SIZE_MAX / 2, size_t{1} << 62, size_t{1} << 50}) {
    EXPECT_THROW(::operator delete(::operator new(OpaqueSize(size))), std::bad_alloc)
        << size;
    EXPECT_THROW(::operator delete[](::operator new[](OpaqueSize(size))), std::bad_alloc)
        << size;
    EXPECT_THROW(::operator delete(::operator new(OpaqueSize(size), std::align_val_t{64}),
                                   std::align_val_t{64}),
                 std::bad_alloc)
        << size;
    EXPECT_THROW(::operator delete[](::operator new[](OpaqueSize(size), std::align_val_t{4096}),
                                     std::align_val_t{4096}),
                 std::bad_alloc)
        << size;
    EXPECT_EQ(::operator new(OpaqueSize(size), std::nothrow), nullptr) << size;
    EXPECT_EQ(::operator new[](OpaqueSize(size), std::nothrow), nullptr) << size;
    EXPECT_EQ(::operator new(OpaqueSize(size), std::align_val_t{64}, std::nothrow), nullptr);
    EXPECT_EQ(::operator new[](OpaqueSize(size), std::align_val_t{64}, std::nothrow),
              nullptr);
  }
  // A std::vector asking for too much throws (length_error or bad_alloc).
  std::vector<char> v;
  EXPECT_ANY_THROW(v.reserve(OpaqueSize(size_t{1} << 60)));
}

int g_handler_calls = 0;
void CountingNewHandler() {
  if (++g_handler_calls >= 3) std::set_new_handler(nullptr);
}

TEST(OperatorNew, CallsTheNewHandlerBeforeThrowing) {
  g_handler_calls = 0;
  std::set_new_handler(&CountingNewHandler);
  EXPECT_THROW(::operator delete(::operator new(OpaqueSize(SIZE_MAX / 2))), std::bad_alloc);
  EXPECT_EQ(g_handler_calls, 3);
  std::set_new_handler(nullptr);
}

// The nothrow forms run the handler too before they give up (the standard's
// default behaviour: they call the throwing form and catch).
TEST(OperatorNew, NothrowFormsCallTheNewHandlerBeforeReturningNull) {
  g_handler_calls = 0;
  std::set_new_handler(&CountingNewHandler);
  EXPECT_EQ(::operator new(OpaqueSize(SIZE_MAX / 2), std::nothrow), nullptr);
  EXPECT_EQ(g_handler_calls, 3);
  g_handler_calls = 0;
  std::set_new_handler(&CountingNewHandler);
  EXPECT_EQ(::operator new[](OpaqueSize(SIZE_MAX / 2), std::align_val_t{64}, std::nothrow),
            nullptr);
  EXPECT_EQ(g_handler_calls, 3);
  std::set_new_handler(nullptr);
}

TEST(OperatorNew, StandardContainers) {
  std::map<std::string, std::vector<int>> m;
  std::unordered_map<int, std::string> u;
  for (int i = 0; i < 20000; i++) {
    m["key" + std::to_string(i % 997)].push_back(i);
    u[i] = std::string(static_cast<size_t>(i % 300), static_cast<char>('a' + i % 26));
  }
  EXPECT_EQ(m.size(), 997u);
  long total = 0;
  for (auto& [k, v] : m) total += static_cast<long>(v.size());
  EXPECT_EQ(total, 20000);
  for (int i = 0; i < 20000; i += 777) {
    EXPECT_EQ(u[i].size(), static_cast<size_t>(i % 300));
  }
  std::string s;
  for (int i = 0; i < 200000; i++) s += static_cast<char>('0' + i % 10);
  EXPECT_EQ(s.size(), 200000u);
  EXPECT_EQ(s[123456], '6');
}

// ---- blocks allocated inside libc ------------------------------------------------
// libc's own allocations (strdup, getline, ...) must come from the active
// malloc, or freeing them would be reported as foreign pointers.
TEST(LibcInternal, BlocksAllocatedByLibcAreFreeable) {
  for (int i = 0; i < 200; i++) {
    char* s = strdup("hello, allocator");
    ASSERT_NE(s, nullptr);
    EXPECT_GE(malloc_usable_size(s), 17u);
    free(s);
    s = strndup("abcdefghijklmnop", 5);
    EXPECT_STREQ(s, "abcde");
    free(s);
    char* a = nullptr;
    ASSERT_GT(asprintf(&a, "%d-%s-%0500d", i, "x", 7), 0);
    EXPECT_GE(malloc_usable_size(a), strlen(a) + 1);
    free(a);
  }
  FILE* f = fmemopen(const_cast<char*>("line one\nline two\n"), 18, "r");
  ASSERT_NE(f, nullptr);
  char* line = nullptr;
  size_t cap = 0;
  EXPECT_EQ(getline(&line, &cap, f), 9);
  EXPECT_STREQ(line, "line one\n");
  free(line);
  fclose(f);
  char* buf = nullptr;
  size_t len = 0;
  FILE* ms = open_memstream(&buf, &len);
  ASSERT_NE(ms, nullptr);
  for (int i = 0; i < 10000; i++) fprintf(ms, "%d,", i);
  fclose(ms);
  EXPECT_GT(len, 40000u);
  EXPECT_GE(malloc_usable_size(buf), len + 1);
  free(buf);
  char* rp = realpath("/proc/self/exe", nullptr);
  ASSERT_NE(rp, nullptr);
  free(rp);
  regex_t re;
  ASSERT_EQ(regcomp(&re, "^(a|b)+[0-9]{2,5}$", REG_EXTENDED), 0);
  EXPECT_EQ(regexec(&re, "abab123", 0, nullptr, 0), 0);
  regfree(&re);
  // A FILE with a big buffer, opened and closed many times.
  for (int i = 0; i < 200; i++) {
    FILE* t = fopen("/proc/self/statm", "r");
    ASSERT_NE(t, nullptr);
    setvbuf(t, nullptr, _IOFBF, 1 << 16);
    fclose(t);
  }
}

// C23 free_sized / free_aligned_sized (glibc 2.36 lacks them; hakmem
// exports both, so the weak references must resolve to hakmem's).
extern "C" void free_sized(void* p, size_t size) __attribute__((weak));
extern "C" void free_aligned_sized(void* p, size_t alignment, size_t size)
    __attribute__((weak));

// glibc's other exported names: __libc_valloc and __libc_pvalloc, and cfree
// (gone from its headers since 2.26, still exported for older binaries):
// a block from any of them is freed like any other, and cfree frees.
std::string ObjectDefining(const char* name) {
  Dl_info info;
  void* fn = dlsym(RTLD_DEFAULT, name);
  if (fn == nullptr || dladdr(fn, &info) == 0 || info.dli_fname == nullptr) return "(none)";
  return info.dli_fname;
}

TEST(LibcInternal, EveryExportedAllocationNameIsTheActiveAllocators) {
  using AllocFn = void* (*)(size_t);
  const std::string active = ObjectDefining("malloc");  // hakmem's (checked at start)
  for (const char* name : {"__libc_valloc", "__libc_pvalloc"}) {
    EXPECT_EQ(ObjectDefining(name), active) << name;
  }
  for (const char* name : {"__libc_valloc", "__libc_pvalloc"}) {
    auto fn = reinterpret_cast<AllocFn>(dlsym(RTLD_DEFAULT, name));
    ASSERT_NE(fn, nullptr) << name;
    void* p = fn(100);
    ASSERT_NE(p, nullptr) << name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 4096, 0u) << name;
    free(p);
  }
  // Only old binaries call cfree (glibc's is a compatibility symbol that no
  // program links to now): a linked test binary does not export hakmem's.
  const bool preloaded = active.size() >= 13 && active.compare(active.size() - 13, 13, "/libhakmem.so") == 0;
  if (!preloaded) return;
  EXPECT_EQ(ObjectDefining("cfree"), active);
  auto cfree_fn = reinterpret_cast<void (*)(void*)>(dlsym(RTLD_DEFAULT, "cfree"));
  ASSERT_NE(cfree_fn, nullptr);
  void* p = malloc(100);
  cfree_fn(p);
  EXPECT_EQ(malloc(100), p) << "cfree did not free the block (LIFO reuse expected)";
  free(p);
}

// malloc_trim says whether it gave memory back, as glibc's: 1 after freeing
// 20 MB of blocks, 0 when called again with nothing left to give.
TEST(MallocTrim, ReturnsWhetherItGaveMemoryBack) {
  std::vector<void*> blocks;
  for (int i = 0; i < 20000; i++) blocks.push_back(malloc(1000));
  for (void* p : blocks) free(p);
  EXPECT_EQ(malloc_trim(0), 1);
  EXPECT_EQ(malloc_trim(0), 0);
}

TEST(C23, FreeSizedAndFreeAlignedSized) {
  ASSERT_NE(&free_sized, nullptr) << "free_sized is not exported";
  ASSERT_NE(&free_aligned_sized, nullptr) << "free_aligned_sized is not exported";
  for (size_t size : {size_t{1}, size_t{100}, size_t{5000}, 300 * kKiB}) {
    void* p = malloc(size);
    ASSERT_NE(p, nullptr);
    memset(p, 1, size);
    free_sized(p, size);
    p = aligned_alloc(256, size);
    ASSERT_NE(p, nullptr);
    memset(p, 1, size);
    free_aligned_sized(p, 256, size);
  }
  free_sized(nullptr, 0);
  void* p = malloc(64);
  ASSERT_NE(p, nullptr);
  free(p);
}

// glibc's statistics calls report hakmem's memory (under LD_PRELOAD too: a
// program's mallinfo2 must not read glibc's untouched arena).
TEST(Mallinfo, ReportsWhatTheProgramHolds) {
  std::vector<void*> small, large;
  small.reserve(100000);  // a large block of its own: before the first count
  large.reserve(50);
  const struct mallinfo2 before = mallinfo2();
  for (int i = 0; i < 100000; i++) {
    small.push_back(malloc(100));
    ASSERT_NE(small.back(), nullptr);
    memset(small.back(), 1, 100);
  }
  for (int i = 0; i < 50; i++) {  // large: above the largest class
    large.push_back(malloc(300 * kKiB));
    ASSERT_NE(large.back(), nullptr);
    memset(large.back(), 1, 4096);
  }
  const struct mallinfo2 held = mallinfo2();
  EXPECT_GE(held.uordblks, before.uordblks + 100000 * 100);
  EXPECT_GE(held.arena, held.uordblks);
  EXPECT_EQ(held.arena, held.uordblks + held.fordblks);
  EXPECT_EQ(held.hblks, before.hblks + 50);
  EXPECT_GE(held.hblkhd, before.hblkhd + 50 * 300 * kKiB);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  const struct mallinfo narrow = mallinfo();
#pragma GCC diagnostic pop
  EXPECT_EQ(static_cast<size_t>(narrow.hblks), held.hblks);
  EXPECT_EQ(static_cast<size_t>(narrow.arena), held.arena);
  for (void* q : small) free(q);
  for (void* q : large) free(q);
  const struct mallinfo2 after = mallinfo2();
  EXPECT_EQ(after.hblks, before.hblks);
  EXPECT_EQ(after.hblkhd, before.hblkhd);
  // Blocks freed into this thread's bins are not counted as in use.
  EXPECT_LE(after.uordblks, held.uordblks - 90000 * 100);
}

// Blocks another thread freed, waiting for this (their owning) thread to
// take them in, are not in use: a leak check built on mallinfo2 saw them
// so until this thread's next slow path (FINDINGS F35).
TEST(Mallinfo, BlocksAnotherThreadFreedAreNotInUse) {
  std::vector<void*> blocks;
  blocks.reserve(100000);
  const struct mallinfo2 before = mallinfo2();
  for (int i = 0; i < 100000; i++) blocks.push_back(malloc(100));
  std::thread([&] {
    for (void* p : blocks) free(p);
  }).join();
  const struct mallinfo2 after = mallinfo2();
  EXPECT_LE(after.uordblks, before.uordblks + 1000 * 100)
      << "before " << before.uordblks << ", after " << after.uordblks;
}

TEST(Mallinfo, MallocInfoWritesItsXmlAndMallocStatsPrints) {
  char* text = nullptr;
  size_t length = 0;
  FILE* out = open_memstream(&text, &length);
  ASSERT_NE(out, nullptr);
  ASSERT_EQ(malloc_info(0, out), 0);
  fclose(out);
  const std::string xml(text, length);
  free(text);
  EXPECT_EQ(xml.rfind("<malloc version=", 0), 0u) << xml;
  EXPECT_NE(xml.find("<total type=\"mmap\""), std::string::npos) << xml;
  EXPECT_NE(xml.find("</malloc>"), std::string::npos) << xml;
  FILE* null_stream = fopen("/dev/null", "w");
  ASSERT_NE(null_stream, nullptr);
  errno = 0;
  EXPECT_EQ(malloc_info(1, null_stream), -1);  // no options are defined
  EXPECT_EQ(errno, EINVAL);
  fclose(null_stream);
  // malloc_stats prints on stderr.
  ::testing::internal::CaptureStderr();
  malloc_stats();
  const std::string printed = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(printed.find("hakmem stats"), std::string::npos) << printed;
}

}  // namespace
