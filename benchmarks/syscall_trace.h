// Counts the memory-management syscalls of a child run from an strace log:
// for the whole process and for the timed loop alone (the calls between the
// child's begin and end markers, see workload.h).
#ifndef BENCHMARKS_SYSCALL_TRACE_H_
#define BENCHMARKS_SYSCALL_TRACE_H_

#include <stdint.h>

#include <array>
#include <string>
#include <vector>

namespace bench {

// The syscalls counted, in report order.
inline constexpr std::array<const char*, 6> kTracedSyscalls = {
    "mmap", "munmap", "madvise", "mincore", "brk", "mremap"};
constexpr int kNumTracedSyscalls = static_cast<int>(kTracedSyscalls.size());

struct SyscallCounts {
  std::array<uint64_t, kNumTracedSyscalls> process{};
  std::array<uint64_t, kNumTracedSyscalls> in_loop{};
};

// Arguments that make strace write the log `log_path` for the command that
// follows them. `tracee_env` ("NAME=value") is set for the traced command
// only, not for strace itself (strace must not run on a preloaded allocator).
std::vector<std::string> StraceArgs(const std::string& strace_path,
                                    const std::string& log_path,
                                    const std::vector<std::string>& tracee_env);

// Parses an `strace -f -o` log. Fails (with a reason) unless both markers
// were seen, in order.
bool ParseStraceLog(const std::string& log, SyscallCounts* counts,
                    std::string* error);

}  // namespace bench

#endif  // BENCHMARKS_SYSCALL_TRACE_H_
