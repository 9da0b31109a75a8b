// The override layer: every libc and C++ allocation symbol, forwarded to
// hakmem. Nothing else lives here. Linked into a program through
// //hakmem:malloc, or preloaded as libhakmem.so.
//
// operator new throws std::bad_alloc through libstdc++, referenced weakly so
// that libhakmem.so needs only libc: any program that calls operator new has
// libstdc++ loaded, and a C program never reaches that code. (One that loads
// a C++ library later, as python3 does a C++ extension, finds the weak
// references null: they were bound when libhakmem.so was loaded. The slow
// path then looks them up by name.) The nothrow forms of operator new are
// libstdc++'s: they call the throwing form and catch, so that the
// new_handler runs for them too, as the standard's default behaviour says;
// this library, built without exceptions, could not catch.
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <atomic>
#include <new>

#include "hakmem/alloc_inline.h"
#include "hakmem/hakmem.h"

namespace std {
[[noreturn]] void __throw_bad_alloc() __attribute__((weak));
new_handler get_new_handler() noexcept __attribute__((weak));
}  // namespace std

#define HAKMEM_EXPORT extern "C" __attribute__((visibility("default")))
#define HAKMEM_EXPORT_CXX __attribute__((visibility("default")))

namespace {

using hakmem::internal::FreeInline;
using hakmem::internal::FreeSizedInline;
using hakmem::internal::MallocInline;

// libstdc++'s `weak` function, or if that was not bound (libstdc++ loaded
// after this library), the one `name` finds now, or nullptr. (Out of memory
// already: that dlsym and dlopen may allocate does not matter here.)
template <typename Fn>
Fn FromLibstdcxx(Fn weak, const char* name) {
  if (weak != nullptr) return weak;
  void* fn = dlsym(RTLD_DEFAULT, name);
  if (fn == nullptr) {
    // Loaded for a library opened with RTLD_LOCAL: outside the global scope.
    if (void* lib = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_NOLOAD)) {
      fn = dlsym(lib, name);
      dlclose(lib);  // (that library still holds it)
    }
  }
  return reinterpret_cast<Fn>(fn);
}

// operator new failed once: run the new_handler until it gives up, then throw.
HAKMEM_NOINLINE void* NewSlow(size_t size, size_t alignment) {
  for (;;) {
    void* p = alignment <= 16 ? hakmem::Malloc(size)
                              : hakmem::AlignedAlloc(alignment, size);
    if (p != nullptr) return p;
    auto* const get_handler = FromLibstdcxx(&std::get_new_handler, "_ZSt15get_new_handlerv");
    std::new_handler handler = get_handler != nullptr ? get_handler() : nullptr;
    if (handler == nullptr) {
      if (auto* const throw_bad_alloc = FromLibstdcxx(&std::__throw_bad_alloc, "_ZSt17__throw_bad_allocv")) {
        throw_bad_alloc();
      }
      hakmem::platform::ReportAndAbort("operator new: out of memory", nullptr,
                                       "libstdc++ is not loaded: no std::bad_alloc to throw");
    }
    handler();
  }
}

// The bin's pop inline; everything else (a refill, a large block, running
// out of memory) in NewSlow, so that the fast path needs no stack frame.
HAKMEM_ALWAYS_INLINE void* New(size_t size) {
  if (HAKMEM_LIKELY(size <= hakmem::kMaxSmallSize)) {
    if (void* p = hakmem::TinyTryPop(hakmem::SizeToClass(size))) return p;
  }
  return NewSlow(size, 16);
}

void* NewAligned(size_t size, std::align_val_t alignment) {
  void* p = hakmem::AlignedAlloc(static_cast<size_t>(alignment), size);
  if (p != nullptr) return p;
  return NewSlow(size, static_cast<size_t>(alignment));
}

void* Memalign(size_t alignment, size_t size) {
  // glibc's memalign rounds a non-power-of-two alignment up.
  if (alignment != 0 && (alignment & (alignment - 1)) != 0) {
    size_t rounded = 1;
    while (rounded < alignment && rounded != 0) rounded <<= 1;
    if (rounded == 0) {
      errno = EINVAL;
      return nullptr;
    }
    alignment = rounded;
  }
  return hakmem::AlignedAlloc(alignment == 0 ? 1 : alignment, size);
}

}  // namespace

