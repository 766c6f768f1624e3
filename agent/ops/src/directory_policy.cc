// IdlePolicyFromDirectory: field-by-field mapping (see directory_policy.h).
#include "sparetime/ops/directory_policy.h"

#include <algorithm>

namespace sparetime::ops {

using scheduler::IdlePolicy;

IdlePolicy IdlePolicyFromDirectory(const directory::EffectivePolicy& policy) {
  IdlePolicy out;
  out.idle_after = std::chrono::minutes(policy.idle_minutes);
  out.max_cpu_percent = std::min<double>(policy.idle_cpu_percent, 100);
  out.max_io_pressure_percent = std::min<double>(policy.idle_io_pressure_percent, 100);
  out.windows = policy.windows;
  out.ac_only = policy.ac_only;
  return out;
}

IdlePolicy AgentIdlePolicy(const directory::EffectivePolicy& policy,
                           const config::AgentConfig& config) {
  using std::chrono::duration_cast;
  using std::chrono::seconds;
  IdlePolicy out = IdlePolicyFromDirectory(policy);
  out.settle = duration_cast<seconds>(config.settle);
  out.load_grace = duration_cast<seconds>(config.load_grace);
  out.resume_delay = duration_cast<seconds>(config.resume_delay);
  if (config.ignore_load) out.IgnoreLoad();
  return out;
}

ConsistencyOptions ConsistencyFromPolicy(const directory::EffectivePolicy& policy) {
  ConsistencyOptions o;
  Result<ConsistencyMode> mode = ParseConsistencyMode(policy.consistency_mode);
  o.mode = mode.ok() ? *mode : ConsistencyMode::kAuto;
  o.max_freeze_seconds = policy.max_freeze_seconds;
  o.snapshot_bytes = policy.snapshot_size;
  return o;
}

}  // namespace sparetime::ops
