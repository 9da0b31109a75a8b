#include "hakmem/superslab/superslab.h"

#include <sys/resource.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "hakmem/config.h"
#include "hakmem/platform.h"
#include "hakmem/registry/registry.h"
#include "hakmem/superslab/remote_queue.h"

namespace hakmem {
namespace {

const int kOwnerTag = 0;
const void* const kOwner = &kOwnerTag;
constexpr uint64_t kKey = 0x5eed;

bool IsStart(const Slab* s, const void* p) {
  return IsBlockStart(InfoOf(s), p);
}

TEST(SuperSlabTest, AcquireRegistersWithMagicAndGeometryTag) {
  SuperSlab* ss = SuperSlabAcquire(kOwner, kSmallSlabShift, /*size_class=*/0);
  ASSERT_NE(ss, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(ss) & kRegionMask, 0u);
  EXPECT_EQ(ss->region.magic, kRegionMagic);
  EXPECT_EQ(ss->region.kind, RegionKind::kSuperSlab);
  EXPECT_EQ(registry::TagOf(reinterpret_cast<char*>(ss) + 100000), kSmallSlabShift);
  EXPECT_EQ(registry::Lookup(reinterpret_cast<char*>(ss) + 5), &ss->region);
  EXPECT_EQ(ss->owner, kOwner);
  SuperSlabFormat(ss, kMidSlabShift);
  EXPECT_EQ(registry::TagOf(reinterpret_cast<char*>(ss) + 100000), kMidSlabShift);
  SuperSlabRelease(ss);
}

TEST(SuperSlabTest, SmallGeometryHands31SlabsThenRunsOut) {
  SuperSlab* ss = SuperSlabAcquire(kOwner, kSmallSlabShift, /*size_class=*/0);
  ASSERT_NE(ss, nullptr);
  std::set<int> seen;
  for (int i = 0; i < 31; i++) {
    const int index = SuperSlabTakeFreeSlab(ss);
    ASSERT_GE(index, 1);  // slab 0 is the header
    ASSERT_LT(index, 32);
    EXPECT_TRUE(seen.insert(index).second);
  }
  EXPECT_TRUE(SuperSlabFull(ss));
  EXPECT_EQ(SuperSlabTakeFreeSlab(ss), -1);  // exhausted
  for (int index : seen) {
    Slab* s = SlabInit(ss, index, 64, 4, kOwner);
    const bool empty = SuperSlabReturnSlab(ss, s);
    EXPECT_EQ(empty, index == *seen.rbegin());
  }
  SuperSlabRelease(ss);
}

// Four slabs, slab 0's blocks past the header at their natural alignment
// (F31: slab 0 unused left a quarter of the address space and commit).
TEST(SuperSlabTest, MidGeometryHasFourSlabsTheFirstPastTheHeader) {
  SuperSlab* ss = SuperSlabAcquire(kOwner, kMidSlabShift, /*size_class=*/0);
  ASSERT_NE(ss, nullptr);
  for (int i = 0; i < 4; i++) EXPECT_EQ(SuperSlabTakeFreeSlab(ss), i);
  EXPECT_EQ(SuperSlabTakeFreeSlab(ss), -1);
  Slab* s0 = SlabInit(ss, 0, 32768, 84, kOwner);
  EXPECT_EQ(SlabStart(s0), reinterpret_cast<uintptr_t>(ss) + 32768);
  EXPECT_EQ(SlabCapacity(s0), 15u);
  std::vector<Block*> carved(16);
  ASSERT_EQ(SlabCarve(s0, carved.data(), 16, kKey), 15u);
  for (Block* b : carved) {
    if (b == nullptr) continue;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b) % 32768, 0u);
    EXPECT_TRUE(IsStart(s0, b));
    EXPECT_EQ(SlabOf(b), s0);
  }
  for (uintptr_t p = reinterpret_cast<uintptr_t>(ss); p < SlabStart(s0); p += 16) {
    ASSERT_FALSE(IsStart(s0, reinterpret_cast<void*>(p))) << p;
  }
  s0->free = nullptr;
  Slab* s0_small_blocks = SlabInit(ss, 0, 2560, 69, kOwner);  // coloured past the page
  const uint32_t colour = SlabColor(69, 2560);
  EXPECT_EQ(SlabStart(s0_small_blocks),
            reinterpret_cast<uintptr_t>(ss) + platform::kPageSize + colour);
  EXPECT_EQ(SlabStart(s0_small_blocks) % 512, 0u);  // 2560's natural alignment
  EXPECT_EQ(SlabCapacity(s0_small_blocks), (524288u - platform::kPageSize - colour) / 2560u);
  Slab* s1 = SlabInit(ss, 1, 32768, 84, kOwner);
  EXPECT_EQ(SlabStart(s1), reinterpret_cast<uintptr_t>(ss) + 524288);
  EXPECT_EQ(SlabCapacity(s1), 16u);
  Slab* s3 = SlabInit(ss, 3, 2560, 69, kOwner);
  EXPECT_EQ(SlabCapacity(s3), 524288u / 2560u);
  for (int i = 0; i < 3; i++) EXPECT_FALSE(SuperSlabReturnSlab(ss, SlabAt(ss, i)));
  EXPECT_TRUE(SuperSlabReturnSlab(ss, SlabAt(ss, 3)));
  SuperSlabRelease(ss);
}

