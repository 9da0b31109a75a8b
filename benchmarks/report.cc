#include "benchmarks/report.h"

#include <math.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"

namespace bench {

double Median(std::vector<double> values) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 == 1 ? values[mid]
                                 : (values[mid - 1] + values[mid]) / 2;
}

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

const Row* FindRow(const LaneReport& lane, const std::string& name) {
  for (const Row& row : lane.rows) {
    if (name == row.allocator->name) return &row;
  }
  return nullptr;
}

const Row* FloorRow(const LaneReport& lane) {
  for (const Row& row : lane.rows) {
    if (row.allocator->is_floor) return &row;
  }
  return nullptr;
}

// 20000000 -> "20,000,000".
std::string WithCommas(uint64_t value) {
  std::string digits = absl::StrCat(value);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// NaN (not applicable) prints as "-".
std::string Fixed(double value, int decimals) {
  if (isnan(value)) return "-";
  return absl::StrFormat("%.*f", decimals, value);
}

std::string LaneTitle(const LaneReport& lane) {
  const Lane& l = lane.lane;
  std::string title = absl::StrCat(l.name, ": ", WithCommas(l.iters),
                                   " iters, ws=", l.ws, ", ",
                                   DescribeSizes(l.bands), ", ", l.threads,
                                   l.threads == 1 ? " thread" : " threads");
  if (l.remote_pct > 0) absl::StrAppend(&title, ", ", l.remote_pct, "% remote frees");
  return title;
}

// Why syscall counts are missing ("" if none is): one reason covers all
// rows, strace being absent or unusable.
std::string SyscallsUnavailableNote(const Report& report) {
  for (const LaneReport& lane : report.lanes) {
    for (const Row& row : lane.rows) {
      if (!row.syscalls.measured) return row.syscalls.note;
    }
  }
  return "";
}

std::string SyscallCell(const Row& row, int syscall) {
  if (!row.syscalls.measured) return "n/a";
  return absl::StrCat(row.syscalls.counts.process[syscall], "/",
                      row.syscalls.counts.in_loop[syscall]);
}

uint64_t Total(const std::array<uint64_t, kNumTracedSyscalls>& counts) {
  uint64_t total = 0;
  for (uint64_t n : counts) total += n;
  return total;
}

// The phase9 lane's figures in the form of Phase 9's reference line.
std::string ThisMachineLine(const LaneReport& lane) {
  std::vector<std::string> parts;
  for (const char* name : {"hakmem", "glibc"}) {
    const Row* row = FindRow(lane, name);
    if (row == nullptr) continue;
    std::string part = absl::StrFormat("%s %.2fM ops/s", name, row->ops_per_sec / 1e6);
    if (row->syscalls.measured) {
      absl::StrAppend(&part, ", ", WithCommas(Total(row->syscalls.counts.process)),
                      " syscalls (", WithCommas(Total(row->syscalls.counts.in_loop)),
                      " in the loop)");
    }
    parts.push_back(part);
  }
  if (parts.empty()) return "";
  return absl::StrCat("This machine: ", absl::StrJoin(parts, "; "),
                      ". Process counts include the dynamic loader's (floor row).");
}

// ---- JSON --------------------------------------------------------------------

// A small pretty-printing JSON writer: enough for the report.
class JsonWriter {
 public:
  JsonWriter& BeginObject() { return Open('{'); }
  JsonWriter& EndObject() { return Close('}'); }
  JsonWriter& BeginArray() { return Open('['); }
  JsonWriter& EndArray() { return Close(']'); }
  JsonWriter& Key(absl::string_view key) {
    Separate();
    AppendQuoted(key);
    out_ += ": ";
    after_key_ = true;
    return *this;
  }
  JsonWriter& String(absl::string_view value) {
    Separate();
    AppendQuoted(value);
    return *this;
  }
  JsonWriter& Int(int64_t value) {
    Separate();
    absl::StrAppend(&out_, value);
    return *this;
  }
  JsonWriter& Uint(uint64_t value) {
    Separate();
    absl::StrAppend(&out_, value);
    return *this;
  }
  JsonWriter& Number(double value) {  // NaN -> null
    Separate();
    out_ += isnan(value) || isinf(value) ? "null" : absl::StrFormat("%.6g", value);
    return *this;
  }
  JsonWriter& Bool(bool value) {
    Separate();
    out_ += value ? "true" : "false";
    return *this;
  }
  std::string Take() { return std::move(out_) + "\n"; }

 private:
  JsonWriter& Open(char bracket) {
    Separate();
    out_ += bracket;
    has_items_.push_back(false);
    return *this;
  }
  JsonWriter& Close(char bracket) {
    const bool had_items = has_items_.back();
    has_items_.pop_back();
    if (had_items) Newline();
    out_ += bracket;
    return *this;
  }
  // Comma and newline before every value but a key's.
  void Separate() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (has_items_.empty()) return;
    if (has_items_.back()) out_ += ',';
    has_items_.back() = true;
    Newline();
  }
  void Newline() {
    out_ += '\n';
    out_.append(2 * has_items_.size(), ' ');
  }
  void AppendQuoted(absl::string_view s) {
    out_ += '"';
    for (char c : s) {
      switch (c) {
        case '"': out_ += "\\\""; break;
        case '\\': out_ += "\\\\"; break;
        case '\n': out_ += "\\n"; break;
        case '\t': out_ += "\\t"; break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            out_ += absl::StrFormat("\\u%04x", c);
          } else {
            out_ += c;
          }
      }
    }
    out_ += '"';
  }

  std::string out_;
  std::vector<bool> has_items_;  // per open bracket: wrote an item yet?
  bool after_key_ = false;
};

