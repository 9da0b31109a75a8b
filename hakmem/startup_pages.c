// Run under LD_PRELOAD=libhakmem.so by startup_pages_test: a process that
// has not allocated yet (hakmem's constructor has run: config, limits, CPU
// count, free key) must have faulted in none of the pages of hakmem's .bss
// past the one the loader writes anyway (where .data ends and .bss starts:
// the globals start-up writes live there, HAKMEM_STARTUP_DATA). Each such
// page is a fault at every process start (two when it is read first).
// The pages: from libhakmem.so's writable segment (dl_iterate_phdr), those
// past its file-backed part's last page, asked with mincore (a test may;
// the allocator may not). Nothing here allocates.
#define _GNU_SOURCE
#include <elf.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static uintptr_t g_bss_first, g_bss_end;  // page-aligned; 0: not found

static int FindHakmem(struct dl_phdr_info* info, size_t size, void* data) {
  (void)size;
  (void)data;
  if (info->dlpi_name == NULL || strstr(info->dlpi_name, "libhakmem.so") == NULL) return 0;
  const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr)* ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W)) continue;
    const uintptr_t start = info->dlpi_addr + ph->p_vaddr;
    g_bss_first = (start + ph->p_filesz + page - 1) & ~(page - 1);
    g_bss_end = (start + ph->p_memsz + page - 1) & ~(page - 1);
    return 1;
  }
  return 0;
}

static unsigned char g_residency[1 << 16];

int main(void) {
  dl_iterate_phdr(FindHakmem, NULL);
  if (g_bss_end == 0) {
    fprintf(stderr, "FAIL: libhakmem.so's writable segment not found (not preloaded?)\n");
    return 1;
  }
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  const size_t pages = (g_bss_end - g_bss_first) / page;
  if (pages == 0 || pages > sizeof(g_residency)) {
    fprintf(stderr, "FAIL: a .bss of %zu pages past the loader's\n", pages);
    return 1;
  }
  if (mincore((void*)g_bss_first, g_bss_end - g_bss_first, g_residency) != 0) {
    perror("FAIL: mincore");
    return 1;
  }
  size_t resident = 0;
  for (size_t i = 0; i < pages; i++) resident += g_residency[i] & 1;
  if (resident != 0) {
    fprintf(stderr, "FAIL: %zu of the %zu pages of hakmem's .bss past the loader's resident "
            "before any allocation\n", resident, pages);
    return 1;
  }
  printf("PASS: hakmem's .bss past the loader's page: 0 of %zu pages resident\n", pages);
  return 0;
}
