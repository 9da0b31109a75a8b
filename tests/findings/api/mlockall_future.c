// gcc -O2 mlockall_future.c -o mlockall_future
// Run unprivileged (RLIMIT_MEMLOCK 8 MiB, the usual default; root's CAP_IPC_LOCK ignores it):
//   setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all \
//     env LD_PRELOAD=bazel-bin/hakmem/libhakmem.so ./mlockall_future
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
static void status(const char* when) {
  char l[256]; FILE* f = fopen("/proc/self/status", "r");
  printf("%s:", when);
  while (fgets(l, sizeof l, f)) if (!strncmp(l, "VmSize", 6) || !strncmp(l, "VmLck", 5) || !strncmp(l, "VmRSS", 5)) { l[strlen(l) - 1] = 0; printf("  %s", l); }
  fclose(f); printf("\n");
}
int main(void) {
  status("start");
  if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) { printf("mlockall: %s\n", strerror(errno)); return 1; }
  status("after mlockall");
  size_t sizes[] = {100, 5000, 50000, 100000, 300000, 1 << 20, 2 << 20};
  int failed = 0;
  for (unsigned i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    errno = 0;
    void* p = malloc(sizes[i]);
    printf("malloc(%zu) = %s%s\n", sizes[i], p ? "ok" : "NULL ", p ? "" : strerror(errno));
    failed += p == NULL;
    if (p) memset(p, 1, sizes[i]);  // kept
  }
  status("end");
  return failed != 0;
}
