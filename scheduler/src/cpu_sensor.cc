// CpuSensor: /proc/stat deltas minus the agent's own /proc/self/stat ticks.
// Invariant: previous_ is only replaced by a fully parsed reading, so a bad
// read never produces a rate over a mismatched pair.
#include "sparetime/scheduler/cpu_sensor.h"

#include <algorithm>
#include <cstdio>

#include "text_util.h"

namespace sparetime::scheduler {
namespace {

constexpr std::string_view kStat = "/proc/stat";
constexpr std::string_view kSelfStat = "/proc/self/stat";
constexpr std::string_view kLoadAvg = "/proc/loadavg";

// "cpu  user nice system idle iowait irq softirq steal guest guest_nice":
// guest time is already counted in user/nice, so only the first 8 add up.
Status ParseStat(std::string_view text, uint64_t* total, uint64_t* busy, int* cpus) {
  std::vector<std::string_view> lines = SplitLines(text);
  if (lines.empty()) return UnexpectedContent(kStat, 1, "a \"cpu\" line", "");
  std::vector<std::string_view> f = SplitFields(lines[0]);
  if (f.size() < 5 || f[0] != "cpu") {
    return UnexpectedContent(kStat, 1, "\"cpu\" followed by at least 4 tick counts", lines[0]);
  }
  uint64_t ticks[8] = {};
  for (size_t i = 1; i < f.size() && i <= 8; ++i) {
    std::optional<uint64_t> v = ParseU64(f[i]);
    if (!v) return UnexpectedContent(kStat, 1, "tick counts", lines[0]);
    ticks[i - 1] = *v;
  }
  *total = 0;
  for (uint64_t t : ticks) *total += t;
  *busy = *total - ticks[3] - ticks[4];  // minus idle and iowait
  *cpus = 0;
  for (std::string_view line : lines) {
    if (line.size() > 3 && line.substr(0, 3) == "cpu" && line[3] >= '0' && line[3] <= '9') ++*cpus;
  }
  return Status::Ok();
}

// "pid (comm) state ppid ... utime stime ...": comm may hold spaces and
// parentheses, so fields are counted after the last ')'. utime and stime are
// fields 14 and 15, i.e. the 12th and 13th after the comm.
Result<uint64_t> ParseSelfTicks(std::string_view text) {
  std::vector<std::string_view> lines = SplitLines(text);
  std::string_view line = lines.empty() ? std::string_view() : lines[0];
  size_t close = line.rfind(')');
  if (close == std::string_view::npos) {
    return UnexpectedContent(kSelfStat, 1, "\"pid (comm) state ...\"", line);
  }
  std::vector<std::string_view> f = SplitFields(line.substr(close + 1));
  if (f.size() < 13) return UnexpectedContent(kSelfStat, 1, "at least 15 fields", line);
  std::optional<uint64_t> utime = ParseU64(f[11]);
  std::optional<uint64_t> stime = ParseU64(f[12]);
  if (!utime || !stime) return UnexpectedContent(kSelfStat, 1, "numeric utime and stime", line);
  return *utime + *stime;
}

Status ParseLoadAvg(std::string_view text, CpuSample* s) {
  std::string_view line = TrimSpace(text);
  std::vector<std::string_view> f = SplitFields(line);
  std::optional<double> l1, l5, l15;
  if (f.size() >= 3) {
    l1 = ParseDouble(f[0]);
    l5 = ParseDouble(f[1]);
    l15 = ParseDouble(f[2]);
  }
  if (!l1 || !l5 || !l15) return UnexpectedContent(kLoadAvg, 1, "three load averages", line);
  s->load1 = *l1;
  s->load5 = *l5;
  s->load15 = *l15;
  return Status::Ok();
}

}  // namespace

std::string CpuSample::Describe() const {
  char load[64];
  std::snprintf(load, sizeof load, "load %.2f on %d CPU%s", load1, cpus, cpus == 1 ? "" : "s");
  if (!busy_percent) return std::string("cpu: measuring, ") + load;
  return "cpu " + FormatPercent(*busy_percent) + " busy (agent " +
         FormatPercent(own_percent.value_or(0)) + "), " + load;
}

Result<std::optional<CpuSample>> CpuSensor::Read() {
  ST_ASSIGN_OR_RETURN(std::optional<std::string> stat, reader_.ReadFileIfExists(kStat));
  if (!stat) return std::optional<CpuSample>();
  CpuSample sample;
  Counters now;
  ST_RETURN_IF_ERROR(ParseStat(*stat, &now.total, &now.busy, &sample.cpus));
  ST_ASSIGN_OR_RETURN(std::optional<std::string> self, reader_.ReadFileIfExists(kSelfStat));
  if (self) {
    ST_ASSIGN_OR_RETURN(now.own, ParseSelfTicks(*self));
  }
  ST_ASSIGN_OR_RETURN(std::optional<std::string> loadavg, reader_.ReadFileIfExists(kLoadAvg));
  if (loadavg) ST_RETURN_IF_ERROR(ParseLoadAvg(*loadavg, &sample));

  if (previous_ && now.total > previous_->total && now.busy >= previous_->busy &&
      now.own >= previous_->own) {
    double total = static_cast<double>(now.total - previous_->total);
    double busy = static_cast<double>(now.busy - previous_->busy);
    double own = std::min(busy, static_cast<double>(now.own - previous_->own));
    sample.busy_percent = 100.0 * (busy - own) / total;
    sample.own_percent = 100.0 * own / total;
  }
  previous_ = now;
  return std::optional<CpuSample>(std::move(sample));
}

}  // namespace sparetime::scheduler
