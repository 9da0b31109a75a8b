#include "hakmem/registry/registry.h"

#include <pthread.h>

namespace hakmem {
namespace registry {

std::atomic<uint8_t>* g_tags = nullptr;

namespace {
pthread_mutex_t g_init_lock = PTHREAD_MUTEX_INITIALIZER;
std::atomic<uint64_t> g_registered{0};
std::atomic<bool> g_ready{false};
}  // namespace

bool Init() {
  if (g_ready.load(std::memory_order_acquire)) return true;
  pthread_mutex_lock(&g_init_lock);
  if (!g_ready.load(std::memory_order_relaxed)) {
    void* map = platform::MapSparse(kRegionSlots);
    if (map != nullptr) {
      g_tags = static_cast<std::atomic<uint8_t>*>(map);
      g_ready.store(true, std::memory_order_release);
    }
  }
  pthread_mutex_unlock(&g_init_lock);
  return g_ready.load(std::memory_order_acquire);
}

bool Register(uintptr_t base, uint8_t tag) {
  if (!Init()) return false;
  const uint64_t slot = base >> kRegionShift;
  if (slot >= kRegionSlots) return false;
  const uint8_t old = g_tags[slot].exchange(tag, std::memory_order_release);
  if (old == kTagNone) g_registered.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void Unregister(uintptr_t base) {
  const uint64_t slot = base >> kRegionShift;
  if (g_tags == nullptr || slot >= kRegionSlots) return;
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