// ---- C ---------------------------------------------------------------------
HAKMEM_EXPORT HAKMEM_HOT_ENTRY void* malloc(size_t size) { return MallocInline(size); }
HAKMEM_EXPORT HAKMEM_HOT_ENTRY void free(void* p) { FreeInline(p); }
HAKMEM_EXPORT void* calloc(size_t n, size_t size) { return hakmem::Calloc(n, size); }
HAKMEM_EXPORT void* realloc(void* p, size_t size) { return hakmem::Realloc(p, size); }
HAKMEM_EXPORT void* reallocarray(void* p, size_t n, size_t size) {
  return hakmem::ReallocArray(p, n, size);
}
HAKMEM_EXPORT int posix_memalign(void** out, size_t alignment, size_t size) {
  return hakmem::PosixMemalign(out, alignment, size);
}
HAKMEM_EXPORT void* aligned_alloc(size_t alignment, size_t size) {
  return hakmem::AlignedAlloc(alignment, size);
}
HAKMEM_EXPORT void* memalign(size_t alignment, size_t size) {
  return Memalign(alignment, size);
}
HAKMEM_EXPORT void* valloc(size_t size) {
  return hakmem::AlignedAlloc(hakmem::platform::kPageSize, size);
}
HAKMEM_EXPORT void* pvalloc(size_t size) {
  constexpr size_t kPage = hakmem::platform::kPageSize;
  if (size > SIZE_MAX - kPage) {
    errno = ENOMEM;
    return nullptr;
  }
  const size_t rounded = size == 0 ? kPage : (size + kPage - 1) & ~(kPage - 1);
  return hakmem::AlignedAlloc(kPage, rounded);
}
HAKMEM_EXPORT size_t malloc_usable_size(void* p) { return hakmem::UsableSize(p); }
// 1 if memory went back to the kernel, as glibc's.
HAKMEM_EXPORT int malloc_trim(size_t) { return hakmem::Trim() ? 1 : 0; }
// Interposed so that a process that locks its memory does not lock the
// address space hakmem maps ahead (hakmem.h, LockAllMemory).
HAKMEM_EXPORT int mlockall(int flags) { return hakmem::LockAllMemory(flags); }
HAKMEM_EXPORT int munlockall() { return hakmem::UnlockAllMemory(); }
// Interposed so that no page move unlocks a locked block (platform.h,
// TurnPageMovesOff).
HAKMEM_EXPORT int mlock(const void* addr, size_t len) { return hakmem::LockMemory(addr, len); }
HAKMEM_EXPORT int mlock2(const void* addr, size_t len, unsigned int flags) {
  return hakmem::LockMemory2(addr, len, flags);
}
// glibc's statistics calls, from hakmem's totals (hakmem.h, MallocTotals):
// arena = SuperSlabs mapped, uordblks = small blocks handed out, fordblks =
// the rest of the arena, ordblks = cached regions, hblks / hblkhd = large
// blocks and their mappings; the other fields are 0.
HAKMEM_EXPORT struct mallinfo2 mallinfo2() {
  const hakmem::MallocTotals t = hakmem::GetMallocTotals();
  struct mallinfo2 info = {};
  info.arena = t.small_mapped;
  info.ordblks = t.free_regions;
  info.hblks = t.large_blocks;
  info.hblkhd = t.large_mapped;
  info.uordblks = t.small_in_use;
  info.fordblks = t.small_mapped > t.small_in_use ? t.small_mapped - t.small_in_use : 0;
  return info;
}
HAKMEM_EXPORT struct mallinfo mallinfo() {
  const struct mallinfo2 wide = mallinfo2();
  // int fields: glibc lets them wrap; clamped here.
  auto narrow = [](size_t v) { return v > INT_MAX ? INT_MAX : static_cast<int>(v); };
  struct mallinfo info = {};
  info.arena = narrow(wide.arena);
  info.ordblks = narrow(wide.ordblks);
  info.hblks = narrow(wide.hblks);
  info.hblkhd = narrow(wide.hblkhd);
  info.uordblks = narrow(wide.uordblks);
  info.fordblks = narrow(wide.fordblks);
  return info;
}
HAKMEM_EXPORT void malloc_stats() { hakmem::PrintStats(); }
// glibc's XML, its totals only (no per-heap sections): "rest" = cached
// regions (count) and the free bytes of the SuperSlabs mapped (size),
// "mmap" = large blocks; system and aspace = everything mapped for blocks,
// large ones included (glibc counts only its arenas there); mprotect 0.
HAKMEM_EXPORT int malloc_info(int options, FILE* stream) {
  if (options != 0) {
    errno = EINVAL;
    return -1;
  }
  const hakmem::MallocTotals t = hakmem::GetMallocTotals();
  const unsigned long long free_bytes =
      t.small_mapped > t.small_in_use ? t.small_mapped - t.small_in_use : 0;
  const unsigned long long total = t.small_mapped + t.large_mapped;
  fprintf(stream,
          "<malloc version=\"1\">\n"
          "<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
          "<total type=\"rest\" count=\"%llu\" size=\"%llu\"/>\n"
          "<total type=\"mmap\" count=\"%llu\" size=\"%llu\"/>\n"
          "<system type=\"current\" size=\"%llu\"/>\n"
          "<system type=\"max\" size=\"%llu\"/>\n"
          "<aspace type=\"total\" size=\"%llu\"/>\n"
          "<aspace type=\"mprotect\" size=\"0\"/>\n"
          "</malloc>\n",
          static_cast<unsigned long long>(t.free_regions), free_bytes,
          static_cast<unsigned long long>(t.large_blocks),
          static_cast<unsigned long long>(t.large_mapped), total, total, total);
  return 0;
}
// C23.
HAKMEM_EXPORT void free_sized(void* p, size_t) { FreeInline(p); }
HAKMEM_EXPORT void free_aligned_sized(void* p, size_t, size_t) { FreeInline(p); }
// glibc's internal names, which a few programs call directly.
HAKMEM_EXPORT void* __libc_malloc(size_t size) { return MallocInline(size); }
HAKMEM_EXPORT void __libc_free(void* p) { FreeInline(p); }
HAKMEM_EXPORT void* __libc_calloc(size_t n, size_t size) { return hakmem::Calloc(n, size); }
HAKMEM_EXPORT void* __libc_realloc(void* p, size_t size) { return hakmem::Realloc(p, size); }
HAKMEM_EXPORT void* __libc_memalign(size_t alignment, size_t size) {
  return Memalign(alignment, size);
}
HAKMEM_EXPORT void* __libc_valloc(size_t size) { return valloc(size); }
HAKMEM_EXPORT void* __libc_pvalloc(size_t size) { return pvalloc(size); }
// Removed from glibc's API in 2.26, still exported for older binaries.
HAKMEM_EXPORT void cfree(void* p) { FreeInline(p); }

