// Size classes of slab-backed blocks (everything up to kMaxSmallSize).
//
//   class 0        16 bytes, used only by malloc(0) (keeps the lookup branch-free)
//   classes 1..8   16, 32 ... 128: one class per 16 bytes
//   classes 9..32  eight per power of two: 144, 160 ... 256, 288 ... 512,
//                  576 ... 1024 (at most 12.5% internal fragmentation)
//   classes 33..64 four per power of two: 1280, 1536, 1792, 2048, 2560 ...
//                  262144 (at most 25%)
//
// Every class size is a multiple of 16, so every block is 16-byte aligned.
// Why not one class per 16 bytes up to 1 KiB (session 5's 64 classes): every
// class a thread uses keeps a slab and a bin, so with many threads the
// per-class overhead dominates (8 threads on 2 cores, half the frees
// remote: RSS 45 -> 38 MiB; the 2-thread lanes -4-10%); a million live
// blocks of 16-1024 B take 1.10x their bytes instead of 1.07x (mimalloc,
// tcmalloc and jemalloc 1.12x).
#ifndef HAKMEM_TINY_SIZE_CLASS_H_
#define HAKMEM_TINY_SIZE_CLASS_H_

#include <stddef.h>
#include <stdint.h>

#include "hakmem/platform.h"

