// IdleDetector: the decision rule and hysteresis described in idle_detector.h.
// Invariants: exactly one of quiet_since_ / loud_since_ is set after the
// first Decide(); backed_off_at_ is set only by an idle -> busy transition.
#include "sparetime/scheduler/idle_detector.h"

#include <time.h>

#include <algorithm>
#include <cstdlib>

#include "text_util.h"

namespace sparetime::scheduler {
namespace {

using std::chrono::steady_clock;
using std::chrono::system_clock;

constexpr std::chrono::minutes kMaxRecheck(10);
constexpr std::chrono::seconds kMinRecheck(1);
constexpr int kMinutesPerDay = 24 * 60;
constexpr int kMinutesPerWeek = 7 * kMinutesPerDay;

struct LocalTime {
  int weekday = 0;  // 0 = Monday
  int minute = 0;   // of the day
  int second = 0;
};

LocalTime ToLocal(system_clock::time_point t) {
  time_t tt = system_clock::to_time_t(t);
  struct tm tm {};
  localtime_r(&tt, &tm);
  return LocalTime{(tm.tm_wday + 6) % 7, tm.tm_hour * 60 + tm.tm_min, tm.tm_sec};
}

// Time until the next minute inside a window (DST shifts ignored: the
// answer only schedules a re-check).
std::optional<std::chrono::seconds> UntilWindowOpens(const std::vector<TimeWindow>& windows,
                                                     LocalTime now) {
  for (int m = 1; m <= kMinutesPerWeek; ++m) {
    int total = now.minute + m;
    if (AnyWindowContains(windows, (now.weekday + total / kMinutesPerDay) % 7,
                          total % kMinutesPerDay)) {
      return std::chrono::seconds(m * 60 - now.second);
    }
  }
  return std::nullopt;
}

// One load condition with a threshold: "cpu" 43 vs 25.
struct LoadReading {
  std::string label;
  double value = 0;
  double limit = 0;
  bool rate = false;  // bytes/s rather than %

