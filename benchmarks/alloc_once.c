/* A program that allocates once: one malloc and free, then it prints its own
 * VmSize and VmRSS (what the allocator mapped, and touched, for one small
 * block). No C++ runtime, no library that allocates at start-up. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  char* volatile p = malloc(64);
  if (p == NULL) return 1;
  p[0] = 1;
  free(p);
  FILE* status = fopen("/proc/self/status", "r");
  if (status == NULL) return 1;
  char line[256];
  long vmsize = -1, vmrss = -1;
  while (fgets(line, sizeof(line), status) != NULL) {
    sscanf(line, "VmSize: %ld", &vmsize);
    sscanf(line, "VmRSS: %ld", &vmrss);
  }
  fclose(status);
  printf("vmsize_kb=%ld vmrss_kb=%ld\n", vmsize, vmrss);
  return 0;
}