void WriteSyscallCounts(const std::array<uint64_t, kNumTracedSyscalls>& counts,
                        JsonWriter* json) {
  json->BeginObject();
  for (int i = 0; i < kNumTracedSyscalls; ++i) {
    json->Key(kTracedSyscalls[i]).Uint(counts[i]);
  }
  json->EndObject();
}

void WriteRow(const Row& row, JsonWriter* json) {
  json->BeginObject();
  json->Key("allocator").String(row.allocator->name);
  json->Key("label").String(row.allocator->label);
  json->Key("ld_preload").String(row.shared_object);
  json->Key("malloc_from").String(row.malloc_from);
  json->Key("ops_per_sec").Number(row.ops_per_sec);
  json->Key("ns_per_op").Number(row.ns_per_op);
  json->Key("own_ns_per_op").Number(row.own_ns_per_op);
  json->Key("ratio_to_glibc").Number(row.ratio_to_glibc);
  json->Key("ratio_to_best_peer").Number(row.ratio_to_best_peer);
  json->Key("peak_rss_mib").Number(row.peak_rss_mib);
  json->Key("reps").BeginArray();
  for (const RepSample& s : row.reps) {
    json->BeginObject();
    json->Key("seconds").Number(s.seconds);
    json->Key("iters").Uint(s.iters);
    json->Key("ops_per_sec").Number(static_cast<double>(s.iters) / s.seconds);
    json->Key("allocs").Uint(s.allocs);
    json->Key("frees").Uint(s.frees);
    json->Key("remote_frees").Uint(s.remote_frees);
    json->Key("bytes").Uint(s.bytes);
    json->Key("maxrss_kb").Int(s.maxrss_kb);
    json->EndObject();
  }
  json->EndArray();
  json->Key("syscalls").BeginObject();
  json->Key("measured").Bool(row.syscalls.measured);
  if (row.syscalls.measured) {
    json->Key("iters").Uint(row.syscalls.iters);
    json->Key("process");
    WriteSyscallCounts(row.syscalls.counts.process, json);
    json->Key("in_loop");
    WriteSyscallCounts(row.syscalls.counts.in_loop, json);
  } else {
    json->Key("note").String(row.syscalls.note);
  }
  json->EndObject();
  json->EndObject();
}

// ---- SVG ---------------------------------------------------------------------

std::string XmlEscape(absl::string_view text) {
  return absl::StrReplaceAll(text, {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"},
                                    {"\"", "&quot;"}});
}

