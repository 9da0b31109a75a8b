// Misuse of the allocator is reported, never silently absorbed: hakmem prints
//   hakmem: <what> 0x<pointer>: <why>
// on stderr and aborts (like glibc's "free(): invalid pointer"). Each death
// test checks that the process died *and* that stderr names the operation and
// the exact pointer, so a crash for another reason (SIGSEGV while probing a
// wild pointer, say) does not pass.
//
// Death tests use GoogleTest's default "fast" style: the child is a fork of
// the test, so addresses computed before EXPECT_DEATH (stack, static, heap)
// are the same in the child.
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <new>
#include <string>
#include <vector>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/test_util.h"

#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#pragma GCC diagnostic ignored "-Wuse-after-free"
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace {

using hakmem_test::HexPtr;
using hakmem_test::Opaque;
using hakmem_test::OpaqueSize;
using hakmem_test::RegexEscape;

constexpr size_t kKiB = 1024;
constexpr size_t kMiB = 1024 * 1024;

// "hakmem: <operation...> 0x<p>: <reason>" on one line.
std::string Report(const char* operation_regex, const void* p) {
  return std::string("hakmem: ") + operation_regex + "[^\n]* " +
         RegexEscape(HexPtr(p)) + ": [^\n]+";
}
std::string FreeReport(const void* p) { return Report("free\\(\\)", p); }
std::string ReallocReport(const void* p) { return Report("realloc\\(\\)", p); }
// A double free must say so, before or after the pointer.
std::string DoubleFreeReport(const void* p) {
  const std::string ptr = RegexEscape(HexPtr(p));
  return "hakmem: [^\n]*(double free[^\n]* " + ptr + ": |" + ptr +
         ": [^\n]*double free)";
}
std::string SizedDeleteReport(const void* p) { return Report("sized delete", p); }

// realloc whose result is dropped (the calls here are expected to abort).
void Realloc(void* p, size_t size) { Opaque(realloc(p, size)); }

alignas(64) char g_static_buffer[4096];
const char g_rodata[64] = "read-only data is not a heap block";

// ---- pointers hakmem never returned ---------------------------------------------

TEST(MisuseDeathTest, FreeOfAStackPointer) {
  alignas(16) char stack_buffer[256];
  memset(stack_buffer, 0, sizeof(stack_buffer));
  void* p = Opaque(stack_buffer);
  EXPECT_DEATH(free(Opaque(p)), FreeReport(p));
  void* q = Opaque(stack_buffer + 16);
  EXPECT_DEATH(free(Opaque(q)), FreeReport(q));
  EXPECT_DEATH(::operator delete(Opaque(p)), Report("", p));
  EXPECT_DEATH(::operator delete(Opaque(p), size_t{256}), Report("", p));
}

TEST(MisuseDeathTest, FreeOfAStatic) {
  void* p = Opaque(g_static_buffer);
  EXPECT_DEATH(free(Opaque(p)), FreeReport(p));
  void* q = Opaque(g_static_buffer + 2048);
  EXPECT_DEATH(free(Opaque(q)), FreeReport(q));
  void* r = Opaque(const_cast<char*>(g_rodata));
  EXPECT_DEATH(free(Opaque(r)), FreeReport(r));
}

TEST(MisuseDeathTest, FreeOfAForeignMmapRegion) {
  // 8 MiB mapped by us, with pointers at 2 MiB-aligned addresses inside it
  // (where an allocator's region headers would live) and elsewhere.
  const size_t len = 8 * kMiB;
  char* map = static_cast<char*>(
      mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(map, MAP_FAILED);
  memset(map, 0xA5, len);  // plausible-looking garbage everywhere
  char* aligned = reinterpret_cast<char*>(
      (reinterpret_cast<uintptr_t>(map) + 2 * kMiB - 1) & ~(2 * kMiB - 1));
  for (char* p : {map, map + 16, aligned, aligned + 64, aligned + 64 * kKiB,
                  aligned + 64 * kKiB + 4096, aligned + 2 * kMiB + 128}) {
    EXPECT_DEATH(free(Opaque(p)), FreeReport(p));
  }
  EXPECT_DEATH(Realloc(Opaque(aligned + 64), 100), ReallocReport(aligned + 64));
  munmap(map, len);
}

TEST(MisuseDeathTest, FreeOfWildPointers) {
  // Including addresses no page table could hold: ownership lookup must not
  // index out of its tables or touch the memory.
  for (uintptr_t wild : {uintptr_t{0x10}, uintptr_t{0x1000}, uintptr_t{0xdeadbeef0},
                         uintptr_t{0x7ffffffff000}, uintptr_t{0x800000000000},
                         uintptr_t{0xffff800000000000}, uintptr_t{0xfffffffffffff000}}) {
    void* p = reinterpret_cast<void*>(wild);
    EXPECT_DEATH(free(Opaque(p)), FreeReport(p)) << HexPtr(p);
  }
}

// ---- pointers into hakmem blocks -------------------------------------------------

TEST(MisuseDeathTest, FreeOfAnInteriorPointerOfASmallBlock) {
  for (size_t size : {size_t{32}, size_t{100}, size_t{1000}, size_t{20000}}) {
    char* block = static_cast<char*>(malloc(size));
    ASSERT_NE(block, nullptr);
    for (size_t offset : {size_t{16}, size_t{8}, size_t{1}, size - 16}) {
      char* p = block + offset;
      EXPECT_DEATH(free(Opaque(p)), FreeReport(p)) << size << "+" << offset;
    }
    free(block);
  }
  // Interior of an over-aligned block.
  char* aligned = static_cast<char*>(aligned_alloc(4096, 100));
  ASSERT_NE(aligned, nullptr);
  EXPECT_DEATH(free(Opaque(aligned + 16)), FreeReport(aligned + 16));
  free(aligned);
}

// Pointers into a SuperSlab's header page, and into the gap before the
// first block of a slab that starts past it (a mid SuperSlab's slab 0,
// handed out since session 24, F31; a big slab's).
TEST(MisuseDeathTest, FreeOfPointersIntoASuperSlabsHeaderPage) {
  for (size_t size : {size_t{2560}, size_t{8192}, size_t{32768}, size_t{65536}}) {
    std::vector<char*> blocks;
    char* lowest = nullptr;
    for (int i = 0; i < 64; i++) {  // enough for a SuperSlab's first slab
      char* b = static_cast<char*>(malloc(size));
      ASSERT_NE(b, nullptr);
      blocks.push_back(b);
      if (lowest == nullptr || b < lowest) lowest = b;
    }
    char* const base = reinterpret_cast<char*>(reinterpret_cast<uintptr_t>(lowest) &
                                               ~(uintptr_t{2 * kMiB} - 1));
    for (size_t offset : {size_t{0}, size_t{0x40}, size_t{0x80}, size_t{0xff0}}) {
      char* p = base + offset;
      EXPECT_DEATH(free(Opaque(p)), FreeReport(p)) << size << " header+" << offset;
    }
    if (lowest - base > 4096) {  // the gap before the first block
      char* p = lowest - 16;
      EXPECT_DEATH(free(Opaque(p)), FreeReport(p)) << size << " gap";
    }
    for (char* b : blocks) free(b);
  }
}

TEST(MisuseDeathTest, FreeOfAnInteriorPointerOfALargeBlock) {
  for (size_t size : {100 * kKiB, 3 * kMiB}) {
    char* block = static_cast<char*>(malloc(size));
    ASSERT_NE(block, nullptr);
    for (size_t offset : {size_t{16}, size_t{4096}, size_t{64 * kKiB}, size - 16}) {
      char* p = block + offset;
      EXPECT_DEATH(free(Opaque(p)), FreeReport(p)) << size << "+" << offset;
    }
    // Just before the block (its header page, if it has one).
    EXPECT_DEATH(free(Opaque(block - 16)), FreeReport(block - 16));
    free(block);
  }
  // Past a large block's first 2 MiB, and in a block aligned to 64 MiB
  // (which starts 64 MiB past its header): interior pointers, named so.
  char* big = static_cast<char*>(malloc(9 * kMiB));
  char* aligned = static_cast<char*>(aligned_alloc(64 * kMiB, 5 * kMiB));
  ASSERT_NE(big, nullptr);
  ASSERT_NE(aligned, nullptr);
  for (char* p : {big + 3 * kMiB, big + 9 * kMiB - 1, aligned + 16, aligned + 4 * kMiB}) {
    EXPECT_DEATH(free(Opaque(p)), FreeReport(p) + "interior") << static_cast<void*>(p);
  }
  free(big);
  free(aligned);
}

TEST(MisuseDeathTest, ReallocOfInvalidPointers) {
  alignas(16) char stack_buffer[64];
  void* s = Opaque(stack_buffer);
  EXPECT_DEATH(Realloc(Opaque(s), 100), ReallocReport(s));
  void* st = Opaque(g_static_buffer + 64);
  EXPECT_DEATH(Realloc(Opaque(st), 10), ReallocReport(st));
  char* small = static_cast<char*>(malloc(64));
  EXPECT_DEATH(Realloc(Opaque(small + 16), 200), ReallocReport(small + 16));
  char* large = static_cast<char*>(malloc(kMiB));
  EXPECT_DEATH(Realloc(Opaque(large + 4096), 2 * kMiB), ReallocReport(large + 4096));
  free(small);
  free(large);
}

// ---- double free -------------------------------------------------------------

// The block is allocated in the parent and freed twice in the death test's
// child: nothing (GoogleTest's own allocations included) can reuse it between
// the two frees.
TEST(MisuseDeathTest, ImmediateDoubleFreeOfASmallBlock) {
  for (size_t size : {size_t{0}, size_t{16}, size_t{100}, size_t{1000}, size_t{5000},
                      size_t{32768}}) {
    void* p = malloc(size);
    ASSERT_NE(p, nullptr);
    EXPECT_DEATH(
        {
          free(Opaque(p));
          free(Opaque(p));
        },
        DoubleFreeReport(p))
        << size;
    // The same through operator delete.
    EXPECT_DEATH(
        {
          ::operator delete(Opaque(p));
          ::operator delete(Opaque(p));
        },
        DoubleFreeReport(p))
        << size;
    free(p);
  }
}

// A thread with a cancellation request pending frees a block twice: the
// report is written and the process aborts. (The report used write(), a
// cancellation point: the thread was cancelled inside it, before its abort,
// and the process went on; a helper's hunt, session 22.)
void DoubleFreeWithACancelPending(size_t size) {
  std::atomic<bool> cancel_sent{false};
  void* p = malloc(size);
  pthread_t victim;
  struct Args {
    std::atomic<bool>* cancel_sent;
    void* p;
  } args{&cancel_sent, p};
  pthread_create(
      &victim, nullptr,
      [](void* arg) -> void* {
        Args* a = static_cast<Args*>(arg);
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, nullptr);
        while (!a->cancel_sent->load()) {
        }
        pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, nullptr);  // pending now
        free(Opaque(a->p));
        free(Opaque(a->p));
        return nullptr;
      },
      &args);
  pthread_cancel(victim);
  cancel_sent.store(true);
  pthread_join(victim, nullptr);
  _exit(0);  // not reported: the test fails
}

