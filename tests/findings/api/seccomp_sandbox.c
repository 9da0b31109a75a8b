// gcc -O2 -pthread seccomp_sandbox.c -o seccomp_sandbox
// A process that sandboxes itself with a seccomp allow-list modelled on OpenSSH's pre-auth
// filter (sandbox-seccomp-filter.c: the memory calls glibc's malloc makes are allowed, open*
// fails with EACCES, anything else kills the process), then keeps using malloc/free.
//   ./seccomp_sandbox trim      malloc_trim(0) after sandboxing
//   ./seccomp_sandbox idle      frees 64 MiB of small blocks, then ordinary malloc/free for 25 s
//   ./seccomp_sandbox threads   two threads allocate after sandboxing
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <malloc.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define ALLOW(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
#define DENY(nr, e) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (e))
static void sandbox(void) {
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      DENY(__NR_open, EACCES), DENY(__NR_openat, EACCES), DENY(__NR_newfstatat, EACCES), DENY(__NR_fstat, EACCES),
      ALLOW(__NR_brk), ALLOW(__NR_clock_gettime), ALLOW(__NR_close), ALLOW(__NR_exit), ALLOW(__NR_exit_group),
      ALLOW(__NR_futex), ALLOW(__NR_getpid), ALLOW(__NR_getrandom), ALLOW(__NR_gettimeofday), ALLOW(__NR_madvise),
      ALLOW(__NR_mmap), ALLOW(__NR_mprotect), ALLOW(__NR_mremap), ALLOW(__NR_munmap), ALLOW(__NR_nanosleep),
      ALLOW(__NR_clock_nanosleep), ALLOW(__NR_read), ALLOW(__NR_write), ALLOW(__NR_rt_sigprocmask),
      // (for the "threads" mode: what pthread_create/join need, as any threaded sandbox allows)
      ALLOW(__NR_clone), ALLOW(__NR_rt_sigaction), ALLOW(__NR_clone3), ALLOW(__NR_set_robust_list), ALLOW(__NR_rseq), ALLOW(__NR_sched_yield),
      ALLOW(__NR_madvise),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
  };
  struct sock_fprog prog = {sizeof f / sizeof *f, f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) { perror("seccomp"); exit(2); }
}
static void* volatile sink;
static void say(const char* s) { write(1, s, strlen(s)); }
static void* worker(void* arg) {
  static __thread void* held[4096];
  for (int r = 0; r < 200; r++) {  // bins refill and overflow: small slow paths
    for (int i = 0; i < 4096; i++) held[i] = malloc((i * 37 + r) % 4000 + 1);
    for (int i = 0; i < 4096; i++) free(held[i]);
  }
  return arg;
}
int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "trim";
  enum { N = 64 * 1024 * 1024 / 128 };
  static void* v[N];
  for (int i = 0; i < N; i++) v[i] = malloc(128);  // 64 MiB of small blocks, before the sandbox
  sandbox();
  say("sandboxed\n");
  if (!strcmp(mode, "trim")) {
    for (int i = 0; i < N; i++) free(v[i]);
    malloc_trim(0);
    say("malloc_trim(0) returned\n");
  } else if (!strcmp(mode, "idle")) {
    for (int i = 0; i < N; i++) free(v[i]);
    for (int s = 0; s < 25; s++) {
      for (int i = 0; i < 1000; i++) { sink = malloc(i % 3000 + 1); free(sink); }
      sink = malloc(1 << 20); free(sink);
      struct timespec ts = {1, 0}; nanosleep(&ts, 0);
    }
    say("25 s of malloc/free after freeing 64 MiB\n");
  } else {
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], 0, worker, 0);
    for (int i = 0; i < 2; i++) pthread_join(t[i], 0);
    say("threads done\n");
  }
  say("ok\n");
  return 0;
}
