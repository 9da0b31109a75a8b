// Linked with a comparison allocator through the `malloc` attribute: checks
// that its malloc, not glibc's, serves the program.
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s LIBRARY_NAME_PART\n", argv[0]);
    return 2;
  }
  void* symbol = dlsym(RTLD_DEFAULT, "malloc");
  Dl_info info;
  if (symbol == nullptr || dladdr(symbol, &info) == 0 || info.dli_fname == nullptr) {
    fprintf(stderr, "FAIL: cannot locate malloc\n");
    return 1;
  }
  if (strstr(info.dli_fname, argv[1]) == nullptr) {
    fprintf(stderr, "FAIL: malloc comes from %s, expected %s\n", info.dli_fname, argv[1]);
    return 1;
  }
  // And it works.
  for (int i = 0; i < 100000; i++) {
    char* volatile p = static_cast<char*>(malloc(static_cast<size_t>(i % 5000) + 1));
    p[0] = 1;
    free(p);
  }
  printf("PASS: malloc from %s\n", info.dli_fname);
  return 0;
}
