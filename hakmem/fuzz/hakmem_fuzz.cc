// libFuzzer target for the non-override API: the input is a program of
// malloc / calloc / realloc / aligned-alloc / free operations on 64 slots.
// Every live block carries a pattern derived from its slot and size, checked
// before it is freed or reallocated; alignment and usable size are checked
// on every allocation. Any mismatch aborts (a finding).
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem/hakmem.h"

namespace {

constexpr int kSlots = 64;
#ifdef HAKMEM_SANITIZER
constexpr bool kSanitizer = true;
#else
constexpr bool kSanitizer = false;
#endif

struct Slot {
  unsigned char* p;
  size_t size;
  unsigned char seed;
};

void Check(bool ok) {
  if (!ok) abort();
}

void Fill(const Slot& s) {
  for (size_t i = 0; i < s.size; i++) s.p[i] = static_cast<unsigned char>(s.seed + i * 7);
}

void Verify(const Slot& s, size_t upto) {
  for (size_t i = 0; i < upto && i < s.size; i++) {
    Check(s.p[i] == static_cast<unsigned char>(s.seed + i * 7));
  }
}

class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool Empty() const { return pos_ >= size_; }
  uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  // Mostly small sizes, sometimes up to 1 MiB, rarely up to 8 MiB (64 KiB in
  // sanitizer builds, where the byte-wise fill and check are slow).
  size_t Size() {
    const uint8_t kind = Byte();
    const size_t raw = static_cast<size_t>(Byte()) << 8 | Byte();
    if (kind < 160) return raw % 1025;
    if (kind < 240 || kSanitizer) return raw % 65537;
    if (kind < 254) return (raw << 4) % (1 << 20);
    return (raw << 7) % (8 << 20);
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

void Allocated(Slot& s, void* p, size_t size, size_t alignment, unsigned char seed) {
  Check(p != nullptr);
  Check(reinterpret_cast<uintptr_t>(p) % alignment == 0);
  Check(hakmem::UsableSize(p) >= size);
  s = Slot{static_cast<unsigned char*>(p), size, seed};
  Fill(s);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Slot slots[kSlots] = {};
  Input in(data, size);
  while (!in.Empty()) {
    const uint8_t op = in.Byte();
    Slot& s = slots[in.Byte() % kSlots];
    const unsigned char seed = static_cast<unsigned char>(op * 31 + 1);
    if (s.p != nullptr && op % 5 != 2) {  // free (or realloc, below)
      Verify(s, s.size);
      hakmem::Free(s.p);
      s = Slot{};
      continue;
    }
    switch (op % 5) {
      case 1: {
        const size_t n = in.Size();
        unsigned char* p = static_cast<unsigned char*>(hakmem::Calloc(1, n));
        Check(p != nullptr);
        for (size_t i = 0; i < n; i++) Check(p[i] == 0);
        Allocated(s, p, n, 16, seed);
        break;
      }
      case 2: {  // realloc keeps the common prefix
        const size_t n = in.Size();
        void* p = hakmem::Realloc(s.p, n);
        if (n == 0 && s.p != nullptr) {  // glibc semantics: freed
          Check(p == nullptr);
          s = Slot{};
          break;
        }
        Check(p != nullptr);
        Slot moved{static_cast<unsigned char*>(p), s.size < n ? s.size : n, s.seed};
        Verify(moved, moved.size);
        Allocated(s, p, n, 16, s.p != nullptr ? s.seed : seed);
        break;
      }
      case 3: {
        const size_t alignment = size_t{1} << (in.Byte() % 21);  // up to 1 MiB
        const size_t n = in.Size();
        Allocated(s, hakmem::AlignedAlloc(alignment, n), n, alignment, seed);
        break;
      }
      default: {
        const size_t n = in.Size();
        Allocated(s, hakmem::Malloc(n), n, 16, seed);
        break;
      }
    }
  }
  for (Slot& s : slots) {
    if (s.p == nullptr) continue;
    Verify(s, s.size);
    hakmem::Free(s.p);
  }
  return 0;
}
