#include "hakmem/registry/registry.h"

namespace hakmem {
namespace registry {

HAKMEM_BIG_BSS std::atomic<uint8_t> g_window_tags[kWindowSlots];

namespace {

// Outside leaves, null until mapped.
HAKMEM_BIG_BSS std::atomic<std::atomic<uint8_t>*> g_directory[kDirectorySlots];
std::atomic<uint64_t> g_registered{0};
std::atomic<uint64_t> g_leaves{0};

// The tag cell for region slot `slot` (below kRegionSlots), or nullptr if it
// lies outside the window and its leaf is not mapped yet (and `create` is
// false, or mapping it failed). Lock-free: a compare-and-swap installs a new
// leaf, so fork needs no care here.
std::atomic<uint8_t>* Cell(uint64_t slot, bool create) {
  const uint64_t in_window = slot - (kWindowStart >> kRegionShift);
  if (in_window < kWindowSlots) return &g_window_tags[in_window];
  std::atomic<std::atomic<uint8_t>*>& entry = g_directory[slot >> kLeafBits];
  std::atomic<uint8_t>* leaf = entry.load(std::memory_order_acquire);
  if (leaf == nullptr && create) {
    auto* mine = static_cast<std::atomic<uint8_t>*>(
        platform::MapSparse(kLeafSlots * sizeof(std::atomic<uint8_t>)));
    if (mine == nullptr) return nullptr;
    if (entry.compare_exchange_strong(leaf, mine, std::memory_order_acq_rel)) {
      leaf = mine;
      g_leaves.fetch_add(1, std::memory_order_relaxed);
    } else {
      platform::Unmap(mine, kLeafSlots);  // another thread installed one
    }
  }
  return leaf == nullptr ? nullptr : &leaf[slot & (kLeafSlots - 1)];
}

// The continuation tag of `slot`, of the region starting at slot `head`.
uint8_t ContinuationTag(uint64_t head, uint64_t slot) {
  return static_cast<uint8_t>(kTagContinued | (63 - __builtin_clzll(slot - head)));
}

uint64_t EndSlot(uintptr_t base, size_t size) {
  return (base >> kRegionShift) + ((size + kRegionMask) >> kRegionShift);
}

// Makes sure slots [first, end) have cells.
bool ReserveSlots(uint64_t first, uint64_t end) {
  if (end > kRegionSlots) return false;
  for (uint64_t slot = first; slot < end; slot++) {
    if (Cell(slot, true) == nullptr) return false;
  }
  return true;
}

// Tags slots [first, end) as continuations of the region starting at slot
// `head`. False, with none tagged, if one of their cells can't be had.
bool TagContinuations(uint64_t head, uint64_t first, uint64_t end) {
  if (!ReserveSlots(first, end)) return false;  // every cell first: nothing to undo
  for (uint64_t slot = first; slot < end; slot++) {
    Cell(slot, false)->store(ContinuationTag(head, slot), std::memory_order_release);
  }
  return true;
}

void UntagSlots(uint64_t first, uint64_t end) {
  for (uint64_t slot = first; slot < end && slot < kRegionSlots; slot++) {
    if (std::atomic<uint8_t>* cell = Cell(slot, false)) {
      cell->store(kTagNone, std::memory_order_release);
    }
  }
}

uint8_t TagAt(uint64_t slot) {
  const std::atomic<uint8_t>* cell = Cell(slot, false);
  return cell == nullptr ? kTagNone : cell->load(std::memory_order_relaxed);
}

}  // namespace

uint8_t TagOf(const void* p) {
  const uint64_t slot = reinterpret_cast<uintptr_t>(p) >> kRegionShift;
  return slot < kRegionSlots ? TagAt(slot) : kTagNone;
}

bool Register(uintptr_t base, uint8_t tag, size_t size) {
  const uint64_t slot = base >> kRegionShift;
  if (slot >= kRegionSlots) return false;
  std::atomic<uint8_t>* cell = Cell(slot, true);
  if (cell == nullptr || !TagContinuations(slot, slot + 1, EndSlot(base, size))) return false;
  const uint8_t old = cell->exchange(tag, std::memory_order_release);
  if (old == kTagNone) g_registered.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void Unregister(uintptr_t base, size_t size) {
  const uint64_t slot = base >> kRegionShift;
  if (slot >= kRegionSlots) return;
  UntagSlots(slot + 1, EndSlot(base, size));
  std::atomic<uint8_t>* cell = Cell(slot, false);
  if (cell == nullptr) return;  // never registered
  const uint8_t old = cell->exchange(kTagNone, std::memory_order_release);
  if (old != kTagNone) g_registered.fetch_sub(1, std::memory_order_relaxed);
}

bool Reserve(uintptr_t base, size_t size) {
  return ReserveSlots(base >> kRegionShift, EndSlot(base, size));
}

bool Resize(uintptr_t base, size_t old_size, size_t new_size) {
  const uint64_t old_end = EndSlot(base, old_size);
  const uint64_t new_end = EndSlot(base, new_size);
  if (new_end > old_end) return TagContinuations(base >> kRegionShift, old_end, new_end);
  UntagSlots(new_end, old_end);
  return true;
}

RegionHeader* Lookup(const void* p) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(p);
  uint64_t slot = address >> kRegionShift;
  if (slot >= kRegionSlots) return nullptr;
  uint8_t tag = TagAt(slot);
  while (tag & kTagContinued) {  // back to the region's first slot
    const uint64_t jump = uint64_t{1} << (tag & ~kTagContinued & 63);
    if (jump > slot) return nullptr;  // torn by a concurrent change: not ours
    slot -= jump;
    tag = TagAt(slot);
  }
  if (tag == kTagNone) return nullptr;
  RegionHeader* header = reinterpret_cast<RegionHeader*>(slot << kRegionShift);
  if (header->magic != kRegionMagic) return nullptr;
  if (address - (slot << kRegionShift) >= header->mapped_size) return nullptr;
  return header;
}

uint64_t RegisteredCount() {
  return g_registered.load(std::memory_order_relaxed);
}

uint64_t OutsideLeavesMapped() { return g_leaves.load(std::memory_order_relaxed); }

}  // namespace registry
}  // namespace hakmem