TEST(MisuseDeathTest, ADoubleFreeIsReportedWhileACancellationIsPending) {
  for (size_t size : {size_t{64}, 100 * kKiB, kMiB}) {
    EXPECT_DEATH(DoubleFreeWithACancelPending(size), "hakmem: [^\n]*double free") << size;
  }
}

TEST(MisuseDeathTest, ImmediateDoubleFreeOfALargeBlock) {
  for (size_t size : {40 * kKiB, kMiB, 5 * kMiB}) {
    void* p = malloc(size);
    ASSERT_NE(p, nullptr);
    EXPECT_DEATH(
        {
          free(Opaque(p));
          free(Opaque(p));
        },
        DoubleFreeReport(p))
        << size;
    free(p);
  }
  // Bigger than any cache: the region is unmapped by the first free, so the
  // second one sees a foreign pointer.
  void* huge = malloc(300 * kMiB);
  ASSERT_NE(huge, nullptr);
  EXPECT_DEATH(
      {
        free(Opaque(huge));
        free(Opaque(huge));
      },
      FreeReport(huge));
  free(huge);
}

// Allocates `count` blocks of `size` bytes, then frees them: pops every free
// block of the class, duplicates included.
void CycleClass(size_t size, int count) {
  std::vector<void*> blocks;
  blocks.reserve(static_cast<size_t>(count));
  for (int i = 0; i < count; i++) blocks.push_back(malloc(size));
  for (void* b : blocks) free(b);
}

