// The allocators random_mixed compares, and how each one gets into the
// benchmark's child process.
//
// Every allocator runs the same way: the parent re-executes its own binary
// with LD_PRELOAD naming the allocator's shared object (none for glibc), so
// the child's plain malloc/free calls reach it through the PLT. "floor" is no
// allocator at all: the child runs the same loop against a do-nothing bump
// allocator to measure what the loop itself costs.
#ifndef BENCHMARKS_ALLOCATORS_H_
#define BENCHMARKS_ALLOCATORS_H_

#include <string>
#include <vector>

namespace bench {

enum class Preload {
  kNone,        // the process keeps glibc's malloc
  kFixedPath,   // a Debian package's shared object, at `shared_object`
  kHakmem,      // //hakmem:libhakmem.so, found at run time (runfiles)
};

struct AllocatorInfo {
  const char* name;           // --allocator value and JSON key
  const char* label;          // shown in the table and the chart
  Preload preload;
  const char* shared_object;  // for kFixedPath
  const char* package;        // Debian package providing it, for messages
  bool is_peer;               // one of the mature allocators hakmem chases
  bool is_floor;              // the do-nothing allocator
};

// In table order: hakmem, glibc, tcmalloc, jemalloc, mimalloc, floor.
const std::vector<AllocatorInfo>& AllAllocators();

// nullptr for an unknown name.
const AllocatorInfo* FindAllocator(const std::string& name);

// Appends the allocators of an --allocator value ("all" or a comma-separated
// list of names) to `out`, each once. "all" skips, with a note on stderr
// prefixed by `program`, allocators whose Debian package is missing; a name
// that is unknown or missing fails with `error`.
bool ParseAllocatorList(const std::string& flag, const char* program,
                        std::vector<const AllocatorInfo*>* out, std::string* error);

// An allocator and the LD_PRELOAD value that puts it into a child process
// ("" for glibc).
struct PreloadedAllocator {
  const AllocatorInfo* info;
  std::string preload;
};

// glibc (the reference) first, then the allocators of `list` (as
// ParseAllocatorList; the floor is left out), each with its preload path.
// `hakmem_so` says where libhakmem.so is ("": from the runfiles). False,
// with `error`, if one is unknown or missing.
bool ResolvePreloadedAllocators(const std::string& list, const std::string& hakmem_so,
                                const char* program, std::vector<PreloadedAllocator>* out,
                                std::string* error);

// Where Bazel put `path` (relative to the workspace, e.g.
// "hakmem/libhakmem.so") for the running binary, a `data` dependency of it;
// or "".
std::string FindRunfile(const std::string& path);
std::string FindHakmemSo();

}  // namespace bench

#endif  // BENCHMARKS_ALLOCATORS_H_