// glibc's pthread_atfork (in libc_nonshared.a, linked into each caller)
// registers through __register_atfork with the caller's DSO handle:
// interposed so that hakmem's fork handlers are registered before any
// other's (see RegisterForkHandlers). Under LD_PRELOAD a program's
// libraries' constructors run before hakmem's, and may register without
// allocating first.
// (Weak: a static link takes libc.a's, which fork's own object needs; there
// hakmem's handlers are registered at the first allocation only.)
using RegisterAtforkFn = int (*)(void (*)(void), void (*)(void), void (*)(void), void*);
HAKMEM_EXPORT __attribute__((weak)) int __register_atfork(void (*prepare)(void),
                                                          void (*parent)(void),
                                                          void (*child)(void), void* dso_handle) {
  hakmem::internal::RegisterForkHandlers();  // (its own registration comes back here)
  HAKMEM_STARTUP_DATA static std::atomic<RegisterAtforkFn> real{nullptr};
  RegisterAtforkFn fn = real.load(std::memory_order_relaxed);
  if (fn == nullptr) {
    fn = reinterpret_cast<RegisterAtforkFn>(dlsym(RTLD_NEXT, "__register_atfork"));
    real.store(fn, std::memory_order_relaxed);
  }
  return fn != nullptr ? fn(prepare, parent, child, dso_handle) : ENOMEM;
}

// ---- C++ -------------------------------------------------------------------
HAKMEM_EXPORT_CXX HAKMEM_HOT_ENTRY void* operator new(size_t size) { return New(size); }
HAKMEM_EXPORT_CXX HAKMEM_HOT_ENTRY void* operator new[](size_t size) { return New(size); }
HAKMEM_EXPORT_CXX void* operator new(size_t size, std::align_val_t alignment) {
  return NewAligned(size, alignment);
}
HAKMEM_EXPORT_CXX void* operator new[](size_t size, std::align_val_t alignment) {
  return NewAligned(size, alignment);
}

HAKMEM_EXPORT_CXX HAKMEM_HOT_ENTRY void operator delete(void* p) noexcept { FreeInline(p); }
HAKMEM_EXPORT_CXX HAKMEM_HOT_ENTRY void operator delete[](void* p) noexcept { FreeInline(p); }
HAKMEM_EXPORT_CXX void operator delete(void* p, const std::nothrow_t&) noexcept {
  FreeInline(p);
}
HAKMEM_EXPORT_CXX void operator delete[](void* p, const std::nothrow_t&) noexcept {
  FreeInline(p);
}
HAKMEM_EXPORT_CXX HAKMEM_HOT_ENTRY void operator delete(void* p, size_t size) noexcept {
  FreeSizedInline(p, size);
}
HAKMEM_EXPORT_CXX HAKMEM_HOT_ENTRY void operator delete[](void* p, size_t size) noexcept {
  FreeSizedInline(p, size);
}
HAKMEM_EXPORT_CXX void operator delete(void* p, std::align_val_t) noexcept {
  FreeInline(p);
}
HAKMEM_EXPORT_CXX void operator delete[](void* p, std::align_val_t) noexcept {
  FreeInline(p);
}
HAKMEM_EXPORT_CXX void operator delete(void* p, std::align_val_t,
                                       const std::nothrow_t&) noexcept {
  FreeInline(p);
}
HAKMEM_EXPORT_CXX void operator delete[](void* p, std::align_val_t,
                                         const std::nothrow_t&) noexcept {
  FreeInline(p);
}
HAKMEM_EXPORT_CXX void operator delete(void* p, size_t size,
                                       std::align_val_t alignment) noexcept {
  hakmem::internal::FreeSizedSlow(p, size, static_cast<size_t>(alignment));
}
HAKMEM_EXPORT_CXX void operator delete[](void* p, size_t size,
                                         std::align_val_t alignment) noexcept {
  hakmem::internal::FreeSizedSlow(p, size, static_cast<size_t>(alignment));
}