// A carve with out_step -1 (a refill straight into a bin's slots, top
// down) hands out the same blocks in the same order as one into an array,
// the first at out[0], the next at out[-1], and writes nothing else.
TEST(SuperSlabTest, ACarveTopDownHandsOutTheSameBlocksInTheSameOrder) {
  SuperSlab* ss = SuperSlabAcquire(kOwner, kSmallSlabShift, /*size_class=*/3);
  ASSERT_NE(ss, nullptr);
  SuperSlabTakeSlabAt(ss, 1);
  SuperSlabTakeSlabAt(ss, 2);
  Slab* up = SlabInit(ss, 1, 48, 3, kOwner);
  Slab* down = SlabInit(ss, 2, 48, 3, kOwner);
  std::vector<Block*> ascending(40, nullptr);
  ASSERT_EQ(SlabCarve(up, ascending.data(), 37, kKey), 37u);
  std::vector<Block*> slots(80, nullptr);  // slots[1..37] written, top down from slots[37]
  ASSERT_EQ(SlabCarve(down, &slots[37], 37, kKey, /*out_step=*/-1), 37u);
  EXPECT_EQ(slots[0], nullptr);
  for (size_t i = 38; i < slots.size(); i++) EXPECT_EQ(slots[i], nullptr);
  const uintptr_t shift = SlabStart(down) - SlabStart(up);
  for (int i = 0; i < 37; i++) {
    ASSERT_NE(slots[37 - i], nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(slots[37 - i]),
              reinterpret_cast<uintptr_t>(ascending[i]) + shift) << i;
    EXPECT_EQ(KeyOf(slots[37 - i]), kKey);
  }
  EXPECT_EQ(SlabCarved(down), 37u);
  SuperSlabReturnSlab(ss, up);
  SuperSlabReturnSlab(ss, down);
  SuperSlabRelease(ss);
}

TEST(SuperSlabTest, BigGeometryIsOneSlabWhoseBlocksStartPastTheHeader) {
  SuperSlab* ss = SuperSlabAcquire(kOwner, kBigSlabShift, /*size_class=*/0);
  ASSERT_NE(ss, nullptr);
  EXPECT_EQ(registry::TagOf(reinterpret_cast<char*>(ss) + 100000), kBigSlabShift);
  EXPECT_NE(registry::TagOf(ss), registry::kTagLarge);
  EXPECT_EQ(SuperSlabTakeFreeSlab(ss), 0);  // the one slab, header and all
  EXPECT_TRUE(SuperSlabFull(ss));
  EXPECT_EQ(SuperSlabTakeFreeSlab(ss), -1);
  // Each size: blocks from its natural alignment on (past the header's
  // page), aligned to it, as many as fit after the page, none on the header.
  const uint32_t sizes[] = {40960, 49152, 65536, 98304, 196608, 229376, 262144};
  for (uint32_t size : sizes) {
    Slab* s = SlabInit(ss, 0, size, 60, kOwner);
    const uint32_t natural = size & (0u - size);
    EXPECT_EQ(SlabStart(s), reinterpret_cast<uintptr_t>(ss) + natural) << size;
    EXPECT_EQ(SlabCapacity(s), (kSuperSlabSize - platform::kPageSize) / size) << size;
    std::vector<Block*> carved(SlabCapacity(s) + 1);
    ASSERT_EQ(SlabCarve(s, carved.data(), SlabCapacity(s) + 1, kKey), SlabCapacity(s));
    for (uint32_t i = 0; i < SlabCapacity(s); i++) {
      const uintptr_t at = reinterpret_cast<uintptr_t>(carved[i]);
      EXPECT_EQ(at % natural, 0u) << size;
      EXPECT_LE(at + size, reinterpret_cast<uintptr_t>(ss) + kSuperSlabSize) << size;
      EXPECT_EQ(SlabOf(carved[i]), s);
      EXPECT_TRUE(IsStart(s, carved[i]));
      EXPECT_FALSE(IsStart(s, reinterpret_cast<char*>(carved[i]) + 16));
    }
    // Nothing in the header or the gap before the first block is a block.
    for (uintptr_t p = reinterpret_cast<uintptr_t>(ss); p < SlabStart(s); p += 16) {
      ASSERT_FALSE(IsStart(s, reinterpret_cast<void*>(p))) << size << " " << p;
    }
    s->free = nullptr;
  }
  // Its one slab back: the SuperSlab is empty.
  EXPECT_TRUE(SuperSlabReturnSlab(ss, SlabAt(ss, 0)));
  EXPECT_FALSE(IsBlockStart(InfoOf(SlabAt(ss, 0)), reinterpret_cast<char*>(ss) + 262144));
  // Formatted small again: slab 0 is the header's once more.
  SuperSlabFormat(ss, kSmallSlabShift);
  EXPECT_EQ(SuperSlabTakeFreeSlab(ss), 1);
  EXPECT_TRUE(SuperSlabReturnSlab(ss, SlabInit(ss, 1, 64, 4, kOwner)));
  SuperSlabRelease(ss);
}

