#include "benchmarks/syscall_trace.h"

#include <ctype.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "benchmarks/workload.h"

namespace bench {
namespace {

// strace shows the first 32 bytes of a written string (its -s default).
static_assert(sizeof(kLoopBeginMarker) - 1 <= 32 &&
                  sizeof(kLoopEndMarker) - 1 <= 32,
              "markers must show whole in an strace log");

// "write" only for the markers; the child writes its result once at exit.
std::string TraceFilter() {
  std::string filter = "trace=write";
  for (const char* name : kTracedSyscalls) absl::StrAppend(&filter, ",", name);
  return filter;
}

// The syscall a log line starts, or "" for anything else ("<... resumed>",
// "+++ exited", "--- SIGCHLD"). Lines look like "1234  mmap(NULL, ...".
absl::string_view SyscallName(absl::string_view line) {
  size_t i = 0;
  while (i < line.size() && isdigit(static_cast<unsigned char>(line[i]))) ++i;
  while (i < line.size() && line[i] == ' ') ++i;
  const size_t start = i;
  while (i < line.size() &&
         (isalnum(static_cast<unsigned char>(line[i])) || line[i] == '_')) {
    ++i;
  }
  if (i == start || i >= line.size() || line[i] != '(') return "";
  return line.substr(start, i - start);
}

bool IsMarker(absl::string_view line, const char* marker) {
  return absl::StrContains(line, absl::StrCat("write(-1, \"", marker, "\""));
}

}  // namespace

std::vector<std::string> StraceArgs(const std::string& strace_path,
                                    const std::string& log_path,
                                    const std::vector<std::string>& tracee_env) {
  std::vector<std::string> args = {strace_path, "-f", "-qq", "-e",
                                   TraceFilter(), "-o", log_path};
  for (const std::string& var : tracee_env) {
    args.push_back("-E");
    args.push_back(var);
  }
  return args;
}

bool ParseStraceLog(const std::string& log, SyscallCounts* counts,
                    std::string* error) {
  *counts = SyscallCounts();
  enum { kBefore, kInLoop, kAfter } state = kBefore;
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    const absl::string_view name = SyscallName(line);
    if (name.empty()) continue;
    if (name == "write") {
      if (state == kBefore && IsMarker(line, kLoopBeginMarker)) state = kInLoop;
      if (state == kInLoop && IsMarker(line, kLoopEndMarker)) state = kAfter;
      continue;
    }
    for (int i = 0; i < kNumTracedSyscalls; ++i) {
      if (name != kTracedSyscalls[i]) continue;
      counts->process[i]++;
      if (state == kInLoop) counts->in_loop[i]++;
    }
  }
  if (state != kAfter) {
    *error = state == kBefore ? "the loop's begin marker is missing"
                              : "the loop's end marker is missing";
    return false;
  }
  return true;
}

}  // namespace bench
