#include "tests/test_util.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gtest/gtest.h"

#if !defined(HAKMEM_TEST_LINKED) && !defined(HAKMEM_TEST_PRELOAD)
#error "define HAKMEM_TEST_LINKED or HAKMEM_TEST_PRELOAD (see tests/BUILD.bazel)"
#endif

namespace hakmem_test {
namespace {

std::string ObjectOf(const void* addr) {
  Dl_info info;
  if (addr == nullptr || dladdr(addr, &info) == 0 || info.dli_fname == nullptr) {
    return "<unknown>";
  }
  return info.dli_fname;
}

[[maybe_unused]] bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The object that defines the code at `addr` is the main executable.
[[maybe_unused]] bool InMainExecutable(const void* addr) {
  Dl_info info;
  if (dladdr(addr, &info) == 0) return false;
  Dl_info main_info;
  // WhyHakmemIsNotActive is linked statically into the test executable.
  if (dladdr(reinterpret_cast<const void*>(&WhyHakmemIsNotActive), &main_info) == 0) {
    return false;
  }
  return info.dli_fbase == main_info.dli_fbase;
}

}  // namespace

std::string WhyHakmemIsNotActive() {
  // hakmem's smallest class is 16 bytes; glibc's malloc(1) has 24 usable.
  void* p = malloc(OpaqueSize(1));
  const size_t usable = malloc_usable_size(p);
  free(p);
  if (usable != 16) {
    return "malloc_usable_size(malloc(1)) = " + std::to_string(usable) +
           ", hakmem gives 16";
  }
  void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  const void* libc_malloc = libc != nullptr ? dlsym(libc, "malloc") : nullptr;
  const char* const kSymbols[] = {"malloc", "free", "calloc", "realloc",
                                  "posix_memalign", "malloc_usable_size",
                                  "_Znwm", "_ZdlPv", "_ZdlPvm"};
  for (const char* name : kSymbols) {
    void* sym = dlsym(RTLD_DEFAULT, name);
    if (sym == nullptr) return std::string("dlsym(") + name + ") failed";
    const std::string object = ObjectOf(sym);
#if defined(HAKMEM_TEST_PRELOAD)
    if (!EndsWith(object, "/libhakmem.so")) {
      return std::string(name) + " resolves to " + object + ", not libhakmem.so";
    }
#else
    if (!InMainExecutable(sym)) {
      return std::string(name) + " resolves to " + object +
             ", not the test executable (linked with //hakmem:malloc)";
    }
#endif
  }
  if (dlsym(RTLD_DEFAULT, "malloc") == libc_malloc) {
    return "malloc is glibc's";
  }
#if defined(HAKMEM_TEST_PRELOAD)
  const char* preload = getenv("LD_PRELOAD");
  if (preload == nullptr || strstr(preload, "libhakmem.so") == nullptr) {
    return "LD_PRELOAD does not name libhakmem.so";
  }
#endif
  return "";
}

namespace {

class HakmemActiveEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    const std::string why = WhyHakmemIsNotActive();
    ASSERT_EQ(why, "") << "hakmem is not the active allocator ("
#if defined(HAKMEM_TEST_PRELOAD)
                       << "preload variant"
#else
                       << "linked variant"
#endif
                       << ")";
  }
};

[[maybe_unused]] ::testing::Environment* const g_env =
    ::testing::AddGlobalTestEnvironment(new HakmemActiveEnvironment);

// The same check as a named test, so that it shows in every test log.
TEST(HakmemActive, ServesMallocAndNew) { EXPECT_EQ(WhyHakmemIsNotActive(), ""); }

}  // namespace

std::string HexPtr(const void* p) {
  char buf[32];
  snprintf(buf, sizeof(buf), "0x%lx",
           static_cast<unsigned long>(reinterpret_cast<uintptr_t>(p)));
  return buf;
}

std::string RegexEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (strchr("\\^$.|?*+()[]{}", c) != nullptr) out += '\\';
    out += c;
  }
  return out;
}

namespace {
size_t StatmField(int index) {
  FILE* f = fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long v[2] = {0, 0};
  const int n = fscanf(f, "%lu %lu", &v[0], &v[1]);
  fclose(f);
  if (n != 2) return 0;
  return static_cast<size_t>(v[index]) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}
}  // namespace

size_t RssBytes() { return StatmField(1); }
size_t VmBytes() { return StatmField(0); }

namespace {
inline uint64_t Word(uint64_t seed, size_t word_index) {
  uint64_t z = seed * 0x9e3779b97f4a7c15ull + word_index * 0xd1b54a32d192ed03ull;
  return z ^ (z >> 29);
}
inline uint8_t Byte(uint64_t seed, size_t offset) {
  return static_cast<uint8_t>(Word(seed, offset / 8) >> (8 * (offset % 8)));
}
}  // namespace

void Fill(void* p, size_t n, uint64_t seed) {
  unsigned char* c = static_cast<unsigned char*>(p);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint64_t w = Word(seed, i / 8);
    memcpy(c + i, &w, 8);
  }
  for (; i < n; i++) c[i] = Byte(seed, i);
}

size_t FirstMismatch(const void* p, size_t n, uint64_t seed) {
  const unsigned char* c = static_cast<const unsigned char*>(p);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, c + i, 8);
    if (w != Word(seed, i / 8)) break;
  }
  for (; i < n; i++) {
    if (c[i] != Byte(seed, i)) return i;
  }
  return SIZE_MAX;
}

namespace {
template <typename Fn>
void ForSparse(size_t n, Fn fn) {
  if (n <= 8192) {
    fn(0, n);
    return;
  }
  fn(0, 64);
  for (size_t off = 4096; off + 16 <= n - 64; off += 4096) fn(off, 16);
  fn(n - 64, 64);
}
}  // namespace

void FillSparse(void* p, size_t n, uint64_t seed) {
  unsigned char* c = static_cast<unsigned char*>(p);
  ForSparse(n, [&](size_t off, size_t len) {
    for (size_t i = off; i < off + len; i++) c[i] = Byte(seed, i);
  });
}

bool CheckSparse(const void* p, size_t n, uint64_t seed) {
  const unsigned char* c = static_cast<const unsigned char*>(p);
  bool ok = true;
  ForSparse(n, [&](size_t off, size_t len) {
    for (size_t i = off; i < off + len; i++) ok &= c[i] == Byte(seed, i);
  });
  return ok;
}

bool CheckSparsePrefix(const void* p, size_t n, size_t keep, uint64_t seed) {
  const unsigned char* c = static_cast<const unsigned char*>(p);
  bool ok = true;
  ForSparse(n, [&](size_t off, size_t len) {
    for (size_t i = off; i < off + len && i < keep; i++) ok &= c[i] == Byte(seed, i);
  });
  return ok;
}

bool WaitWithTimeout(pid_t pid, int timeout_sec, int* status) {
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    const pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if (r < 0 && errno != EINTR) return false;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec - start.tv_sec >= timeout_sec) {
      kill(pid, SIGKILL);
      waitpid(pid, status, 0);
      return false;
    }
    usleep(2000);
  }
}

std::string DescribeStatus(int status) {
  if (WIFEXITED(status)) return "exited " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return std::string("killed by signal ") + std::to_string(WTERMSIG(status)) +
           " (" + strsignal(WTERMSIG(status)) + ")";
  }
  return "status " + std::to_string(status);
}

bool LongMode() {
  const char* v = getenv("HAKMEM_LONG");
  return v != nullptr && strcmp(v, "1") == 0;
}

}  // namespace hakmem_test