// SuperSlabs are 2 MiB aligned: a record at a fixed offset would share one
// L1 set (and L2 set) across all of them. SuperSlabs of 1 or 4 slabs use
// Slab records chosen by their address instead (SlabRecordIndexOf), so that
// several SuperSlabs' records spread over as many lines and sets. (Their
// SlabInfos are copies per 64 KiB: a free reads its block's.)
TEST(SuperSlabTest, RecordsOfFewSlabGeometriesDependOnTheSuperSlabsAddress) {
  for (int shift : {kBigSlabShift, kMidSlabShift}) {
    std::vector<SuperSlab*> supers;
    std::set<uintptr_t> colours, lines;
    for (int i = 0; i < 8; i++) {
      SuperSlab* ss = SuperSlabAcquire(kOwner, shift, /*size_class=*/0);
      ASSERT_NE(ss, nullptr);
      supers.push_back(ss);
      const uintptr_t base = reinterpret_cast<uintptr_t>(ss);
      const int index = SuperSlabTakeFreeSlab(ss);
      Slab* s = SlabInit(ss, index, 65536, 60, kOwner);
      EXPECT_EQ(SlabIndex(s), index);
      EXPECT_EQ(SlabStart(s), base + (static_cast<uintptr_t>(index) << shift) +
                                  (index == 0 ? 65536 : 0));  // past the header
      Block* b;
      ASSERT_EQ(SlabCarve(s, &b, 1, kKey), 1u);
      // The fast path's lookup finds this slab's records.
      EXPECT_EQ(SlabInfoOf(b)->owner, kOwner);
      EXPECT_EQ(SlabInfoOf(b)->first_block_low32, InfoOf(s)->first_block_low32);
      EXPECT_EQ(SlabOf(b), s);
      EXPECT_TRUE(IsStart(s, b));
      colours.insert((base >> kRegionShift) % (kMaxSlabsPerSuperSlab >> (kRegionShift - shift)));
      lines.insert(reinterpret_cast<uintptr_t>(s) % platform::kPageSize / 64);
      s->free = nullptr;
    }
    // A line a record: as many lines as SuperSlab addresses that differ in
    // their colour bits.
    EXPECT_GE(lines.size(), colours.size()) << shift;
    EXPECT_GT(colours.size(), 1u) << "8 SuperSlabs, all 64 MiB apart?";
    for (SuperSlab* ss : supers) {
      const int index = __builtin_ctz(ss->used_slabs);  // mid and big reserve no slab
      EXPECT_TRUE(SuperSlabReturnSlab(ss, SlabAt(ss, index)));
      SuperSlabRelease(ss);
    }
  }
}

