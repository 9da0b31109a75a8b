// gcc -O2 remap_reservation_leak.c -o remap_reservation_leak
// ./remap_reservation_leak                                   (glibc)
// LD_PRELOAD=bazel-bin/hakmem/libhakmem.so ./remap_reservation_leak
// Under RLIMIT_AS = VmSize + 600 MiB: two 150 MiB blocks A and B (B placed
// right after A), then realloc(A, 250 MiB). hakmem cannot grow A in place,
// maps a 250 MiB destination and mremap(MREMAP_FIXED)s A onto it. The kernel
// (6.18 here) refuses (the destination still counts against RLIMIT_AS while
// the move is checked) and leaves the destination mapped; hakmem's clean-up
// (MAP_FIXED_NOREPLACE) finds it there, assumes it may be someone else's, and
// leaves it: 250 MiB of address space leaked for good. glibc's realloc
// (mremap MAYMOVE, only the growth counts) succeeds.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static long vm_mib(void) {
  char b[128] = {0};
  int fd = open("/proc/self/statm", O_RDONLY);
  read(fd, b, sizeof b - 1);
  close(fd);
  return atol(b) * 4 / 1024;
}

int main(void) {
  const size_t MiB = 1 << 20;
  struct rlimit rl;
  rl.rlim_cur = rl.rlim_max = (rlim_t)(vm_mib() + 600) * MiB;
  setrlimit(RLIMIT_AS, &rl);
  char* a = malloc(150 * MiB);
  char* b = malloc(150 * MiB);
  memset(a, 'a', 150 * MiB);
  printf("A %p, B %p, VmSize %ld MiB\n", a, b, vm_mib());
  errno = 0;
  char* a2 = realloc(a, 250 * MiB);
  printf("realloc(A, 250 MiB) = %s errno=%d; VmSize %ld MiB\n", a2 ? "ok" : "NULL", errno, vm_mib());
  if (a2) a = a2;
  printf("A's first and last old byte: %c %c\n", a[0], a[150 * MiB - 1]);
  free(a);
  free(b);
  printf("freed A and B: VmSize %ld MiB\n", vm_mib());
  char* c = malloc(400 * MiB);
  printf("then malloc(400 MiB) = %s; VmSize %ld MiB\n", c ? "ok" : "NULL", vm_mib());
  return c == NULL;
}
