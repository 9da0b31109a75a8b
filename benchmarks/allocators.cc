#include "benchmarks/allocators.h"

#include <stdlib.h>

#include <stdio.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
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

bool ParseAllocatorList(const std::string& flag, const char* program,
                        std::vector<const AllocatorInfo*>* out, std::string* error) {
  auto add = [out](const AllocatorInfo* info) {
    if (std::find(out->begin(), out->end(), info) == out->end()) out->push_back(info);
  };
  for (absl::string_view name : absl::StrSplit(flag, ',')) {
    if (name == "all") {
      for (const AllocatorInfo& info : AllAllocators()) {
        if (info.preload == Preload::kFixedPath &&
            ExistingFile(info.shared_object).empty()) {
          fprintf(stderr, "%s: note: skipping %s: %s is missing (Debian package %s)\n",
                  program, info.name, info.shared_object, info.package);
          continue;
        }
        add(&info);
      }
      continue;
    }
    const AllocatorInfo* info = FindAllocator(std::string(name));
    if (info == nullptr) {
      std::vector<std::string> names;
      for (const AllocatorInfo& a : AllAllocators()) names.push_back(a.name);
      *error = absl::StrCat("--allocator=", flag, ": unknown allocator '", name,
                            "'; expected all or a comma-separated list of ",
                            absl::StrJoin(names, ", "));
      return false;
    }
    if (info->preload == Preload::kFixedPath &&
        ExistingFile(info->shared_object).empty()) {
      *error = absl::StrFormat("--allocator=%s: %s is missing (install the "
                               "Debian package %s)",
                               info->name, info->shared_object, info->package);
      return false;
    }
    add(info);
  }
  return true;
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

bool ResolvePreloadedAllocators(const std::string& list, const std::string& hakmem_so,
                                const char* program, std::vector<PreloadedAllocator>* out,
                                std::string* error) {
  std::vector<const AllocatorInfo*> infos = {FindAllocator("glibc")};
  if (!ParseAllocatorList(list, program, &infos, error)) return false;
  for (const AllocatorInfo* info : infos) {
    if (info->is_floor) continue;
    PreloadedAllocator a{info, ""};
    if (info->preload == Preload::kFixedPath) a.preload = info->shared_object;
    if (info->preload == Preload::kHakmem) {
      a.preload = hakmem_so.empty() ? FindHakmemSo() : ExistingFile(hakmem_so);
      if (a.preload.empty()) {
        *error = "cannot find libhakmem.so (build with Bazel or pass --hakmem_so)";
        return false;
      }
    }
    out->push_back(a);
  }
  return true;
}

}  // namespace bench
