#include "hakmem/registry/registry.h"

namespace hakmem {
namespace registry {

std::atomic<uint8_t> g_window_tags[kWindowSlots];

namespace {

// Outside leaves, null until mapped.
std::atomic<std::atomic<uint8_t>*> g_directory[kDirectorySlots];
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

}  // namespace

uint8_t TagOf(const void* p) {
  const uint64_t slot = reinterpret_cast<uintptr_t>(p) >> kRegionShift;
  if (slot >= kRegionSlots) return kTagNone;
  const std::atomic<uint8_t>* cell = Cell(slot, false);
  return cell == nullptr ? kTagNone : cell->load(std::memory_order_relaxed);
}

bool Register(uintptr_t base, uint8_t tag) {
  const uint64_t slot = base >> kRegionShift;
  if (slot >= kRegionSlots) return false;
  std::atomic<uint8_t>* cell = Cell(slot, true);
  if (cell == nullptr) return false;
  const uint8_t old = cell->exchange(tag, std::memory_order_release);
  if (old == kTagNone) g_registered.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void Unregister(uintptr_t base) {
  const uint64_t slot = base >> kRegionShift;
  if (slot >= kRegionSlots) return;
  std::atomic<uint8_t>* cell = Cell(slot, false);
  if (cell == nullptr) return;  // never registered
  const uint8_t old = cell->exchange(kTagNone, std::memory_order_release);
  if (old != kTagNone) g_registered.fetch_sub(1, std::memory_order_relaxed);
}

RegionHeader* Lookup(const void* p) {
  if (!Contains(p)) return nullptr;
  RegionHeader* header = reinterpret_cast<RegionHeader*>(RegionBaseOf(p));
  if (header->magic != kRegionMagic) return nullptr;
  return header;
}

uint64_t RegisteredCount() {
  return g_registered.load(std::memory_order_relaxed);
}

uint64_t OutsideLeavesMapped() { return g_leaves.load(std::memory_order_relaxed); }

}  // namespace registry
}  // namespace hakmem
