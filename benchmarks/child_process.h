// Runs the benchmark's child processes: fork/exec with an explicit
// environment, stdout captured, stderr passed through.
#ifndef BENCHMARKS_CHILD_PROCESS_H_
#define BENCHMARKS_CHILD_PROCESS_H_

#include <string>
#include <vector>

namespace bench {

struct ChildOutput {
  bool started = false;  // false: fork/exec failed (see `error`)
  int exit_code = -1;    // valid when the child exited normally
  int signal = 0;        // non-zero when a signal killed the child
  std::string stdout_text;
  std::string error;
  double wall_us = 0;     // from spawn to exit
};

// Runs argv[0] (a path) with exactly `env` as its environment and waits.
ChildOutput RunChild(const std::vector<std::string>& argv,
                     const std::vector<std::string>& env);

// "exited with status 3", "killed by signal 11 (Segmentation fault)".
std::string DescribeExit(const ChildOutput& out);

// The running binary's absolute path (/proc/self/exe resolved, so it still
// names this binary inside another program such as strace).
std::string SelfExePath();

// `path`, if it names an existing file, as an absolute path; else "".
std::string ExistingFile(const std::string& path);

// The first executable `name` in $PATH, or "".
std::string FindInPath(const std::string& name);

}  // namespace bench

#endif  // BENCHMARKS_CHILD_PROCESS_H_
