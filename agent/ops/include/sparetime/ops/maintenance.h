// ops use cases that keep backups healthy: verify, prune, repair. The CLI's
// `verify`, `prune`, `repair` and sparetimed's scheduled jobs of the same
// names call these and only render or log the reports.
//
// Invariants:
//   - Verify first checks the databases the backups rely on (catalog and
//     index: SQLite quick_check, integrity_check with `full`), then reads
//     every chunk of every snapshot asked for once per run (a chunk shared by
//     several snapshots is read once and its verdict reported for each); a
//     damaged manifest or database is a verdict, not an error. A damaged
//     chunk counts once however many snapshots use it, and its report names
//     each of them.
//   - What verify finds damaged is recorded (Backups::RecordDamaged), so the
//     next backup that meets the same content stores it again.
//   - On peers verify reads every replica of every chunk (not only until a
//     good one); a damaged or missing replica is reported and its location
//     record dropped (Backups::DropDamagedReplicas), so the next backup
//     re-sends the chunk and repair copies it from a good replica.
//   - Repair of a local repository verifies everything, stores each damaged
//     chunk again from the source device when one is given and it still
//     holds the chunk's content (the id is recomputed before anything is
//     stored), and lists every snapshot range the rest leave unreadable.
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
  bool full = false;  // SQLite integrity_check instead of quick_check
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

// One damaged chunk and every snapshot (of those verified) that uses it.
struct DamagedChunkUse {
  ChunkId id;
  Status error;  // the chunk's own error (no offset)
  std::vector<std::pair<std::string, uint64_t>> snapshots;  // id, first offset in it
};

struct VerifyBackupsReport {
  std::optional<std::string> database_error;  // catalog.db or index.db failed its check
  std::vector<SnapshotVerdict> snapshots;
  std::vector<DamagedChunkUse> chunks;  // distinct damaged chunks, in first-found order
  // Backups on peers: every damaged or missing replica found (its record
  // dropped), including those of chunks another replica still serves.
  std::vector<DamagedReplica> replicas;
  // Damaged things: distinct chunks, plus one per damaged manifest and one
  // for a damaged database, plus one per replica whose chunk still has a
  // good copy elsewhere.
  uint64_t damaged() const;
  // Replicas of chunks that still have a good copy (not in `chunks`).
  uint64_t replicas_only() const;
};

Result<VerifyBackupsReport> VerifyBackups(Backups& backups, const VerifyRequest& request);
// OK, or kCorruption: how many chunks are damaged, the first one, and what to do.
Status VerifyVerdict(const VerifyBackupsReport& report);

// The directory policy's keep-last/daily/weekly/monthly.
RetentionPolicy RetentionFromPolicy(const directory::EffectivePolicy& policy);

// Forgets what `policy` drops and frees the chunks nothing references.
Result<PruneReport> Prune(Backups& backups, const RetentionPolicy& policy,
                          const PruneOptions& options);

struct RepairRequest {
  // Local repository: the device (or image file) the snapshots were taken
  // of; damaged chunks whose content it still holds are stored again.
  std::string source;
  const std::atomic<bool>* cancel = nullptr;
};

// Backups on peers: re-replicates chunks between peers (Backups::Repair).
// A local repository: see the invariants above.
Result<RepairReport> Repair(Backups& backups, const RepairRequest& request = {});

}  // namespace sparetime::ops

#endif  // SPARETIME_OPS_MAINTENANCE_H_
