// From the directory's effective policy (LDAP or LDIF, merged default <
// group < host) to the IdlePolicy the detector uses and the job byte rate.
//
// Mapped: sparetimeIdleMinutes -> idle_after, sparetimeIdleCpuPercent ->
// max_cpu_percent, sparetimeIdleIoPressurePercent -> max_io_pressure_percent,
// sparetimeWindow -> windows, sparetimeAcOnly -> ac_only. Every other field
// keeps its IdlePolicy default. The directory rejects out-of-range values
// when it parses an entry; percentages are capped at 100 here as well, so
// the result always passes IdlePolicy::Validate() (the detector requires it).
//
// AgentIdlePolicy adds this box's [scheduler] settings from sparetime.conf
// (settle, load_grace, resume_delay, ignore_load) on top: what sparetimed and
// `sparetime backup --when-idle --config` use.
//
// Lives in the application layer (not scheduler/) because it joins the
// directory, the agent config and the scheduler: scheduler/ depends on base only.
//
// Thread safety: pure functions.
#ifndef SPARETIME_OPS_DIRECTORY_POLICY_H_
#define SPARETIME_OPS_DIRECTORY_POLICY_H_

#include <cstdint>

#include "sparetime/config/config.h"
#include "sparetime/directory/policy.h"
#include "sparetime/ops/consistency.h"
#include "sparetime/scheduler/idle_policy.h"

namespace sparetime::ops {

scheduler::IdlePolicy IdlePolicyFromDirectory(const directory::EffectivePolicy& policy);
scheduler::IdlePolicy AgentIdlePolicy(const directory::EffectivePolicy& policy,
                           const config::AgentConfig& config);
// sparetimeBandwidthLimit: bytes per second for job I/O, 0 = unlimited.
// The consistency step's settings from the policy (sparetimeConsistencyMode,
// sparetimeMaxFreezeSeconds, sparetimeSnapshotSize); the mode was checked by
// the directory parser, so an unknown one (impossible) falls back to auto.
ConsistencyOptions ConsistencyFromPolicy(const directory::EffectivePolicy& policy);
inline uint64_t JobByteRate(const directory::EffectivePolicy& policy) {
  return policy.bandwidth_limit;
}

}  // namespace sparetime::ops

#endif  // SPARETIME_OPS_DIRECTORY_POLICY_H_
