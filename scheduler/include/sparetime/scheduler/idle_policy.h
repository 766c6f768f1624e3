// IdlePolicy: what "idle" means for one box — thresholds, power, time
// windows and hysteresis. Filled from the LDAP policy or the config file;
// the defaults below are modelled on HTCondor's desktop policy and BOINC's
// computing preferences (see docs/scheduler.md for the table and sources).
//
// Thread safety: a plain value.
#ifndef SPARETIME_SCHEDULER_IDLE_POLICY_H_
#define SPARETIME_SCHEDULER_IDLE_POLICY_H_

#include <chrono>
#include <optional>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/base/time_window.h"

namespace sparetime::scheduler {

struct IdlePolicy {
  // No user input for this long (HTCondor StartIdleTime: 15 min).
  std::chrono::seconds idle_after{15 * 60};
  // Others' CPU use, % of all CPUs. BOINC suspends above 25%, HTCondor
  // above a load of 0.3; we take the directory's built-in default, 10%.
  double max_cpu_percent = 10;
  // PSI "some avg10" limits, %; nullopt = not checked.
  std::optional<double> max_cpu_pressure_percent;
  std::optional<double> max_io_pressure_percent = 10;
  std::optional<double> max_memory_pressure_percent = 10;
  // Busiest physical disk's busy time from others' I/O, %.
  double max_disk_busy_percent = 20;
  // Others' traffic on non-loopback interfaces; nullopt = not checked.
  std::optional<double> max_network_bytes_per_sec;
  // Work only on mains power (BOINC run_on_batteries = no).
  bool ac_only = true;
  // Local-time windows in which work may run; empty = any time.
  std::vector<TimeWindow> windows;

  // Hysteresis. The load conditions must stay quiet this long before the box
  // becomes idle (and stay quiet while idle, except for short spikes).
  std::chrono::seconds settle{60};
  // While idle, a load condition must stay over its threshold this long
  // before work backs off (HTCondor: CPU busy for 2 min; we are quicker).
  // User input, battery and the end of a window back off at once.
  std::chrono::seconds load_grace{30};
  // After backing off, stay busy at least this long (HTCondor ContinueIdleTime: 5 min).
  std::chrono::seconds resume_delay{5 * 60};

  // Re-check cadence: while idle (to back off promptly) and the longest
  // wait while busy unless the earliest possible idle time is known.
  std::chrono::seconds check_interval_idle{1};
  std::chrono::seconds check_interval_busy{30};

  // kInvalidArgument naming the first bad field (negative durations,
  // percentages outside 0..100, a zero check interval).
  Status Validate() const;

  // Decide on user input, power and windows only: no CPU, pressure, disk or
  // network condition (`--ignore-load`, [scheduler] ignore_load).
  void IgnoreLoad();
};

}  // namespace sparetime::scheduler

#endif  // SPARETIME_SCHEDULER_IDLE_POLICY_H_
