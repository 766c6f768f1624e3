// Verify, prune and repair (see maintenance.h).
#include "sparetime/ops/maintenance.h"

#include <algorithm>
#include <unordered_map>

#include "sparetime/imaging/manifest.h"
#include "sparetime/ops/snapshots.h"

namespace sparetime::ops {

uint64_t VerifyBackupsReport::replicas_only() const {
  uint64_t n = 0;
  for (const DamagedReplica& r : replicas) {
    n += std::none_of(chunks.begin(), chunks.end(),
                      [&](const DamagedChunkUse& c) { return c.id == r.id; });
  }
  return n;
}

uint64_t VerifyBackupsReport::damaged() const {
  uint64_t n = chunks.size() + (database_error ? 1 : 0) + replicas_only();
  for (const SnapshotVerdict& v : snapshots) n += v.manifest_error ? 1 : 0;
  return n;
}

namespace {

// Distinct damaged chunks across the verdicts, each with the snapshots using it.
std::vector<DamagedChunkUse> CollectDamaged(const std::vector<SnapshotVerdict>& verdicts,
                                            const VerifyCache& cache) {
  std::vector<DamagedChunkUse> out;
  std::unordered_map<ChunkId, size_t, ChunkIdHash> at;
  for (const SnapshotVerdict& v : verdicts) {
    for (const BadChunk& b : v.bad) {
      auto [it, fresh] = at.emplace(b.id, out.size());
      if (fresh) {
        std::optional<Status> raw = cache.Find(b.id);
        out.push_back({b.id, raw ? *raw : b.error, {}});
      }
      out[it->second].snapshots.emplace_back(v.snapshot.id, b.offset);
    }
  }
  return out;
}

}  // namespace

// Verify reads every replica while it runs (backups on peers).
class EveryReplica {
 public:
  explicit EveryReplica(Backups& b) : b_(b) { b_.CheckEveryReplica(true); }
  ~EveryReplica() { b_.CheckEveryReplica(false); }
  EveryReplica(const EveryReplica&) = delete;
  EveryReplica& operator=(const EveryReplica&) = delete;

 private:
  Backups& b_;
};

Result<VerifyBackupsReport> VerifyBackups(Backups& backups, const VerifyRequest& r) {
  VerifyBackupsReport report;
  EveryReplica every(backups);
  if (Status db = backups.CheckIntegrity(r.full); !db.ok()) {
    if (db.code() != ErrorCode::kCorruption) return db;
    report.database_error = db.message();
  }
  std::vector<Snapshot> snaps;
  if (r.snapshot) {
    ST_ASSIGN_OR_RETURN(Snapshot one, FindSnapshot(backups, *r.snapshot));
    snaps.push_back(std::move(one));
  } else {
    Result<std::vector<Snapshot>> all = backups.catalog().ListSnapshots();
    if (!all.ok() && report.database_error) return report;  // the verdict says why
    ST_RETURN_IF_ERROR(all.status());
    snaps = std::move(*all);
  }
  VerifyCache cache;  // chunks shared by several snapshots are read once
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
  report.chunks = CollectDamaged(report.snapshots, cache);
  std::vector<DamagedChunk> record;
  for (const DamagedChunkUse& c : report.chunks) {
    if (IsDamagedChunkError(c.error)) record.push_back({c.id, c.error.message()});
  }
  if (!record.empty()) {
    ST_RETURN_IF_ERROR(backups.RecordDamaged(record).WithContext(
        "recording the damaged chunks verify found"));
  }
  ST_ASSIGN_OR_RETURN(report.replicas, backups.DropDamagedReplicas());
  return report;
}

Status VerifyVerdict(const VerifyBackupsReport& report) {
  const uint64_t damaged = report.damaged();
  if (damaged == 0) return Status::Ok();
  if (damaged == report.replicas_only()) {
    const DamagedReplica& r = report.replicas.front();
    return Corruption(std::to_string(damaged) + " damaged or missing replica(s) on peers (first: "
                      "chunk " + r.id.short_hex() + " on " + r.peer + ": " + r.error +
                      "); every chunk still has a good copy, so restores are complete. In the "
                      "owner's own backups their records are dropped: `sparetime repair` on the "
                      "owner copies them from a good replica now, its next backup otherwise");
  }
  std::string first;
  if (report.database_error) first = *report.database_error;
  for (const SnapshotVerdict& v : report.snapshots) {
    if (!first.empty()) break;
    if (v.manifest_error) {
      first = "snapshot " + v.snapshot.id + ": manifest is damaged: " + *v.manifest_error;
    } else if (!v.bad.empty()) {
      first = "snapshot " + v.snapshot.id + ": " + v.bad.front().error.message();
    }
  }
  return Corruption(std::to_string(damaged) +
                    (report.database_error ? " damaged item(s)" : " damaged chunk(s)") +
                    " found (first: " + first +
                    "); those snapshots cannot be fully restored from these backups. The next "
                    "backup of a device that still holds a damaged chunk's data stores it "
                    "again; `sparetime repair` (with --source DEVICE for a local repository) "
                    "does it now; `restore --keep-going` restores the rest");
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


}  // namespace sparetime::ops