  std::string Value() const { return rate ? FormatRate(value) : FormatPercent(value); }
  std::string Limit() const { return rate ? FormatRate(limit) : FormatPercent(limit); }
  bool over() const { return value > limit; }
};

std::vector<LoadReading> LoadReadings(const Sample& s, const IdlePolicy& p) {
  std::vector<LoadReading> out;
  if (s.cpu && s.cpu->busy_percent) out.push_back({"cpu", *s.cpu->busy_percent, p.max_cpu_percent});
  if (s.pressure) {
    const std::pair<const char*, std::pair<const std::optional<Psi>*, std::optional<double>>>
        psi[] = {{"cpu pressure", {&s.pressure->cpu, p.max_cpu_pressure_percent}},
                 {"io pressure", {&s.pressure->io, p.max_io_pressure_percent}},
                 {"memory pressure", {&s.pressure->memory, p.max_memory_pressure_percent}}};
    for (const auto& [label, v] : psi) {
      if (*v.first && v.second) out.push_back({label, (*v.first)->some_avg10, *v.second});
    }
  }
  if (s.disk) {
    for (const DiskRate& d : s.disk->disks) {
      out.push_back({"disk " + d.name + " busy", d.busy_percent, p.max_disk_busy_percent});
    }
  }
  if (s.network && s.network->has_rates && p.max_network_bytes_per_sec) {
    std::string label = "network";
    if (!s.network->busiest_interface.empty()) label += " (" + s.network->busiest_interface + ")";
    out.push_back({label, s.network->bytes_per_sec, *p.max_network_bytes_per_sec, true});
  }
  return out;
}

}  // namespace

IdleDetector::IdleDetector(IdlePolicy policy, const Clock& clock)
    : policy_(std::move(policy)), clock_(clock) {
  if (!policy_.Validate().ok()) std::abort();  // a caller bug: validate config first
}

std::vector<IdleDetector::Blocker> IdleDetector::HardBlockers(const Sample& sample) const {
  std::vector<Blocker> out;
  system_clock::time_point wall = clock_.WallNow();
  if (sample.user && sample.user->last_input) {
    auto ago = std::max(system_clock::duration::zero(), wall - *sample.user->last_input);
    if (ago < policy_.idle_after) {
      out.push_back(
          {"user active on " + sample.user->source + " " + FormatDuration(ago) + " ago",
           now_ + std::chrono::duration_cast<steady_clock::duration>(policy_.idle_after - ago)});
    }
  }
  if (policy_.ac_only && sample.power && !sample.power->on_ac) {
    out.push_back({sample.power->Describe(), std::nullopt});
  }
  if (!policy_.windows.empty()) {
    LocalTime local = ToLocal(wall);
    if (!AnyWindowContains(policy_.windows, local.weekday, local.minute)) {
      std::string list;
      for (const TimeWindow& w : policy_.windows) list += (list.empty() ? "" : ", ") + w.text;
      std::optional<std::chrono::seconds> until = UntilWindowOpens(policy_.windows, local);
      out.push_back(
          {std::string(policy_.windows.size() == 1 ? "outside window " : "outside windows ") + list,
           until ? std::optional(now_ + *until) : std::nullopt});
    }
  }
  return out;
}

std::vector<std::string> IdleDetector::LoadReasons(const Sample& sample) const {
  std::vector<std::string> out;
  for (const LoadReading& r : LoadReadings(sample, policy_)) {
    if (r.over()) out.push_back(r.label + " " + r.Value() + " > " + r.Limit());
  }
  return out;
}

std::vector<std::string> IdleDetector::IdleReasons(const Sample& sample) const {
  std::vector<std::string> out;
  system_clock::time_point wall = clock_.WallNow();
  if (sample.user && sample.user->last_input) {
    out.push_back("no user input for " + FormatDuration(wall - *sample.user->last_input) +
                  " (last on " + sample.user->source + ")");
  } else if (sample.user) {
    out.push_back("no user sessions or input devices");
  }
  if (sample.power) {
    out.push_back(sample.power->Describe() + (sample.power->on_ac ? "" : ", allowed by policy"));
  }
  if (!policy_.windows.empty()) {
    LocalTime local = ToLocal(wall);
    for (const TimeWindow& w : policy_.windows) {
      if (w.Contains(local.weekday, local.minute)) {
        out.push_back("inside window " + w.text);
        break;
      }
    }
  }
  std::string quiet;
  for (const LoadReading& r : LoadReadings(sample, policy_)) {
    if (!r.over()) quiet += (quiet.empty() ? "" : ", ") + r.label + " " + r.Value();
  }
  if (!quiet.empty()) out.push_back("quiet: " + quiet);
  if (out.empty()) out.push_back("no sensor reports activity");
  return out;
}

steady_clock::time_point IdleDetector::NextBusyCheck(const std::vector<Blocker>& hard,
                                                     bool loud) const {
  steady_clock::time_point predictable = now_;
  bool unknown = false;
  for (const Blocker& b : hard) {
    if (b.clears_at) {
      predictable = std::max(predictable, *b.clears_at);
    } else {
      unknown = true;
    }
  }
  if (backed_off_at_) predictable = std::max(predictable, *backed_off_at_ + policy_.resume_delay);
  if (unknown)
    return now_ + std::min<steady_clock::duration>(policy_.check_interval_busy, kMaxRecheck);
  // A long predictable wait: sleep through it, waking `settle` early so the
  // load can be seen quiet by the time the other conditions clear.
  if (predictable - now_ > policy_.settle + policy_.check_interval_busy) {
    return std::min(predictable - policy_.settle, now_ + kMaxRecheck);
  }
  steady_clock::time_point load_clear = (loud ? now_ : *quiet_since_) + policy_.settle;
  steady_clock::duration wait = std::max(predictable, load_clear) - now_;
  wait = std::clamp<steady_clock::duration>(wait, kMinRecheck, policy_.check_interval_busy);
  return now_ + wait;
}

Decision IdleDetector::Decide(const Sample& sample) {
  now_ = clock_.MonoNow();
  Decision d;
  d.warnings = sample.warnings;
  std::vector<Blocker> hard = HardBlockers(sample);
  std::vector<std::string> load = LoadReasons(sample);
  bool loud = !load.empty();
  if (loud) {
    quiet_since_.reset();
    if (!loud_since_) loud_since_ = now_;
  } else {
    loud_since_.reset();
    if (!quiet_since_) quiet_since_ = now_;
  }

  if (idle_) {
    bool grace_over = loud && now_ - *loud_since_ >= policy_.load_grace;
    if (hard.empty() && !grace_over) {
      d.idle = true;
      d.reasons = IdleReasons(sample);
      for (const std::string& r : load) {
        d.reasons.push_back(r + " for " + FormatDuration(now_ - *loud_since_) +
                            ", backing off after " + FormatDuration(policy_.load_grace));
      }
      d.next_check = now_ + policy_.check_interval_idle;
      return d;
    }
    idle_ = false;
    backed_off_at_ = now_;
  }

  for (const Blocker& b : hard) d.reasons.push_back(b.reason);
  d.reasons.insert(d.reasons.end(), load.begin(), load.end());
  if (!loud && now_ - *quiet_since_ < policy_.settle) {
    d.reasons.push_back("load quiet for " + FormatDuration(now_ - *quiet_since_) + " of the " +
                        FormatDuration(policy_.settle) + " required");
  }
  if (backed_off_at_ && now_ - *backed_off_at_ < policy_.resume_delay) {
    d.reasons.push_back("backed off " + FormatDuration(now_ - *backed_off_at_) + " ago, resuming " +
                        FormatDuration(policy_.resume_delay) + " after that at the earliest");
  }
  if (d.reasons.empty()) {
    idle_ = true;
    d.idle = true;
    d.reasons = IdleReasons(sample);
    d.next_check = now_ + policy_.check_interval_idle;
    return d;
  }
  d.next_check = NextBusyCheck(hard, loud);
  return d;
}

}  // namespace sparetime::scheduler
