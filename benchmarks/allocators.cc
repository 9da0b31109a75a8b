#include "benchmarks/allocators.h"

#include <stdlib.h>

#include "absl/strings/str_cat.h"
#include "benchmarks/child_process.h"

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

std::string FindRunfile(const std::string& path) {
  const std::string in_runfiles = absl::StrCat("/hakmem/", path);
  std::vector<std::string> candidates;
  for (const char* var : {"RUNFILES_DIR", "TEST_SRCDIR"}) {
    const char* dir = getenv(var);
    if (dir != nullptr) candidates.push_back(absl::StrCat(dir, in_runfiles));
  }
  const std::string exe = SelfExePath();
  candidates.push_back(absl::StrCat(exe, ".runfiles", in_runfiles));
  // bazel-bin/benchmarks/random_mixed -> bazel-bin/<path>
  candidates.push_back(absl::StrCat(exe.substr(0, exe.rfind('/')), "/../", path));
  for (const std::string& candidate : candidates) {
    std::string found = ExistingFile(candidate);
    if (!found.empty()) return found;
  }
  return "";
}

std::string FindHakmemSo() { return FindRunfile("hakmem/libhakmem.so"); }

}  // namespace bench