const char* BarColor(const AllocatorInfo& allocator) {
  const std::string name = allocator.name;
  if (name == "hakmem") return "#d62728";  // the one to look at: red
  if (name == "glibc") return "#7f7f7f";
  if (name == "tcmalloc") return "#1f77b4";
  if (name == "jemalloc") return "#2ca02c";
  if (name == "mimalloc") return "#9467bd";
  return "#bcbd22";
}

// A round tick step giving about five ticks up to `max_value`.
double TickStep(double max_value) {
  const double raw = max_value / 5;
  const double magnitude = pow(10, floor(log10(raw)));
  for (double factor : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (factor * magnitude >= raw) return factor * magnitude;
  }
  return 10 * magnitude;
}

}  // namespace

MachineInfo GetMachineInfo() {
  MachineInfo info;
  info.nproc = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (absl::StartsWith(line, "model name")) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        info.cpu_model = std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
      }
      break;
    }
  }
  if (info.cpu_model.empty()) info.cpu_model = "unknown CPU";
  utsname uts;
  if (uname(&uts) == 0) info.kernel = absl::StrCat(uts.sysname, " ", uts.release);
  const time_t now = time(nullptr);
  tm local;
  localtime_r(&now, &local);
  char date[64];
  strftime(date, sizeof(date), "%Y-%m-%d %H:%M %Z", &local);
  info.date = date;
  return info;
}

void Summarize(LaneReport* lane) {
  for (Row& row : lane->rows) {
    std::vector<double> ops, rss;
    for (const RepSample& s : row.reps) {
      ops.push_back(static_cast<double>(s.iters) / std::max(s.seconds, 1e-9));
      rss.push_back(static_cast<double>(s.maxrss_kb) / 1024);
    }
    row.ops_per_sec = Median(ops);
    row.ns_per_op = 1e9 / row.ops_per_sec;
    row.peak_rss_mib = Median(rss);
  }
  const Row* best_peer = nullptr;
  for (const Row& row : lane->rows) {
    if (row.allocator->is_peer &&
        (best_peer == nullptr || row.ops_per_sec > best_peer->ops_per_sec)) {
      best_peer = &row;
    }
  }
  lane->best_peer = best_peer != nullptr ? best_peer->allocator->name : "";
  const Row* glibc = FindRow(*lane, "glibc");
  const Row* floor_row = FloorRow(*lane);
  // NaN where the reference did not run, which makes the ratios NaN too.
  const double glibc_ops = glibc != nullptr ? glibc->ops_per_sec : kNaN;
  const double peer_ops = best_peer != nullptr ? best_peer->ops_per_sec : kNaN;
  const double floor_ns = floor_row != nullptr ? floor_row->ns_per_op : kNaN;
  for (Row& row : lane->rows) {
    const bool is_floor = row.allocator->is_floor;
    row.ratio_to_glibc = is_floor ? kNaN : row.ops_per_sec / glibc_ops;
    row.ratio_to_best_peer = is_floor ? kNaN : row.ops_per_sec / peer_ops;
    row.own_ns_per_op = is_floor ? kNaN : row.ns_per_op - floor_ns;
  }
}