// Carves every slab of `ss` (taken and set up for `size`), then checks the
// free fast path's block-start test at every 16 bytes of the SuperSlab
// against the carved starts; returns the slabs.
void CheckEveryAddressOfCarvedSlabs(SuperSlab* ss, uint32_t size, int size_class) {
  const int shift = ss->slab_shift;
  const uintptr_t base = reinterpret_cast<uintptr_t>(ss);
  std::set<uintptr_t> starts;
  std::vector<Slab*> slabs;
  for (int i = shift == kSmallSlabShift ? 1 : 0; i < static_cast<int>(kRegionAlign >> shift); i++) {
    SuperSlabTakeSlabAt(ss, i);
    Slab* s = SlabInit(ss, i, size, size_class, kOwner);
    slabs.push_back(s);
    std::vector<Block*> out(SlabCapacity(s));
    ASSERT_EQ(SlabCarve(s, out.data(), SlabCapacity(s), kKey), SlabCapacity(s));
    for (Block* b : out) starts.insert(reinterpret_cast<uintptr_t>(b));
  }
  for (uintptr_t p = base; p < base + kRegionAlign; p += 16) {
    const void* at = reinterpret_cast<const void*>(p);
    ASSERT_EQ(IsBlockStart(SlabInfoOf(at), at), starts.count(p) == 1)
        << shift << " " << size << " at +" << p - base;
  }
  for (Slab* s : slabs) SuperSlabReturnSlab(ss, s);
}

// SuperSlabs (three: their records differ) through every geometry
// change: nothing of an earlier geometry's records passes the block-start
// test in the next one, every carved start and nothing else passes it, and
// no record keeps an owner. (From a review of the address-chosen records.)
TEST(SuperSlabTest, GeometryChangesLeaveNoStaleRecord) {
  std::vector<SuperSlab*> supers;
  for (int i = 0; i < 3; i++) supers.push_back(SuperSlabAcquire(kOwner, kSmallSlabShift, /*size_class=*/0));
  for (SuperSlab* ss : supers) {
    ASSERT_NE(ss, nullptr);
    for (int shift : {kSmallSlabShift, kBigSlabShift, kMidSlabShift, kSmallSlabShift,
                      kMidSlabShift, kBigSlabShift, kSmallSlabShift}) {
      SuperSlabFormat(ss, shift);
      ASSERT_EQ(registry::TagOf(ss), shift);
      for (uintptr_t p = reinterpret_cast<uintptr_t>(ss);
           p < reinterpret_cast<uintptr_t>(ss) + kRegionAlign; p += 16) {
        const void* at = reinterpret_cast<const void*>(p);
        ASSERT_FALSE(IsBlockStart(SlabInfoOf(at), at)) << shift;
      }
      CheckEveryAddressOfCarvedSlabs(ss, shift == kSmallSlabShift ? 64
                                         : shift == kMidSlabShift ? 4096 : 65536, 10);
      for (const SlabInfo& info : ss->infos) ASSERT_EQ(info.owner, nullptr) << shift << " " << (&info - ss->infos);
    }
  }
  for (SuperSlab* ss : supers) SuperSlabRelease(ss);
}

TEST(SuperSlabTest, BlockStartTestIsExactForEveryClassSize) {
  // Every carved block start passes; every other offset (interior, past the
  // carved part) fails, for power-of-two and other sizes alike.
  SuperSlab* ss = SuperSlabAcquire(kOwner, kSmallSlabShift, /*size_class=*/0);
  ASSERT_NE(ss, nullptr);
  const int index = SuperSlabTakeFreeSlab(ss);
  for (uint32_t size : {16u, 48u, 64u, 80u, 1008u, 1024u, 1280u, 2048u}) {
    Slab* s = SlabInit(ss, index, size, 1, kOwner);
    Block* carved[20];
    SlabCarve(s, carved, 20, kKey);
    for (uint64_t offset = 0; offset < 65536; offset += 8) {
      const bool expected = offset % size == 0 && offset / size < 20;
      ASSERT_EQ(IsStart(s, reinterpret_cast<void*>(SlabStart(s) + offset)), expected)
          << size << " " << offset;
    }
    EXPECT_EQ(SlabCarved(s), 20u);
  }
  SuperSlabReturnSlab(ss, SlabAt(ss, index));
  SuperSlabRelease(ss);
}

