#include "hakmem/tiny/size_class.h"

#include "gtest/gtest.h"

namespace hakmem {
namespace {

TEST(SizeClassTest, EverySizeGetsTheSmallestClassThatFits) {
  for (size_t size = 1; size <= kMaxSmallSize; size++) {
    const int c = SizeToClass(size);
    ASSERT_GE(c, 1) << size;
    ASSERT_LT(c, kNumClasses) << size;
    ASSERT_GE(ClassSizeOf(c), size) << size;
    // Class 0 duplicates class 1's size; otherwise the class below is too small.
    if (c > 1) {
      ASSERT_LT(ClassSizeOf(c - 1), size) << size;
    }
  }
  EXPECT_EQ(SizeToClass(0), 0);
  EXPECT_EQ(ClassSizeOf(0), 16u);
}

TEST(SizeClassTest, ClassesAreSixteenByteMultiplesAndGrow) {
  for (int c = 0; c < kNumClasses; c++) {
    EXPECT_EQ(ClassSizeOf(c) % 16, 0u) << c;
    if (c > 1) {
      EXPECT_GT(ClassSizeOf(c), ClassSizeOf(c - 1)) << c;
    }
  }
  EXPECT_EQ(ClassSizeOf(static_cast<int>(SizeToClass(1024))), 1024u);
  EXPECT_EQ(ClassSizeOf(kNumClasses - 1), kMaxSmallSize);
}

TEST(SizeClassTest, ClassesUpTo1KiBWasteAtMostAnEighth) {
  for (size_t size = 1; size <= 1024; size++) {
    const uint32_t block = ClassSizeOf(static_cast<int>(SizeToClass(size)));
    ASSERT_GE(block, size) << size;
    // Up to 128 B, one class per 16 bytes.
    if (size <= kMaxFineSize) {
      ASSERT_LT(block - size, 16u) << size;
    } else {
      ASSERT_LE((block - size) * 8, size) << size;
    }
  }
}

TEST(SizeClassTest, GeometricClassesWasteAtMostAQuarter) {
  for (size_t size = kMaxFineSize + 1; size <= kMaxSmallSize; size++) {
    const uint32_t block = ClassSizeOf(SizeToClass(size));
    ASSERT_LE((block - size) * 4, size) << size;
  }
}

TEST(SizeClassTest, RoundingUpToSmallAlignmentsGivesTheAlignedClass) {
  for (size_t alignment = 1; alignment <= kRoundedAlignmentMax; alignment *= 2) {
    for (size_t size = 0; size <= kMaxSmallSize; size++) {
      const size_t c = RoundedAlignedSizeToClass(size, alignment);
      ASSERT_GE(ClassSizeOf(static_cast<int>(c)), size) << size << " " << alignment;
      if (alignment > 16) {
        ASSERT_EQ(static_cast<int>(c), AlignedSizeToClass(size, alignment))
            << size << " " << alignment;
      } else {
        ASSERT_EQ(ClassSizeOf(static_cast<int>(c)) % alignment, 0u);
        ASSERT_EQ(ClassSizeOf(static_cast<int>(c)),
                  ClassSizeOf(static_cast<int>(SizeToClass(size < 16 ? 16 : size))));
      }
    }
  }
}

TEST(SizeClassTest, AlignedClassesAreMultiplesOfTheAlignment) {
  for (size_t alignment = 32; alignment <= 65536; alignment *= 2) {
    for (size_t size = 1; size <= kMaxSmallSize; size = size * 3 / 2 + 1) {
      const int c = AlignedSizeToClass(size, alignment);
      if (c < 0) {
        // Only when no class is both big enough and a multiple.
        EXPECT_GT(size > alignment ? size : alignment, kMaxSmallSize / 2)
            << size << " " << alignment;
        continue;
      }
      EXPECT_GE(ClassSizeOf(c), size);
      EXPECT_EQ(ClassSizeOf(c) % alignment, 0u) << size << " " << alignment;
    }
  }
  EXPECT_EQ(AlignedSizeToClass(100, 524288), -1);
}

}  // namespace
}  // namespace hakmem