void PrintTable(const Report& report, FILE* out) {
  const MachineInfo& m = report.machine;
  absl::FPrintF(out, "random_mixed on %s (nproc %d, %s), %s\n", m.cpu_model,
                m.nproc, m.kernel, m.date);
  absl::FPrintF(out,
                "Median of %d rep(s). ops/s = iterations / wall time of the "
                "timed loop (after an untimed warm-up).\n"
                "x glibc, x peer: ops/s relative to glibc and to the best of "
                "tcmalloc (gperftools), jemalloc, mimalloc (higher is better).\n"
                "own ns = ns/op minus the floor row's ns/op (the loop's own "
                "cost: RNG, slot array, writes, call); below 0 = within noise.\n",
                report.reps);
  if (report.syscalls_requested) {
    absl::FPrintF(out,
                  "Syscalls: whole process / timed loop only, from a separate "
                  "strace run of min(iters, %s) iterations after the timed "
                  "run's warm-up; process counts include the dynamic loader's "
                  "(see the floor row).\n",
                  WithCommas(report.syscall_iters_cap));
  }
  if (!report.hakmem_env.empty()) {
    std::vector<std::string> vars;
    for (const auto& [name, value] : report.hakmem_env) {
      vars.push_back(absl::StrCat(name, "=", value));
    }
    absl::FPrintF(out, "hakmem environment: %s\n", absl::StrJoin(vars, " "));
  }

  for (size_t i = 0; i < report.lanes.size(); ++i) {
    const LaneReport& lane = report.lanes[i];
    absl::FPrintF(out, "\n[%d/%d] %s\n", i + 1, report.lanes.size(),
                  LaneTitle(lane));
    if (lane.lane.name == "phase9") {
      absl::FPrintF(out, "  %s\n", GetPhase9Reference().text);
      const std::string here = ThisMachineLine(lane);
      if (!here.empty()) absl::FPrintF(out, "  %s\n", here);
    }
    absl::FPrintF(out, "  %-22s %7s %7s %6s %6s %6s %7s", "allocator", "Mops/s",
                  "x glibc", "x peer", "ns/op", "own ns", "RSS MiB");
    if (report.syscalls_requested) {
      // mremap stays in the JSON: nothing calls it in this workload.
      for (int s = 0; s < kNumTracedSyscalls - 1; ++s) {
        absl::FPrintF(out, " %11s", kTracedSyscalls[s]);
      }
    }
    absl::FPrintF(out, "\n");
    for (const Row& row : lane.rows) {
      absl::FPrintF(out, "  %-22s %7s %7s %6s %6s %6s %7s", row.allocator->label,
                    Fixed(row.ops_per_sec / 1e6, 2), Fixed(row.ratio_to_glibc, 2),
                    Fixed(row.ratio_to_best_peer, 2), Fixed(row.ns_per_op, 2),
                    Fixed(row.own_ns_per_op, 2), Fixed(row.peak_rss_mib, 1));
      if (report.syscalls_requested) {
        for (int s = 0; s < kNumTracedSyscalls - 1; ++s) {
          absl::FPrintF(out, " %11s", SyscallCell(row, s));
        }
      }
      absl::FPrintF(out, "\n");
    }
    const Row* hakmem = FindRow(lane, "hakmem");
    if (hakmem != nullptr && !lane.best_peer.empty()) {
      absl::FPrintF(out, "  => hakmem: %sx best peer (%s), %sx glibc\n",
                    Fixed(hakmem->ratio_to_best_peer, 2),
                    FindAllocator(lane.best_peer)->label,
                    Fixed(hakmem->ratio_to_glibc, 2));
    }
  }
  if (report.syscalls_requested) {
    const std::string note = SyscallsUnavailableNote(report);
    if (!note.empty()) absl::FPrintF(out, "\nSyscalls n/a: %s\n", note);
  }
}

