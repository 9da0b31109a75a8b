// A C++ library a C program loads later (as python3 loads a C++ extension):
// libstdc++ comes in with it, after libhakmem.so was bound. Its operator
// new must still throw std::bad_alloc, run its new_handler, and its nothrow
// new must run the handler too and return nullptr.
#include <cstddef>
#include <cstdio>
#include <new>

namespace {
int g_handler_calls = 0;
void GiveUpOnTheSecondCall() {
  if (++g_handler_calls >= 2) std::set_new_handler(nullptr);
}
}  // namespace

extern "C" int plugin_run(size_t n) {
  try {
    delete[] new char[n];
    std::printf("plugin: new of %zu bytes succeeded\n", n);
  } catch (const std::bad_alloc&) {
    std::printf("plugin: caught std::bad_alloc\n");
  }
  std::set_new_handler(GiveUpOnTheSecondCall);
  try {
    delete[] new char[n];
  } catch (const std::bad_alloc&) {
    std::printf("plugin: caught std::bad_alloc after the new_handler ran %d times\n",
                g_handler_calls);
  }
  g_handler_calls = 0;
  std::set_new_handler(GiveUpOnTheSecondCall);
  char* p = new (std::nothrow) char[n];
  std::printf("plugin: nothrow new returned %s after the new_handler ran %d times\n",
              p == nullptr ? "nullptr" : "a block", g_handler_calls);
  delete[] p;
  return 0;
}