// A double free that is not the immediate one may be caught later (hakmem's
// free fast path does not read the block; malloc checks every block it pops,
// so the duplicate is reported before it could be handed out twice). The
// death statements therefore free, then keep allocating from the class.
TEST(MisuseDeathTest, DoubleFreeAfterOtherFrees) {
  // Small: the freed block is buried under later frees of its class and
  // others.
  std::vector<void*> same_class;
  for (int i = 0; i < 100; i++) same_class.push_back(malloc(720));
  std::vector<void*> other;
  for (int i = 0; i < 100; i++) other.push_back(malloc(static_cast<size_t>(16 + i * 40)));
  void* victim = same_class[50];
  free(victim);
  for (int i = 0; i < 100; i += 3) {
    if (i != 50) {
      free(same_class[i]);
      same_class[i] = nullptr;
    }
  }
  for (int i = 0; i < 100; i += 2) {
    free(other[i]);
    other[i] = nullptr;
  }
  EXPECT_DEATH(
      {
        free(Opaque(victim));
        CycleClass(720, 5000);
      },
      DoubleFreeReport(victim));
  EXPECT_DEATH(Realloc(Opaque(victim), 10), ReallocReport(victim));
  // Large: freed, then other large blocks freed after it.
  void* a = malloc(kMiB);
  void* b = malloc(2 * kMiB);
  void* c = malloc(600 * kKiB);
  free(a);
  free(b);
  free(c);
  EXPECT_DEATH(free(Opaque(a)), DoubleFreeReport(a));
  EXPECT_DEATH(free(Opaque(b)), DoubleFreeReport(b));
  EXPECT_DEATH(Realloc(Opaque(a), 10), ReallocReport(a));
  for (void* p : same_class) free(p == victim ? nullptr : p);
  for (void* p : other) free(p);
}

