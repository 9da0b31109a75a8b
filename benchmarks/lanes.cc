#include "benchmarks/lanes.h"

#include "absl/strings/str_cat.h"

namespace bench {

std::vector<Lane> StandardLanes() {
  const uint64_t n = kStandardIters;
  const uint32_t ws = kStandardWs;
  return {
      // Phase 9's headline run: 100K iterations of 256-byte blocks.
      {"phase9", 100'000, ws, 1, 0, {{256, 256, 100}}},
      {"16-1024", n, ws, 1, 0, {{16, 1024, 100}}},
      {"256", n, ws, 1, 0, {{256, 256, 100}}},
      {"4096-32768", n, ws, 1, 0, {{4096, 32768, 100}}},
      {"16-32768", n, ws, 1, 0, {{16, 32768, 100}}},
      // Application-like: mostly small objects, a few buffers.
      {"app", n, ws, 1, 0, {{16, 256, 80}, {257, 2048, 15}, {2049, 32768, 5}}},
      {"remote50", n, ws, 2, 50, {{16, 1024, 100}}},
      {"remote90", n, ws, 2, 90, {{16, 1024, 100}}},
      // Buffers: above the small classes of most allocators (tcmalloc's go
      // to 256 KiB, hakmem's too since session 12), then beyond every
      // class. Fewer iterations: an operation costs up to 100x a small one.
      {"32769-262144", 2'000'000, ws, 1, 0, {{32769, 262144, 100}}},
      {"262145-1048576", 1'000'000, ws, 1, 0, {{262145, 1048576, 100}}},
  };
}

Lane CustomLane(uint32_t min_size, uint32_t max_size) {
  return {"custom", kStandardIters, kStandardWs, 1, 0,
          {{min_size, max_size, 100}}};
}

std::vector<std::string> ProfileNames() {
  std::vector<std::string> names;
  for (const Lane& lane : StandardLanes()) names.push_back(lane.name);
  names.push_back("custom");
  return names;
}

std::string DescribeSizes(const std::vector<SizeBand>& bands) {
  std::string out;
  for (const SizeBand& band : bands) {
    if (!out.empty()) out += " + ";
    if (bands.size() > 1) absl::StrAppend(&out, band.weight_pct, "% ");
    if (band.min_size == band.max_size) {
      absl::StrAppend(&out, band.min_size, " B");
    } else {
      absl::StrAppend(&out, band.min_size, "-", band.max_size, " B");
    }
  }
  return out;
}

const Phase9Reference& GetPhase9Reference() {
  static const Phase9Reference kReference = {
      "Phase 9 (other machine): hakmem 9.71M ops/s, 1,729 syscalls; "
      "glibc 90.04M ops/s, 13 syscalls",
      9.71, 1729, 90.04, 13};
  return kReference;
}

}  // namespace bench