TEST(SuperSlabTest, CarvingIsLazyOrderedAlignedAndBounded) {
  SuperSlab* ss = SuperSlabAcquire(kOwner, kSmallSlabShift, /*size_class=*/0);
  ASSERT_NE(ss, nullptr);
  const int index = SuperSlabTakeFreeSlab(ss);
  Slab* s = SlabInit(ss, index, 48, 3, kOwner);
  EXPECT_EQ(SlabCapacity(s), (65536u - SlabColorOf(s)) / 48u);
  EXPECT_EQ(SlabCarved(s), 0u);  // nothing carved yet
  std::vector<Block*> carved(SlabCapacity(s) + 5);
  EXPECT_EQ(SlabCarve(s, carved.data(), 10, kKey), 10u);
  EXPECT_EQ(s->free, nullptr);  // straight to the taker, not onto the list
  uintptr_t expected = SlabStart(s);
  for (int i = 0; i < 10; i++) {
    Block* b = carved[i];
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b), expected);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b) % 16, 0u);
    EXPECT_EQ(SlabOf(b), s);
    EXPECT_EQ(KeyOf(b), kKey);
    EXPECT_TRUE(IsStart(s, b));
    EXPECT_FALSE(IsStart(s, reinterpret_cast<char*>(b) + 16));  // interior
    expected += 48;
  }
  // Not carved yet, so not a block yet.
  EXPECT_FALSE(IsStart(s, reinterpret_cast<void*>(SlabStart(s) + 48 * 10)));
  // Carve the rest: exactly the capacity, never past the slab.
  const uint32_t rest = SlabCapacity(s) - 10;
  EXPECT_EQ(SlabCarve(s, carved.data(), 100000, kKey), rest);
  EXPECT_FALSE(SlabCanCarve(s));
  EXPECT_EQ(SlabCarve(s, carved.data() + rest, 5, kKey), 0u);
  for (uint32_t i = 0; i < rest; i++) {
    EXPECT_LE(reinterpret_cast<uintptr_t>(carved[i]) + 48, SlabStart(s) + SlabLimit(s));
  }
  SuperSlabReturnSlab(ss, s);
  SuperSlabRelease(ss);
}

TEST(SuperSlabTest, ClassesStartAtDifferentCacheSetsAndStayAligned) {
  // Colouring: the first blocks of different classes fall in different L1
  // sets (64-byte lines, 4 KiB per way), every block keeps the alignment of
  // the largest power of two dividing its size, and the colour gap holds no
  // block.
  SuperSlab* ss = SuperSlabAcquire(kOwner, kSmallSlabShift, /*size_class=*/0);
  ASSERT_NE(ss, nullptr);
  std::set<uint32_t> sets;
  for (int c = 1; c <= 16; c++) {  // 16..256 bytes
    const int index = SuperSlabTakeFreeSlab(ss);
    ASSERT_GT(index, 0);
    const uint32_t size = 16u * static_cast<uint32_t>(c);
    Slab* s = SlabInit(ss, index, size, c, kOwner);
    Block* carved[4];
    SlabCarve(s, carved, 4, kKey);
    const uintptr_t first = SlabStart(s);
    sets.insert(static_cast<uint32_t>(first % 4096) / 64);
    const uint32_t natural = size & (0u - size);
    for (Block* b = s->free; b != nullptr; b = b->next) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(b) % natural, 0u) << size;
    }
    EXPECT_EQ(SlabCapacity(s), (65536u - SlabColorOf(s)) / size);
    const uintptr_t slab_base = first - SlabColorOf(s);
    for (uintptr_t p = slab_base; p < first; p += 16) {
      EXPECT_FALSE(IsStart(s, reinterpret_cast<void*>(p))) << size << " " << p - slab_base;
    }
    s->free = nullptr;
  }
  EXPECT_EQ(sets.size(), 16u);
  for (int i = 1; i < kMaxSlabsPerSuperSlab; i++) {
    if (ss->used_slabs & (1u << i)) SuperSlabReturnSlab(ss, SlabAt(ss, i));
  }
  SuperSlabRelease(ss);
}

