// Shared helpers for the reproducers: current and peak RSS in MiB.
#include <stdio.h>
#include <sys/resource.h>
static inline double rss_mib(void) {
  unsigned long vm = 0, rss = 0;
  FILE* f = fopen("/proc/self/statm", "r");
  if (!f || fscanf(f, "%lu %lu", &vm, &rss) != 2) rss = 0;
  if (f) fclose(f);
  return rss * 4096.0 / 1048576.0;
}
static inline double peak_mib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}
static inline double vm_mib(void) {
  unsigned long vm = 0, rss = 0;
  FILE* f = fopen("/proc/self/statm", "r");
  if (!f || fscanf(f, "%lu %lu", &vm, &rss) != 2) vm = 0;
  if (f) fclose(f);
  return vm * 4096.0 / 1048576.0;
}
