#include "benchmarks/child_process.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace bench {
namespace {

std::vector<char*> CStrings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (const std::string& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

}  // namespace

ChildOutput RunChild(const std::vector<std::string>& argv,
                     const std::vector<std::string>& env) {
  ChildOutput out;
  timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    out.error = absl::StrCat("pipe: ", strerror(errno));
    return out;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // dup2 clears O_CLOEXEC on the child's stdout; the other ends close on exec.
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  std::vector<char*> c_argv = CStrings(argv);
  std::vector<char*> c_env = CStrings(env);
  pid_t pid;
  const int rc = posix_spawn(&pid, c_argv[0], &actions, nullptr, c_argv.data(),
                             c_env.data());
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);
  if (rc != 0) {
    close(pipe_fds[0]);
    out.error = absl::StrCat("cannot run ", argv[0], ": ", strerror(rc));
    return out;
  }
  out.started = true;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(pipe_fds[0], buf, sizeof(buf));
    if (n > 0) {
      out.stdout_text.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  close(pipe_fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  timespec end;
  clock_gettime(CLOCK_MONOTONIC, &end);
  out.wall_us = (end.tv_sec - start.tv_sec) * 1e6 + (end.tv_nsec - start.tv_nsec) / 1e3;
  if (WIFEXITED(status)) out.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) out.signal = WTERMSIG(status);
  return out;
}

std::string DescribeExit(const ChildOutput& out) {
  if (!out.started) return out.error;
  if (out.signal != 0) {
    return absl::StrCat("killed by signal ", out.signal, " (",
                        strsignal(out.signal), ")");
  }
  return absl::StrCat("exited with status ", out.exit_code);
}

std::string SelfExePath() {
  char path[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (n <= 0) return "";
  return std::string(path, static_cast<size_t>(n));
}

std::string ExistingFile(const std::string& path) {
  struct stat st;
  if (path.empty() || stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return "";
  }
  char resolved[PATH_MAX];
  if (realpath(path.c_str(), resolved) == nullptr) return "";
  return resolved;
}

std::string FindInPath(const std::string& name) {
  const char* path = getenv("PATH");
  // Bazel's strict test environment has a minimal PATH: look in the usual
  // places too.
  std::string dirs = absl::StrCat(path != nullptr ? path : "",
                                  ":/usr/local/bin:/usr/bin:/bin");
  for (absl::string_view dir : absl::StrSplit(dirs, ':', absl::SkipEmpty())) {
    const std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

}  // namespace bench