std::string ToJson(const Report& report) {
  JsonWriter json;
  json.BeginObject();
  json.Key("benchmark").String("random_mixed");
  json.Key("machine").BeginObject();
  json.Key("nproc").Int(report.machine.nproc);
  json.Key("cpu_model").String(report.machine.cpu_model);
  json.Key("kernel").String(report.machine.kernel);
  json.Key("date").String(report.machine.date);
  json.EndObject();
  json.Key("reps").Int(report.reps);
  json.Key("seed").Uint(report.seed);
  json.Key("hakmem_so").String(report.hakmem_so);
  json.Key("hakmem_env").BeginObject();
  for (const auto& [name, value] : report.hakmem_env) json.Key(name).Uint(value);
  json.EndObject();
  json.Key("syscall_runs").BeginObject();
  json.Key("requested").Bool(report.syscalls_requested);
  json.Key("iters_cap").Uint(report.syscall_iters_cap);
  json.EndObject();
  const Phase9Reference& ref = GetPhase9Reference();
  json.Key("phase9_reference").BeginObject();
  json.Key("note").String(ref.text);
  json.Key("hakmem_mops").Number(ref.hakmem_mops);
  json.Key("hakmem_syscalls").Int(ref.hakmem_syscalls);
  json.Key("glibc_mops").Number(ref.glibc_mops);
  json.Key("glibc_syscalls").Int(ref.glibc_syscalls);
  json.EndObject();
  json.Key("lanes").BeginArray();
  for (const LaneReport& lane : report.lanes) {
    json.BeginObject();
    json.Key("profile").String(lane.lane.name);
    json.Key("iters").Uint(lane.lane.iters);
    json.Key("warmup_iters").Uint(lane.warmup_iters);
    json.Key("ws").Uint(lane.lane.ws);
    json.Key("threads").Int(lane.lane.threads);
    json.Key("remote_pct").Int(lane.lane.remote_pct);
    json.Key("sizes").String(DescribeSizes(lane.lane.bands));
    json.Key("size_bands").BeginArray();
    for (const SizeBand& band : lane.lane.bands) {
      json.BeginObject();
      json.Key("min_size").Uint(band.min_size);
      json.Key("max_size").Uint(band.max_size);
      json.Key("weight_pct").Uint(band.weight_pct);
      json.EndObject();
    }
    json.EndArray();
    json.Key("best_peer").String(lane.best_peer);
    json.Key("results").BeginArray();
    for (const Row& row : lane.rows) WriteRow(row, &json);
    json.EndArray();
    json.EndObject();
  }
  json.EndArray();
  json.EndObject();
  return json.Take();
}