TEST(MisuseDeathTest, DoubleFreeFromAnotherThread) {
  void* p = malloc(64);
  void* keep = malloc(64);  // keeps p's slab in use
  // Freed by its owner, freed again by another thread.
  EXPECT_DEATH(
      {
        free(Opaque(p));
        std::thread([p] { free(Opaque(p)); }).join();
      },
      DoubleFreeReport(p));
  // Freed twice by a thread that does not own it (remote frees).
  EXPECT_DEATH(std::thread([p] {
                 free(Opaque(p));
                 free(Opaque(p));
               }).join(),
               DoubleFreeReport(p));
  // Freed by another thread, then by its owner: remote_double_free_test.cc.
  free(p);
  free(keep);
}

// ---- sized delete ------------------------------------------------------------
// Policy: sized delete must pass the size that was allocated. hakmem accepts
// any size that maps to the block's own size class (the only information it
// keeps) and reports-and-aborts when the size's class differs from the
// block's: for a small block, a size of another class; for a large block, a
// small size or one larger than the block.
TEST(SizedDelete, CorrectSizesAreAccepted) {
  for (size_t size : {size_t{0}, size_t{1}, size_t{16}, size_t{100}, size_t{1000},
                      size_t{32768}, size_t{40000}, 3 * kMiB}) {
    void* p = ::operator new(size);
    ::operator delete(p, size);
    p = ::operator new[](size);
    ::operator delete[](p, size);
    p = ::operator new(size, std::align_val_t{256});
    ::operator delete(p, size, std::align_val_t{256});
    for (size_t alignment : {size_t{1}, size_t{8}, size_t{16}, size_t{64}, size_t{4096},
                             512 * kKiB}) {
      p = ::operator new(size, std::align_val_t{alignment});
      ::operator delete(p, size, std::align_val_t{alignment});
      p = ::operator new[](size, std::align_val_t{alignment});
      ::operator delete[](p, size, std::align_val_t{alignment});
    }
  }
}

