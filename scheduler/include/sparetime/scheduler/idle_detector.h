// IdleDetector: turns sensor samples into "idle: work may run" or "busy:
// stay out of the way", with the reasons, under an IdlePolicy.
//
// Rule (all must hold to become idle):
//  - no user input for policy.idle_after;
//  - on AC, when policy.ac_only;
//  - local time inside one of policy.windows (if any);
//  - others' CPU, PSI, disk busy and network below their thresholds, and
//    continuously so for policy.settle;
//  - at least policy.resume_delay since the last back-off.
// While idle, user input, battery and leaving the window end idleness at
// once; a load condition must persist for policy.load_grace first, so a
// flapping load does not flap the decision. Sensors without a reading
// (first sample of a rate, a kernel without PSI) do not block.
//
// Pure logic: the only inputs are the samples, the policy and the Clock
// (MonoNow for hysteresis, WallNow for user idle time and, through
// localtime_r and $TZ, for windows; call tzset() after changing $TZ).
// Deterministic with a fake Clock.
//
// Thread safety: not thread-safe.
#ifndef SPARETIME_SCHEDULER_IDLE_DETECTOR_H_
#define SPARETIME_SCHEDULER_IDLE_DETECTOR_H_

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "sparetime/base/clock.h"
#include "sparetime/scheduler/idle_policy.h"
#include "sparetime/scheduler/sample.h"

namespace sparetime::scheduler {

struct Decision {
  bool idle = false;
  // Why: for busy, each condition that blocks ("user active on pts/3 12 s
  // ago", "on battery (74%)", "io pressure 34% > 10%", "outside window
  // Mon-Fri 19:00-07:00"); for idle, what was found quiet.
  std::vector<std::string> reasons;
  std::vector<std::string> warnings;  // sensors that failed (from the sample)
  // When to sample and decide again (Clock::MonoNow time). While idle:
  // policy.check_interval_idle. While busy: when the box could at earliest
  // become idle, re-checking at most every check_interval_busy while a load
  // condition is involved, and at most 10 min apart in any case.
  std::chrono::steady_clock::time_point next_check;
};

class IdleDetector {
 public:
  // REQUIRES: policy.Validate().ok().
  IdleDetector(IdlePolicy policy, const Clock& clock);

  // Replaces the policy, keeping the hysteresis state.
  void SetPolicy(IdlePolicy policy) { policy_ = std::move(policy); }
  const IdlePolicy& policy() const { return policy_; }

  // Decides on a new sample. Call at (or after) the previous next_check.
  Decision Decide(const Sample& sample);
  bool idle() const { return idle_; }

 private:
  // A condition that keeps the box busy, and when it will clear if known.
  struct Blocker {
    std::string reason;
    std::optional<std::chrono::steady_clock::time_point> clears_at;
  };
  std::vector<Blocker> HardBlockers(const Sample& sample) const;
  std::vector<std::string> LoadReasons(const Sample& sample) const;
  std::vector<std::string> IdleReasons(const Sample& sample) const;
  std::chrono::steady_clock::time_point NextBusyCheck(const std::vector<Blocker>& hard,
                                                      bool loud) const;

  IdlePolicy policy_;
  const Clock& clock_;
  bool idle_ = false;
  std::chrono::steady_clock::time_point now_;  // MonoNow of the current Decide
  std::optional<std::chrono::steady_clock::time_point> quiet_since_;  // load quiet from then on
  std::optional<std::chrono::steady_clock::time_point> loud_since_;   // load loud from then on
  std::optional<std::chrono::steady_clock::time_point> backed_off_at_;
};

}  // namespace sparetime::scheduler

#endif  // SPARETIME_SCHEDULER_IDLE_DETECTOR_H_