namespace hakmem {

constexpr int kNumClasses = 65;
// Up to 256 KiB, as tcmalloc's classes: blocks of 32-256 KiB repeatedly
// allocated and freed (buffers) come from the thread's bins like small
// ones. (As regions of their own, through the large cache, they ran 0.10x
// tcmalloc, with an mmap and munmap every few hundred operations.)
constexpr size_t kMaxSmallSize = 262144;
constexpr size_t kMaxFineSize = 128;  // end of the 16-byte-step classes
constexpr int kFirstEighthClass = 9;    // 144 bytes: eight classes per doubling
constexpr int kFirstQuarterClass = 33;  // 1280 bytes: four per doubling
// Classes from here on (2560 bytes and up) live in 512 KiB slabs, so that a
// slab holds at least 16 blocks; smaller ones in 64 KiB slabs.
constexpr int kFirstMidClass = 37;
// Classes from here on (40 KiB and up) live in slabs of a whole SuperSlab
// (2 MiB: 7 to 51 blocks).
constexpr int kFirstBigClass = 53;

constexpr uint32_t ClassSizeOf(int size_class) {
  if (size_class == 0) return 16;
  if (size_class < kFirstEighthClass) return static_cast<uint32_t>(size_class) * 16;
  if (size_class < kFirstQuarterClass) {
    const int j = size_class - kFirstEighthClass;
    const int shift = 7 + j / 8;
    return (1u << shift) + static_cast<uint32_t>(j % 8 + 1) * (1u << (shift - 3));
  }
  const int j = size_class - kFirstQuarterClass;
  const int shift = 10 + j / 4;
  return (1u << shift) + static_cast<uint32_t>(j % 4 + 1) * (1u << (shift - 2));
}

static_assert(ClassSizeOf(kFirstQuarterClass - 1) == 1024, "eighths end at 1 KiB");
static_assert(ClassSizeOf(kFirstMidClass) == 2560, "mid classes start at 2.5 KiB");
static_assert(ClassSizeOf(kFirstBigClass - 1) == 32768 && ClassSizeOf(kFirstBigClass) == 40960,
              "big classes start above 32 KiB");
constexpr size_t kMaxMidSize = ClassSizeOf(kFirstBigClass - 1);
static_assert(ClassSizeOf(kNumClasses - 1) == kMaxSmallSize, "last class");

// Class of `size` (<= kMaxSmallSize) by arithmetic; see SizeToClass.
constexpr int ComputeSizeClass(size_t size) {
  if (size <= kMaxFineSize) return static_cast<int>((size + 15) >> 4);
  const size_t m = size - 1;
  const int log2 = 63 - __builtin_clzll(m);
  if (size <= 1024) {
    return kFirstEighthClass + (log2 - 7) * 8 + static_cast<int>((m >> (log2 - 3)) & 7);
  }
  return kFirstQuarterClass + (log2 - 10) * 4 + static_cast<int>((m >> (log2 - 2)) & 3);
}

// Class by 16-byte granule: every class boundary is a multiple of 16, so the
// class of the granule's largest size serves the whole granule.
struct SizeClassTable {
  uint8_t by_granule[kMaxSmallSize / 16 + 1];
};
constexpr SizeClassTable MakeSizeClassTable() {
  SizeClassTable table{};
  for (size_t g = 0; g <= kMaxSmallSize / 16; g++) {
    table.by_granule[g] = static_cast<uint8_t>(ComputeSizeClass(g * 16));
  }
  return table;
}
inline constexpr SizeClassTable kSizeClassTable = MakeSizeClassTable();

// `size` must be <= kMaxSmallSize. One add, one shift, one byte load.
HAKMEM_ALWAYS_INLINE size_t SizeToClass(size_t size) {
  return kSizeClassTable.by_granule[(size + 15) >> 4];
}

// For each alignment 2^k (k = 5..18, 32 B to 256 KiB) and class c: the
// smallest class from c on whose size is a multiple of 2^k (its blocks are
// then 2^k-aligned: see the slab colouring), or -1.
constexpr int kFirstAlignedShift = 5;
constexpr int kAlignedRows = 14;
static_assert(size_t{1} << (kFirstAlignedShift + kAlignedRows - 1) == kMaxSmallSize,
              "a row for every alignment up to the largest class");
struct AlignedClassTable {
  int8_t from_class[kAlignedRows][kNumClasses];
};
constexpr AlignedClassTable MakeAlignedClassTable() {
  AlignedClassTable table{};
  for (int row = 0; row < kAlignedRows; row++) {
    const uint32_t alignment = 1u << (row + kFirstAlignedShift);
    int next = -1;
    for (int c = kNumClasses - 1; c >= 0; c--) {
      if (ClassSizeOf(c) % alignment == 0) next = c;
      table.from_class[row][c] = static_cast<int8_t>(next);
    }
  }
  return table;
}
inline constexpr AlignedClassTable kAlignedClassTable = MakeAlignedClassTable();

// Smallest class that can hold `size` and whose blocks are all aligned to
// `alignment` (a power of two above 16), or -1.
inline int AlignedSizeToClass(size_t size, size_t alignment) {
  if (alignment > kMaxSmallSize) return -1;
  if (size < alignment) size = alignment;
  if (size > kMaxSmallSize) return -1;
  return kAlignedClassTable.from_class[__builtin_ctzll(alignment) - kFirstAlignedShift]
                                      [SizeToClass(size)];
}

// For alignments up to kRoundedAlignmentMax, rounding the size up to the
// alignment is enough: the class of a multiple of such an alignment is a
// multiple of it too (its blocks are then aligned: see the slab colouring).
// Up to 128 B every multiple of 16 is a class; between 2^s and 2^(s+1)
// above, the classes are the multiples of 2^(s-3) (to 1 KiB) or 2^(s-2),
// and a multiple of a larger power of two in that range is one of them.
// One table load, for aligned_alloc's fast path; the result equals
// AlignedSizeToClass's (size_class_test checks every size).
constexpr size_t kRoundedAlignmentMax = 256;
constexpr bool RoundedSizesHaveAlignedClasses() {
  for (uint32_t alignment = 32; alignment <= kRoundedAlignmentMax; alignment *= 2) {
    for (uint32_t size = alignment; size <= kMaxSmallSize; size += alignment) {
      if (ClassSizeOf(ComputeSizeClass(size)) % alignment != 0) return false;
    }
  }
  return true;
}
static_assert(RoundedSizesHaveAlignedClasses(),
              "aligned_alloc's fast path rounds sizes up to the alignment");
// `alignment` a power of two <= kRoundedAlignmentMax, `size` <= kMaxSmallSize.
HAKMEM_ALWAYS_INLINE size_t RoundedAlignedSizeToClass(size_t size, size_t alignment) {
  const size_t at_least = size < alignment ? alignment : size;
  return SizeToClass((at_least + alignment - 1) & ~(alignment - 1));
}

}  // namespace hakmem

#endif  // HAKMEM_TINY_SIZE_CLASS_H_
