// Verify, prune and repair (see maintenance.h).
#include "sparetime/ops/maintenance.h"

#include "sparetime/imaging/manifest.h"
#include "sparetime/ops/snapshots.h"

namespace sparetime::ops {

uint64_t VerifyBackupsReport::damaged() const {
  uint64_t n = 0;
  for (const SnapshotVerdict& v : snapshots) n += v.bad.size() + (v.manifest_error ? 1 : 0);
  return n;
}

Result<VerifyBackupsReport> VerifyBackups(Backups& backups, const VerifyRequest& r) {
  std::vector<Snapshot> snaps;
  if (r.snapshot) {
    ST_ASSIGN_OR_RETURN(Snapshot one, FindSnapshot(backups, *r.snapshot));
    snaps.push_back(std::move(one));
  } else {
    ST_ASSIGN_OR_RETURN(snaps, backups.catalog().ListSnapshots());
  }
  VerifyCache cache;  // chunks shared by several snapshots are read once
  VerifyBackupsReport report;
  for (size_t i = 0; i < snaps.size(); ++i) {
    SnapshotVerdict verdict;
    verdict.snapshot = snaps[i];
    Result<Manifest> manifest =
        LoadManifest(snaps[i].manifest_root, backups.codec(), backups.source());
    if (!manifest.ok()) {
      verdict.manifest_error = manifest.status().message();
      report.snapshots.push_back(std::move(verdict));
      continue;
    }
    ST_RETURN_IF_ERROR(backups.Prepare(manifest->chunks));
    RestoreOptions options;
    options.pause = r.pause;
    options.cancel = r.cancel;
    if (r.progress) {
      options.progress = [&r, i, n = snaps.size(), &s = snaps[i]](const ProgressInfo& p) {
        r.progress(i, n, s, p);
      };
    }
    ST_ASSIGN_OR_RETURN(VerifyReport checked,
                        Verify(*manifest, backups.codec(), backups.source(), options, &cache));
    verdict.chunks_checked = checked.chunks_checked;
    verdict.chunks_known = checked.chunks_known;
    verdict.bad = std::move(checked.bad);
    report.snapshots.push_back(std::move(verdict));
  }
  return report;
}

Status VerifyVerdict(const VerifyBackupsReport& report) {
  const uint64_t damaged = report.damaged();
  if (damaged == 0) return Status::Ok();
  std::string first;
  for (const SnapshotVerdict& v : report.snapshots) {
    if (v.manifest_error) {
      first = "snapshot " + v.snapshot.id + ": manifest is damaged: " + *v.manifest_error;
    } else if (!v.bad.empty()) {
      first = "snapshot " + v.snapshot.id + ": " + v.bad.front().error.message();
    }
    if (!first.empty()) break;
  }
  return Corruption(std::to_string(damaged) + " damaged chunk(s) found (first: " + first +
                    "); those snapshots cannot be fully restored from these backups: run "
                    "`sparetime verify` for the full list, and `sparetime repair` when the "
                    "peers that held them are back");
}

RetentionPolicy RetentionFromPolicy(const directory::EffectivePolicy& p) {
  return {.keep_last = p.keep_last,
          .keep_daily = p.keep_daily,
          .keep_weekly = p.keep_weekly,
          .keep_monthly = p.keep_monthly};
}

Result<PruneReport> Prune(Backups& backups, const RetentionPolicy& policy,
                          const PruneOptions& options) {
  return backups.Prune(policy, options);
}

Result<RepairReport> Repair(Backups& backups) { return backups.Repair(); }

}  // namespace sparetime::ops
