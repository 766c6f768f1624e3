// ops use cases that keep backups healthy: verify, prune, repair. The CLI's
// `verify`, `prune`, `repair` and sparetimed's scheduled jobs of the same
// names call these and only render or log the reports.
//
// Invariants:
//   - Verify reads every chunk of every snapshot asked for once per run (a
//     chunk shared by several snapshots is read once and its verdict
//     reported for each); a damaged manifest is a verdict, not an error.
//   - Retention from the directory policy is the same mapping everywhere
//     (RetentionFromPolicy).
//
// Room for what comes next (issue 19): `mount` (serve a snapshot as a
// read-only block device) and `drain` (move every chunk off a peer before
// it leaves) are use cases over Backups of this kind; they belong in a
// file of their own here (agent/ops/src/mount.cc, drain.cc), not in the
// CLI or the daemon.
#ifndef SPARETIME_OPS_MAINTENANCE_H_
#define SPARETIME_OPS_MAINTENANCE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "sparetime/base/pause_gate.h"
#include "sparetime/base/status.h"
#include "sparetime/directory/policy.h"
#include "sparetime/imaging/catalog.h"
#include "sparetime/imaging/prune.h"
#include "sparetime/imaging/restorer.h"
#include "sparetime/imaging/retention.h"
#include "sparetime/ops/backups.h"

namespace sparetime::ops {

struct VerifyRequest {
  std::optional<std::string> snapshot;  // one snapshot (id, prefix, "latest"); none: all
  PauseGate* pause = nullptr;
  // Progress of snapshot `index` (of `count`) — per snapshot, as it is read.
  std::function<void(size_t index, size_t count, const Snapshot&, const ProgressInfo&)> progress;
  const std::atomic<bool>* cancel = nullptr;
};

// The verdict on one snapshot.
struct SnapshotVerdict {
  Snapshot snapshot;
  std::optional<std::string> manifest_error;  // the manifest itself is damaged
  uint64_t chunks_checked = 0;  // distinct chunks read and opened for it
  uint64_t chunks_known = 0;    // distinct chunks checked for an earlier snapshot
  std::vector<BadChunk> bad;
  bool ok() const { return !manifest_error && bad.empty(); }
};

struct VerifyBackupsReport {
  std::vector<SnapshotVerdict> snapshots;
  // Damaged chunks (a damaged manifest counts as one).
  uint64_t damaged() const;
};

Result<VerifyBackupsReport> VerifyBackups(Backups& backups, const VerifyRequest& request);
// OK, or kCorruption: how many chunks are damaged, the first one, and what to do.
Status VerifyVerdict(const VerifyBackupsReport& report);

// The directory policy's keep-last/daily/weekly/monthly.
RetentionPolicy RetentionFromPolicy(const directory::EffectivePolicy& policy);

// Forgets what `policy` drops and frees the chunks nothing references.
Result<PruneReport> Prune(Backups& backups, const RetentionPolicy& policy,
                          const PruneOptions& options);

// Re-replicates chunks between peers (Backups::Repair).
Result<RepairReport> Repair(Backups& backups);

}  // namespace sparetime::ops

#endif  // SPARETIME_OPS_MAINTENANCE_H_