TEST(SuperSlabTest, AReturnedSlabForgetsItsBlocks) {
  SuperSlab* ss = SuperSlabAcquire(kOwner, kMidSlabShift, /*size_class=*/0);
  ASSERT_NE(ss, nullptr);
  const int index = SuperSlabTakeFreeSlab(ss);
  Slab* s = SlabInit(ss, index, 8192, 76, kOwner);
  Block* carved[10];
  ASSERT_EQ(SlabCarve(s, carved, 10, kKey), 10u);
  // All ten freed back onto its list (as the heap does before returning it).
  for (Block* b : carved) {
    b->next = s->free;
    s->free = b;
  }
  Block* head = s->free;
  SuperSlabReturnSlab(ss, s);
  EXPECT_EQ(InfoOf(s)->owner, nullptr);  // free: frees into it are invalid
  // The free fast path's one check says so too.
  EXPECT_FALSE(IsBlockStart(InfoOf(s), head));
  EXPECT_EQ(SlabCarved(s), 0u);
  EXPECT_EQ(s->free, nullptr);  // carved again, in address order, when taken
  EXPECT_EQ(SuperSlabTakeFreeSlab(ss), index);
  Slab* again = SlabInit(ss, index, 8192, 77, kOwner);
  Block* first;
  ASSERT_EQ(SlabCarve(again, &first, 1, kKey), 1u);
  EXPECT_EQ(first, carved[0]);
  SuperSlabReturnSlab(ss, again);
  SuperSlabRelease(ss);
}

// Expects every 64 KiB of slab `s`'s span to find a SlabInfo alike to the
// first (the free fast path reads the one for its block's 64 KiB).
void ExpectInfoCopiesAlike(const Slab* s) {
  const SlabInfo* first = InfoOf(s);
  const uintptr_t span = uintptr_t{1} << first->slab_shift;
  const uintptr_t start = SlabStart(s) & ~(span - 1);
  for (uintptr_t at = start; at < start + span; at += uintptr_t{1} << kInfoChunkShift) {
    const SlabInfo* copy = SlabInfoOf(reinterpret_cast<const void*>(at));
    EXPECT_EQ(copy->owner, first->owner) << at - start;
    EXPECT_EQ(copy->divisor_magic, first->divisor_magic) << at - start;
    EXPECT_EQ(copy->carved_limit, first->carved_limit) << at - start;
    EXPECT_EQ(copy->first_block_low32, first->first_block_low32) << at - start;
    EXPECT_EQ(copy->block_size, first->block_size) << at - start;
    EXPECT_EQ(copy->size_class, first->size_class) << at - start;
    EXPECT_EQ(copy->slab_shift, first->slab_shift) << at - start;
  }
}

// A slab's SlabInfo copies (one per 64 KiB it spans) stay alike through
// set-up, carving, return and set-up again, in every geometry, and the
// blocks in each 64 KiB pass the block-start test through their own copy.
TEST(SuperSlabTest, EveryCopyOfASlabsInfoStaysAlike) {
  for (int shift : {kSmallSlabShift, kMidSlabShift, kBigSlabShift}) {
    SuperSlab* ss = SuperSlabAcquire(kOwner, shift, /*size_class=*/0);
    ASSERT_NE(ss, nullptr);
    const int index = SuperSlabTakeFreeSlab(ss);
    const uint32_t size = shift == kBigSlabShift ? 65536 : 4096;
    const int size_class = shift == kBigSlabShift ? 60 : 40;
    Slab* s = SlabInit(ss, index, size, size_class, kOwner);
    ExpectInfoCopiesAlike(s);
    std::vector<Block*> carved(SlabCapacity(s));
    ASSERT_EQ(SlabCarve(s, carved.data(), 3, kKey), 3u);
    ExpectInfoCopiesAlike(s);
    const uint32_t rest = SlabCapacity(s) - 3;
    ASSERT_EQ(SlabCarve(s, carved.data() + 3, rest, kKey), rest);
    ExpectInfoCopiesAlike(s);
    for (Block* b : carved) {
      EXPECT_TRUE(IsBlockStart(SlabInfoOf(b), b)) << shift;
      EXPECT_FALSE(IsBlockStart(SlabInfoOf(reinterpret_cast<char*>(b) + 16), reinterpret_cast<char*>(b) + 16));
    }
    s->free = carved[0];
    carved[0]->next = nullptr;
    SuperSlabReturnSlab(ss, s);
    ExpectInfoCopiesAlike(s);
    EXPECT_FALSE(IsBlockStart(SlabInfoOf(carved.back()), carved.back())) << shift;
    ASSERT_EQ(SuperSlabTakeFreeSlab(ss), index);
    ASSERT_EQ(SlabInit(ss, index, size, size_class, kOwner), s);
    ExpectInfoCopiesAlike(s);
    EXPECT_FALSE(IsBlockStart(SlabInfoOf(carved.back()), carved.back())) << shift;
    ASSERT_EQ(SlabCarve(s, carved.data(), 1, kKey), 1u);
    ExpectInfoCopiesAlike(s);
    EXPECT_TRUE(IsBlockStart(SlabInfoOf(carved[0]), carved[0])) << shift;
    SuperSlabReturnSlab(ss, s);
    SuperSlabRelease(ss);
  }
}

