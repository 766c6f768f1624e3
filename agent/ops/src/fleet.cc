// ops::Fleet (fleet.h).
#include "sparetime/ops/fleet.h"

#include "sparetime/base/clock.h"
#include "sparetime/directory/policy.h"

namespace sparetime::ops {

FleetReport Fleet(const directory::DirectoryView& view, int64_t now) {
  FleetReport report;
  report.warnings = view.warnings;
  for (const directory::AgentRecord& a : view.agents) {
    directory::EffectivePolicy policy = directory::ResolvePolicy(view, a.name);
    FleetHost h;
    h.name = a.name;
    h.last_seen = a.last_seen ? ToUnixSeconds(*a.last_seen) : 0;
    h.capacity = a.capacity;
    h.free = a.free;
    h.max_age_seconds = policy.max_age_seconds;
    h.policy_devices = policy.devices;
    h.published = !a.backups.empty() || a.health.has_value();
    h.health = a.health;
    for (const directory::DeviceBackupState& s : a.backups) {
      FleetDevice d;
      d.state = s;
      d.age_seconds = s.time > 0 ? now - s.time : -1;
      d.overdue = directory::IsOverdue(s, now, policy.max_age_seconds);
      h.overdue = h.overdue || d.overdue;
      h.devices.push_back(std::move(d));
    }
    report.overdue_hosts += h.overdue ? 1 : 0;
    report.hosts.push_back(std::move(h));
  }
  return report;
}

}  // namespace sparetime::ops
