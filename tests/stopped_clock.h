// The allocator's clock (platform::NowNs), stopped for a test's span: the
// work it gates (upkeeps, reclaims, decay, the aging of cached batches)
// runs only where the test advances it, however slow the machine is (TSan
// on a loaded CI machine). The real clock catches up before it is
// restored, so no gate is left set ahead of it for the next test.
#ifndef HAKMEM_TESTS_STOPPED_CLOCK_H_
#define HAKMEM_TESTS_STOPPED_CLOCK_H_

#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "hakmem/platform.h"

namespace hakmem_test {

class StoppedClock {
 public:
  StoppedClock() {
    now_ns().store(hakmem::platform::NowNs(), std::memory_order_relaxed);
    hakmem::platform::SetClockForTesting(&Now);
  }
  ~StoppedClock() {
    const uint64_t stopped_at = Now();
    hakmem::platform::SetClockForTesting(nullptr);
    while (hakmem::platform::NowNs() <= stopped_at) usleep(1000);
  }
  StoppedClock(const StoppedClock&) = delete;
  StoppedClock& operator=(const StoppedClock&) = delete;

  static void Advance(uint64_t ns) { now_ns().fetch_add(ns, std::memory_order_relaxed); }

 private:
  static std::atomic<uint64_t>& now_ns() {
    static std::atomic<uint64_t> ns{0};
    return ns;
  }
  static uint64_t Now() { return now_ns().load(std::memory_order_relaxed); }
};

}  // namespace hakmem_test

#endif  // HAKMEM_TESTS_STOPPED_CLOCK_H_
