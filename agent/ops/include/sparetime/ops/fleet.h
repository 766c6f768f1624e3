// ops::Fleet: every host of the domain and the state of its backups, from
// the directory alone (what each agent published with its heartbeat:
// directory/fleet_state.h) — `sparetime fleet` renders it. Overdue is the
// host's own effective policy (sparetimeMaxAge), resolved from the same view.
//
// Invariants: a pure function of the view and `now` (no network, no key);
// hosts sorted by name as in the view, devices in the order the agent
// published them; a device never backed up is overdue; a host that has
// published no state yet is listed with `published` false, never dropped.
#ifndef SPARETIME_OPS_FLEET_H_
#define SPARETIME_OPS_FLEET_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sparetime/directory/fleet_state.h"
#include "sparetime/directory/records.h"

namespace sparetime::ops {

struct FleetDevice {
  directory::DeviceBackupState state;
  int64_t age_seconds = -1;  // now - time; -1: never backed up
  bool overdue = false;
};

struct FleetHost {
  std::string name;
  int64_t last_seen = 0;  // Unix seconds; 0: never heartbeated
  uint64_t capacity = 0;
  uint64_t free = 0;  // offered to peers, still free
  int64_t max_age_seconds = 0;  // its policy's sparetimeMaxAge
  std::vector<std::string> policy_devices;  // its policy's sparetimeDevice
  bool published = false;  // it has published a backup state
  std::vector<FleetDevice> devices;
  std::optional<directory::BackupHealth> health;
  bool overdue = false;  // any device overdue
};

struct FleetReport {
  std::vector<FleetHost> hosts;
  std::vector<std::string> warnings;  // entries and values left out (view.warnings)
  size_t overdue_hosts = 0;
};

FleetReport Fleet(const directory::DirectoryView& view, int64_t now);

}  // namespace sparetime::ops

#endif  // SPARETIME_OPS_FLEET_H_