uint64_t g_fake_now_ns = 0;
uint64_t FakeNow() { return g_fake_now_ns; }

TEST(SuperSlabTest, PrewarmedSuperSlabsStayCached) {
  // Long after any earlier demand (a fake clock 100 s ahead), adaptive
  // sizing would keep only its floor of regions; pre-warmed ones count as
  // demand, so they stay.
  g_fake_now_ns = platform::NowNs() + 100ull * 1000 * 1000 * 1000;
  platform::SetClockForTesting(&FakeNow);
  SuperSlabPrewarm(6);  // (older cached ones may go: their TTL passed)
  const SuperSlabStats after = GetSuperSlabStats();
  platform::SetClockForTesting(nullptr);
  EXPECT_GE(after.cache.cached, 6u);
}

// Asked for more than the cache keeps, a pre-warm maps only what it keeps
// and says so (mapped beyond its limits, they were evicted again at once).
TEST(SuperSlabTest, APrewarmBeyondTheCachesLimitsIsCutToThemWithAWarning) {
  const uint64_t max_cached = GetOption(Option::kSuperslabMaxCached);
  SuperSlabCacheReleaseAll();
  ASSERT_TRUE(SetOption(Option::kSuperslabMaxCached, 3));
  const uint64_t mapped = GetSuperSlabStats().mapped;
  testing::internal::CaptureStderr();
  SuperSlabPrewarm(10);
  const std::string warning = testing::internal::GetCapturedStderr();
  const SuperSlabStats after = GetSuperSlabStats();
  SetOption(Option::kSuperslabMaxCached, max_cached);
  EXPECT_NE(warning.find("HAKMEM_SUPERSLAB_PREWARM=10 is more than"), std::string::npos)
      << warning;
  EXPECT_NE(warning.find("pre-warming 3"), std::string::npos) << warning;
  EXPECT_EQ(after.cache.cached, 3u);
  EXPECT_LE(after.mapped - mapped, 3u);
  SuperSlabCacheReleaseAll();
}

// Under an address-space limit a pre-warm maps nothing, and says so: it
// would take the headroom the program's own mappings need.
TEST(SuperSlabTest, APrewarmUnderAnAddressSpaceLimitMapsNothingWithAWarning) {
  struct rlimit old_limit;
  ASSERT_EQ(getrlimit(RLIMIT_AS, &old_limit), 0);
  struct rlimit finite = old_limit;
  finite.rlim_cur = old_limit.rlim_max != RLIM_INFINITY ? old_limit.rlim_max : RLIM_INFINITY - 1;
  ASSERT_EQ(setrlimit(RLIMIT_AS, &finite), 0);
  platform::ReadIdleMappingBudget();  // as a failed mapping would
  const uint64_t mapped = GetSuperSlabStats().mapped;
  testing::internal::CaptureStderr();
  SuperSlabPrewarm(2);
  const std::string warning = testing::internal::GetCapturedStderr();
  const uint64_t mapped_after = GetSuperSlabStats().mapped;
  ASSERT_EQ(setrlimit(RLIMIT_AS, &old_limit), 0);
  platform::ReadIdleMappingBudget();
  EXPECT_EQ(mapped_after, mapped);
  EXPECT_NE(warning.find("PREWARM=2 ignored: mappings are scarce"), std::string::npos)
      << warning;
}

TEST(SuperSlabTest, PowerOfTwoBlocksAreNaturallyAligned) {
  SuperSlab* ss = SuperSlabAcquire(kOwner, kMidSlabShift, /*size_class=*/0);
  ASSERT_NE(ss, nullptr);
  std::vector<Slab*> slabs;
  for (int index = 0; index < 4; index++) {  // slab 0's blocks past the header
    ASSERT_EQ(SuperSlabTakeFreeSlab(ss), index);
    Slab* s = SlabInit(ss, index, 4096 * 2, 76, kOwner);
    slabs.push_back(s);
    Block* carved[64];
    const uint32_t n = SlabCarve(s, carved, 64, kKey);
    ASSERT_EQ(n, SlabCapacity(s));
    for (uint32_t i = 0; i < n; i++) {
      ASSERT_EQ(reinterpret_cast<uintptr_t>(carved[i]) % 8192, 0u);
    }
  }
  for (Slab* s : slabs) SuperSlabReturnSlab(ss, s);
  SuperSlabRelease(ss);
}

