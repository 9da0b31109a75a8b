// A process that sandboxes itself with seccomp after start-up (OpenSSH's
// pre-auth child, vsftpd) kills itself on any system call its filter does
// not list. glibc's malloc makes only memory calls then; hakmem used to ask
// for limits (prlimit64), the overcommit mode (openat) and the CPU count
// (sched_getaffinity) at any later time: SuperSlab evictions, trims, the
// large reserve, the census of running threads (a helper's hunt, session
// 23). Here those calls kill the process; the allocator must not make them.
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <malloc.h>

#include <vector>

#include "gtest/gtest.h"

namespace {

void Sandbox() {
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_prlimit64, 3, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_openat, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_sched_getaffinity, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
  };
  struct sock_fprog program = {static_cast<unsigned short>(sizeof(filter) / sizeof(filter[0])),
                               filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) _exit(2);
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) != 0) _exit(3);
}

void* Churn(void*) {
  // Long enough for several censuses (every 10 ms) with two threads running.
  for (int round = 0; round < 300; round++) {
    std::vector<void*> blocks;
    for (int i = 0; i < 200; i++) blocks.push_back(malloc(16 + (i * 97) % 40000));
    for (void* p : blocks) free(p);
    usleep(1000);
  }
  return nullptr;
}

void SandboxedAllocation() {
  free(malloc(64));  // started before the sandbox, as a daemon is
  Sandbox();
  // SuperSlabs filled and emptied (evicted at once: HAKMEM_SUPERSLAB_MAX_CACHED=0).
  for (int round = 0; round < 3; round++) {
    std::vector<void*> blocks;
    for (int i = 0; i < 20000; i++) blocks.push_back(malloc(256));
    for (int i = 0; i < 400; i++) blocks.push_back(malloc(100000));
    for (void* p : blocks) free(p);
  }
  // Large blocks enough to map the reserve again.
  std::vector<void*> large;
  for (int i = 0; i < 100; i++) large.push_back(malloc(1 << 20));
  for (void* p : large) free(p);
  malloc_trim(0);
  // Two threads at once: the census compares them with the CPUs.
  pthread_t threads[2];
  for (pthread_t& t : threads) {
    if (pthread_create(&t, nullptr, Churn, nullptr) != 0) _exit(4);
  }
  for (pthread_t& t : threads) pthread_join(t, nullptr);
  malloc_trim(0);
  static const char kOk[] = "sandboxed: ok\n";
  if (write(2, kOk, sizeof(kOk) - 1) < 0) _exit(5);
  _exit(0);
}

TEST(Sandbox, AllocatingUnderASeccompFilterMakesNoOtherSystemCall) {
  EXPECT_EXIT(SandboxedAllocation(), ::testing::ExitedWithCode(0), "sandboxed: ok");
}

}  // namespace
