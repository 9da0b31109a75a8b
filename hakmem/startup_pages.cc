// Run under LD_PRELOAD=libhakmem.so by startup_pages_test: a process that
// has not allocated yet (hakmem's constructor has run: config, limits, CPU
// count, free key) must have faulted in none of the pages of hakmem's .bss
// past the one the loader writes anyway (where .data ends and .bss starts:
// the globals start-up writes live there, HAKMEM_STARTUP_DATA). Each such
// page is a fault at every process start (two when it is read first).
// The pages: from libhakmem.so's writable segment (dl_iterate_phdr), those
// past its file-backed part's last page, their residency asked as the tests
// ask it (tests/residency.h). Nothing here allocates, and the binary needs
// libc only (libstdc++ would allocate its exception pool at load).
#include <elf.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests/residency.h"

namespace {

uintptr_t g_bss_first, g_bss_end;  // page-aligned; 0: not found

int FindHakmem(dl_phdr_info* info, size_t, void*) {
  if (info->dlpi_name == nullptr || strstr(info->dlpi_name, "libhakmem.so") == nullptr) return 0;
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
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

}  // namespace

int main() {
  dl_iterate_phdr(FindHakmem, nullptr);
  if (g_bss_end == 0) {
    fprintf(stderr, "FAIL: libhakmem.so's writable segment not found (not preloaded?)\n");
    return 1;
  }
  const size_t pages = (g_bss_end - g_bss_first) / static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const int resident =
      hakmem_test::ResidentPages(reinterpret_cast<const void*>(g_bss_first), g_bss_end - g_bss_first);
  if (resident != 0) {
    fprintf(stderr,
            "FAIL: %d of the %zu pages of hakmem's .bss past the loader's resident before any "
            "allocation (-1: not asked)\n",
            resident, pages);
    return 1;
  }
  printf("PASS: hakmem's .bss past the loader's page: 0 of %zu pages resident\n", pages);
  return 0;
}