TEST(SuperSlabTest, ReleasedSuperSlabIsReusedFromTheCache) {
  // (Alone in the cache: a cached mid one that kept its pages would be
  // preferred for the mid take below.)
  SuperSlabCacheReleaseAll();
  SuperSlab* ss = SuperSlabAcquire(kOwner, kSmallSlabShift, /*size_class=*/0);
  ASSERT_NE(ss, nullptr);
  const uint64_t generation = ss->region.generation;
  SuperSlabRelease(ss);
  EXPECT_EQ(ss->owner, nullptr);
  EXPECT_TRUE(registry::Contains(ss));  // cached SuperSlabs stay registered
  const SuperSlabStats before = GetSuperSlabStats();
  SuperSlab* again = SuperSlabAcquire(kOwner, kMidSlabShift, /*size_class=*/0);
  EXPECT_EQ(again, ss);
  EXPECT_EQ(again->region.generation, generation + 1);
  EXPECT_EQ(GetSuperSlabStats().cache.hits, before.cache.hits + 1);
  EXPECT_EQ(registry::TagOf(again), kMidSlabShift);
  SuperSlabRelease(again);
}

// A SuperSlab from the cache is, if one is there, one last used the same
// way: the geometry, and for a big slab the class (its pages are where the
// new user touches them; F42).
TEST(SuperSlabTest, AcquirePrefersACachedSuperSlabLastUsedTheSameWay) {
  SuperSlabCacheReleaseAll();
  SuperSlab* big3 = SuperSlabAcquire(kOwner, kBigSlabShift, 3);
  SuperSlab* big4 = SuperSlabAcquire(kOwner, kBigSlabShift, 4);
  SuperSlab* mid = SuperSlabAcquire(kOwner, kMidSlabShift, 0);
  SuperSlab* small = SuperSlabAcquire(kOwner, kSmallSlabShift, 0);
  ASSERT_TRUE(big3 != nullptr && big4 != nullptr && mid != nullptr && small != nullptr);
  for (SuperSlab* ss : {big3, big4, mid, small}) SuperSlabRelease(ss);  // small most recent
  SuperSlab* again3 = SuperSlabAcquire(kOwner, kBigSlabShift, 3);
  SuperSlab* again_mid = SuperSlabAcquire(kOwner, kMidSlabShift, 7);
  SuperSlab* again4 = SuperSlabAcquire(kOwner, kBigSlabShift, 4);
  SuperSlab* again_small = SuperSlabAcquire(kOwner, kSmallSlabShift, 1);
  EXPECT_EQ(again3, big3);
  EXPECT_EQ(again_mid, mid);
  EXPECT_EQ(again4, big4);
  EXPECT_EQ(again_small, small);
  for (SuperSlab* ss : {again3, again_mid, again4, again_small}) SuperSlabRelease(ss);
  SuperSlabCacheReleaseAll();
}

TEST(SuperSlabTest, CacheTrimUnmapsAndUnregisters) {
  SuperSlab* ss = SuperSlabAcquire(kOwner, kSmallSlabShift, /*size_class=*/0);
  ASSERT_NE(ss, nullptr);
  SuperSlabRelease(ss);
  SuperSlabCacheReleaseAll();
  EXPECT_FALSE(registry::Contains(ss));
  EXPECT_EQ(GetSuperSlabStats().cache.cached, 0u);
}

TEST(RemoteQueueTest, ManyProducersLoseNothing) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  static Block blocks[kThreads * kPerThread];
  RemoteQueue queue;
  std::atomic<bool> done{false};
  std::set<Block*> received;
  std::thread consumer([&] {
    while (true) {
      const bool finished = done.load();
      for (Block* b = queue.TakeAll(); b != nullptr;) {
        Block* next = b->next;
        EXPECT_TRUE(received.insert(b).second) << "duplicate";
        b = next;
      }
      if (finished) break;
    }
  });
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; t++) {
    producers.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; i++) queue.Push(&blocks[t * kPerThread + i]);
    });
  }
  for (auto& p : producers) p.join();
  done = true;
  consumer.join();
  EXPECT_EQ(received.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_TRUE(queue.Empty());
}

}  // namespace
}  // namespace hakmem