TEST(MisuseDeathTest, SizedDeleteWithTheWrongSize) {
  struct Case {
    size_t allocated;
    size_t deleted;
  };
  const Case kCases[] = {
      {100, 20000},    // small block, much larger small class
      {100, 16},       // small block, smaller class
      {20000, 100},    //
      {1000, kMiB},    // small block, large size
      {kMiB, 16},      // large block, small size
      {kMiB, 4 * kMiB}, // large block, larger than the block
  };
  for (const Case& c : kCases) {
    void* p = ::operator new(c.allocated);
    EXPECT_DEATH(::operator delete(Opaque(p), OpaqueSize(c.deleted)), SizedDeleteReport(p))
        << c.allocated << " deleted as " << c.deleted;
    EXPECT_DEATH(::operator delete[](Opaque(p), OpaqueSize(c.deleted)), SizedDeleteReport(p))
        << c.allocated << " deleted[] as " << c.deleted;
    ::operator delete(p, c.allocated);
  }
  // Over-aligned: larger than the block; a size of another class (silent
  // before session 21, F17); a small size for a large block.
  for (const Case& c : {Case{100, kMiB}, Case{1000, 16}, Case{400000, 16}, Case{100, 4096}}) {
    void* a = ::operator new(c.allocated, std::align_val_t{64});
    EXPECT_DEATH(::operator delete(Opaque(a), OpaqueSize(c.deleted), std::align_val_t{64}),
                 SizedDeleteReport(a))
        << c.allocated << " aligned deleted as " << c.deleted;
    ::operator delete(a, c.allocated, std::align_val_t{64});
  }
  // And sized delete of a pointer hakmem never returned.
  alignas(16) char stack_buffer[32];
  void* s = Opaque(stack_buffer);
  EXPECT_DEATH(::operator delete(Opaque(s), OpaqueSize(32)), Report("", s));
  // The over-aligned forms name the misuse as the others do.
  void* g = Opaque(g_static_buffer);
  EXPECT_DEATH(::operator delete(g, OpaqueSize(64), std::align_val_t{64}),
               "hakmem: sized delete: invalid pointer [^\n]*: not allocated by hakmem");
  for (size_t size : {size_t{100}, 512 * kKiB}) {
    void* b = ::operator new(size, std::align_val_t{64});
    ::operator delete(b, size, std::align_val_t{64});
    EXPECT_DEATH(::operator delete(Opaque(b), OpaqueSize(size), std::align_val_t{64}),
                 "hakmem: sized delete: invalid pointer [^\n]*: [^\n]*(free|not allocated)")
        << size;
  }
}

// After all this, the allocator in this (parent) process is intact.
TEST(Misuse, ParentHeapIsIntactAfterTheDeathTests) {
  std::vector<void*> v;
  for (int i = 0; i < 10000; i++) {
    void* p = malloc(static_cast<size_t>(i % 3000));
    ASSERT_NE(p, nullptr);
    memset(p, 7, static_cast<size_t>(i % 3000));
    v.push_back(p);
  }
  for (void* p : v) free(p);
}

}  // namespace