std::string ToSvg(const Report& report) {
  // Bars: every allocator but the floor, in table order.
  std::vector<const AllocatorInfo*> shown;
  bool have_glibc = true;
  for (const AllocatorInfo& info : AllAllocators()) {
    if (info.is_floor) continue;
    bool ran = false;
    for (const LaneReport& lane : report.lanes) ran |= FindRow(lane, info.name) != nullptr;
    if (ran) shown.push_back(&info);
  }
  for (const LaneReport& lane : report.lanes) {
    have_glibc &= FindRow(lane, "glibc") != nullptr;
  }
  auto value_of = [&](const Row& row) {
    return have_glibc ? row.ratio_to_glibc : row.ops_per_sec / 1e6;
  };
  double max_value = have_glibc ? 1.0 : 0.0;
  for (const LaneReport& lane : report.lanes) {
    for (const Row& row : lane.rows) {
      if (!row.allocator->is_floor) max_value = std::max(max_value, value_of(row));
    }
  }
  if (!(max_value > 0)) max_value = 1;
  const double step = TickStep(max_value * 1.08);
  const double y_max = ceil(max_value * 1.08 / step) * step;

  const int bars = std::max<int>(1, static_cast<int>(shown.size()));
  constexpr int kBarWidth = 20, kGroupGap = 36, kLeft = 70, kRight = 20;
  constexpr int kTop = 110, kPlotHeight = 300, kBottom = 60;
  const int group_width = bars * kBarWidth + kGroupGap;
  const int lanes = std::max<int>(1, static_cast<int>(report.lanes.size()));
  const int width = std::max(760, kLeft + lanes * group_width + kRight);
  const int height = kTop + kPlotHeight + kBottom;
  auto y_of = [&](double v) { return kTop + kPlotHeight * (1 - v / y_max); };

  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
      "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
      width, height, width, height);
  const MachineInfo& m = report.machine;
  absl::StrAppendFormat(
      &svg, "<text x=\"%d\" y=\"24\" font-size=\"16\" font-weight=\"bold\">%s</text>\n",
      kLeft,
      XmlEscape(absl::StrFormat("random_mixed on %s (nproc %d), %s", m.cpu_model,
                                m.nproc, m.date)));
  absl::StrAppendFormat(
      &svg, "<text x=\"%d\" y=\"44\" font-size=\"12\" fill=\"#444\">%s</text>\n",
      kLeft,
      XmlEscape(have_glibc
                    ? absl::StrFormat("ops/s relative to glibc (glibc = 1.0, "
                                      "higher is better), median of %d rep(s)",
                                      report.reps)
                    : absl::StrFormat("Mops/s (higher is better), median of "
                                      "%d rep(s)",
                                      report.reps)));
  // Legend.
  int x = kLeft;
  for (const AllocatorInfo* info : shown) {
    absl::StrAppendFormat(&svg,
                          "<rect x=\"%d\" y=\"60\" width=\"12\" height=\"12\" "
                          "fill=\"%s\"/><text x=\"%d\" y=\"71\" "
                          "font-size=\"12\">%s</text>\n",
                          x, BarColor(*info), x + 16, XmlEscape(info->label));
    // About 6.5 px per character at 12 px sans-serif.
    x += 16 + 13 * static_cast<int>(strlen(info->label)) / 2 + 18;
  }
  // Grid and y axis.
  for (double v = 0; v <= y_max + step / 2; v += step) {
    const double y = y_of(v);
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" "
                          "stroke=\"#ddd\"/><text x=\"%d\" y=\"%.1f\" "
                          "font-size=\"11\" text-anchor=\"end\">%s</text>\n",
                          kLeft, y, width - kRight, y, kLeft - 6, y + 4,
                          absl::StrFormat("%g", v));
  }
  absl::StrAppendFormat(&svg,
                        "<text x=\"16\" y=\"%d\" font-size=\"12\" "
                        "transform=\"rotate(-90 16 %d)\" "
                        "text-anchor=\"middle\">%s</text>\n",
                        kTop + kPlotHeight / 2, kTop + kPlotHeight / 2,
                        have_glibc ? "x glibc" : "Mops/s");
  // Bars, one group per lane.
  for (size_t i = 0; i < report.lanes.size(); ++i) {
    const LaneReport& lane = report.lanes[i];
    const int group_x = kLeft + static_cast<int>(i) * group_width + kGroupGap / 2;
    for (size_t b = 0; b < shown.size(); ++b) {
      const Row* row = FindRow(lane, shown[b]->name);
      if (row == nullptr || isnan(value_of(*row))) continue;
      const double v = value_of(*row);
      const int bx = group_x + static_cast<int>(b) * kBarWidth;
      absl::StrAppendFormat(
          &svg,
          "<rect x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"%.1f\" fill=\"%s\">"
          "<title>%s, %s: %.2f</title></rect>\n",
          bx + 1, y_of(v), kBarWidth - 2, kTop + kPlotHeight - y_of(v),
          BarColor(*shown[b]), XmlEscape(lane.lane.name),
          XmlEscape(shown[b]->label), v);
      const double label_y = y_of(v) - 4;
      absl::StrAppendFormat(&svg,
                            "<text x=\"%d\" y=\"%.1f\" font-size=\"10\" "
                            "transform=\"rotate(-90 %d %.1f)\">%.2f</text>\n",
                            bx + kBarWidth / 2 + 4, label_y,
                            bx + kBarWidth / 2 + 4, label_y, v);
    }
    const int center = group_x + bars * kBarWidth / 2;
    absl::StrAppendFormat(&svg,
                          "<text x=\"%d\" y=\"%d\" font-size=\"13\" "
                          "font-weight=\"bold\" text-anchor=\"middle\">%s</text>\n"
                          "<text x=\"%d\" y=\"%d\" font-size=\"10\" fill=\"#444\" "
                          "text-anchor=\"middle\">%s</text>\n",
                          center, kTop + kPlotHeight + 20, XmlEscape(lane.lane.name),
                          center, kTop + kPlotHeight + 36,
                          XmlEscape(absl::StrCat(lane.lane.threads, "T, ",
                                                 lane.lane.bands.size() > 1
                                                     ? "mix"
                                                     : DescribeSizes(lane.lane.bands))));
  }
  // The glibc line, drawn last so it stays visible.
  if (have_glibc) {
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" "
                          "stroke=\"black\" stroke-dasharray=\"6 4\"/>\n",
                          kLeft, y_of(1.0), width - kRight, y_of(1.0));
  }
  absl::StrAppendFormat(&svg,
                        "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" "
                        "stroke=\"black\"/>\n</svg>\n",
                        kLeft, kTop + kPlotHeight, width - kRight,
                        kTop + kPlotHeight);
  return svg;
}

}  // namespace bench
