#include "benchmarks/allocators.h"

namespace bench {

const std::vector<AllocatorInfo>& AllAllocators() {
  static const auto* const kAllocators = new std::vector<AllocatorInfo>{
      {"hakmem", "hakmem", Preload::kHakmem, nullptr, nullptr, false, false},
      {"glibc", "glibc", Preload::kNone, nullptr, nullptr, false, false},
      // gperftools' tcmalloc, not Google's newer one (see third_party).
      {"tcmalloc", "tcmalloc (gperftools)", Preload::kFixedPath,
       "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
       "libgoogle-perftools-dev", true, false},
      {"jemalloc", "jemalloc", Preload::kFixedPath,
       "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "libjemalloc-dev", true,
       false},
      {"mimalloc", "mimalloc", Preload::kFixedPath,
       "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2", "libmimalloc-dev", true,
       false},
      {"floor", "floor (no-op alloc)", Preload::kNone, nullptr, nullptr, false,
       true},
  };
  return *kAllocators;
}

const AllocatorInfo* FindAllocator(const std::string& name) {
  for (const AllocatorInfo& info : AllAllocators()) {
    if (name == info.name) return &info;
  }
  return nullptr;
}

}  // namespace bench
