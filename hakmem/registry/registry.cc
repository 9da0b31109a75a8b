#include "hakmem/registry/registry.h"

namespace hakmem {
namespace registry {

std::atomic<uint8_t> g_tags[kRegionSlots];

namespace {
std::atomic<uint64_t> g_registered{0};
}  // namespace

bool Register(uintptr_t base, uint8_t tag) {
  const uint64_t slot = base >> kRegionShift;
  if (slot >= kRegionSlots) return false;
  const uint8_t old = g_tags[slot].exchange(tag, std::memory_order_release);
  if (old == kTagNone) g_registered.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void Unregister(uintptr_t base) {
  const uint64_t slot = base >> kRegionShift;
  if (slot >= kRegionSlots) return;
  const uint8_t old = g_tags[slot].exchange(kTagNone, std::memory_order_release);
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

}  // namespace registry
}  // namespace hakmem
