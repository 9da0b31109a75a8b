// gcc -O2 tests/findings/sig_fork_deadlock.c -o /tmp/sig_fork_deadlock
// LD_PRELOAD=bazel-bin/hakmem/libhakmem.so timeout 30 /tmp/sig_fork_deadlock; echo rc=$?
// A single-threaded program whose SIGALRM handler forks (fork is on POSIX.1-2008's
// async-signal-safe list) and whose child only _exits (a crash reporter would exec).
// Under glibc 2.36 this runs to the end (a single-threaded fork takes no malloc lock).
// Under hakmem the parent deadlocks in its own prepare handler (PrepareFork) as soon
// as the signal lands while malloc/free holds an allocator lock (here the large cache's).
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t forks;
static void on_alarm(int sig) {
  (void)sig;
  pid_t c = fork();
  if (c == 0) _exit(0);
  if (c > 0) forks++;
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &sa, NULL);
  signal(SIGCHLD, SIG_IGN);  // children reap themselves
  struct itimerval it = {{0, 500}, {0, 500}};
  setitimer(ITIMER_REAL, &it, NULL);
  while (forks < 2000) {
    void* p = malloc(1 << 20);  // large blocks: the large cache's lock
    free(p);
  }
  printf("%d forks from the signal handler, no hang\n", (int)forks);
  return 0;
}
