// Shared helpers for the reproducers: current and peak RSS, and virtual
// size, in MiB.
#include <stdio.h>
#include <sys/resource.h>
// Field `index` of /proc/self/statm (0: virtual size, 1: resident), in MiB.
static inline double statm_mib(int index) {
  unsigned long fields[2] = {0, 0};
  FILE* f = fopen("/proc/self/statm", "r");
  if (!f || fscanf(f, "%lu %lu", &fields[0], &fields[1]) != 2) fields[0] = fields[1] = 0;
  if (f) fclose(f);
  return fields[index] * 4096.0 / 1048576.0;
}
static inline double rss_mib(void) { return statm_mib(1); }
static inline double vm_mib(void) { return statm_mib(0); }
static inline double peak_mib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}
