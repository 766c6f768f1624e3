// ops::BackupState: this agent's backup state — per device the last
// successful backup (time, size, snapshot id, duration, bytes sent), the
// replica health of its chunks, its last verify and last error — read from
// the catalog and chunk locations in <state_dir>/backup (no key, no peer
// traffic: cheap enough for every heartbeat). It is the one source of the
// fleet attributes sparetimed publishes (directory/fleet_state.h), of the
// metrics file (MetricsText/WriteMetrics below) and of the "backups" part
// of status.json that `sparetime status` prints.
//
// Invariants: a device the policy lists but the catalog has no snapshot of
// is reported with time 0 ("never"); a missing catalog (no backup yet) is
// not an error. The metrics file is replaced atomically (tmp + rename, the
// tmp name does not end in .prom so node_exporter never reads half a
// file); a missing textfile directory is kNotFound saying what to do,
// and nothing else is written.
#ifndef SPARETIME_OPS_BACKUP_STATE_H_
#define SPARETIME_OPS_BACKUP_STATE_H_

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/directory/fleet_state.h"

namespace sparetime::ops {

struct BackupStateRequest {
  std::string state_dir;             // the agent's; its backups are in state_dir/backup
  std::vector<std::string> devices;  // the policy's sparetimeDevice values, in order
  uint32_t replicas = 2;             // the policy's replica count
  // What only the job scheduler knows (sparetimed's jobs.json).
  int64_t last_verify = 0;
  std::string last_error;
  int64_t last_error_time = 0;
  std::set<std::string> forced;  // devices whose last success ran on a busy box
};

struct BackupStateReport {
  std::vector<directory::DeviceBackupState> devices;  // one per requested device, same order
  directory::BackupHealth health;
};

Result<BackupStateReport> BackupState(const BackupStateRequest& request);

// The Prometheus text exposition format (version 0.0.4) of a report, for
// node_exporter's textfile collector; every sample carries host="...".
// Metric names and meanings: docs/deploy.md "Metrics".
std::string MetricsText(const std::string& host, const BackupStateReport& report, int64_t now,
                        int64_t max_age_seconds);
// Writes `text` to <dir>/sparetime.prom atomically.
Status WriteMetrics(const std::string& dir, const std::string& text);

}  // namespace sparetime::ops

#endif  // SPARETIME_OPS_BACKUP_STATE_H_
