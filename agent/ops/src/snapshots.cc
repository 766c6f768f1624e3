// Snapshot use cases: latest-of-one-device selection, restore without
// shrinking the target, forget (see snapshots.h).
#include "sparetime/ops/snapshots.h"

#include <sys/stat.h>

#include <map>

#include "sparetime/imaging/device.h"
#include "sparetime/imaging/disk_layout.h"
#include "sparetime/imaging/manifest.h"

namespace sparetime::ops {
namespace {

bool IsDevice(const Snapshot& s, const std::string& device) {
  return s.device.path == device || s.device.Key() == device;
}

// "/dev/sdb (key ...), /srv/disk.img (key ...)".
std::string DeviceList(const std::vector<Snapshot>& snaps) {
  std::map<std::string, std::string> keys;  // key -> path of the newest
  for (const Snapshot& s : snaps) keys.emplace(s.device.Key(), s.device.path);
  std::string out;
  for (const auto& [key, path] : keys) out += (out.empty() ? "" : ", ") + path + " (" + key + ")";
  return out;
}

}  // namespace

Result<std::vector<Snapshot>> ListSnapshots(Backups& backups) {
  return backups.catalog().ListSnapshots();
}

Result<Snapshot> FindSnapshot(Backups& backups, const std::string& spec,
                              const std::string& device) {
  if (spec != "latest") {
    ST_ASSIGN_OR_RETURN(Snapshot s, backups.catalog().FindSnapshot(spec));
    if (!device.empty() && !IsDevice(s, device)) {
      return InvalidArgument("snapshot " + s.id + " is of " + s.device.path + ", not " + device +
                             "; leave out --device or name a snapshot of " + device);
    }
    return s;
  }
  ST_ASSIGN_OR_RETURN(std::vector<Snapshot> all, backups.catalog().ListSnapshots());
  if (all.empty()) return backups.catalog().FindSnapshot(spec);  // its "no snapshots yet"
  if (!device.empty()) {
    const Snapshot* newest = nullptr;
    for (const Snapshot& s : all) {
      if (IsDevice(s, device) && (newest == nullptr || s.time > newest->time)) newest = &s;
    }
    if (newest == nullptr) {
      return NotFound("no snapshot of device " + device + " in " + backups.where() +
                      "; the backups hold " + DeviceList(all));
    }
    return *newest;
  }
  const Snapshot* newest = &all.front();
  for (const Snapshot& s : all) {
    if (s.device.Key() != all.front().device.Key()) {
      return InvalidArgument("'latest' is ambiguous: " + backups.where() +
                             " holds snapshots of several devices: " + DeviceList(all) +
                             "; pass --device PATH (or a snapshot id)");
    }
    if (s.time > newest->time) newest = &s;
  }
  return *newest;
}

Result<PartitionTable> SnapshotPartitions(Backups& backups, const Snapshot& snap) {
  ST_ASSIGN_OR_RETURN(Manifest manifest,
                      LoadManifest(snap.manifest_root, backups.codec(), backups.source()));
  return SnapshotPartitions(manifest, backups.codec(), backups.source());
}

namespace {

std::string PartitionList(const PartitionTable& t) {
  std::string out;
  for (const Partition& p : t.partitions) {
    out += (out.empty() ? "" : ", ") + std::to_string(p.number) + " (" +
           std::to_string(p.size) + " bytes at " + std::to_string(p.offset) + ")";
  }
  return out.empty() ? "none" : out;
}

}  // namespace

Result<RestoreReport> RestoreSnapshot(Backups& backups, const RestoreRequest& r) {
  RestoreReport report;
  ST_ASSIGN_OR_RETURN(report.snapshot, FindSnapshot(backups, r.snapshot, r.device));
  const Snapshot& snap = report.snapshot;
  Result<Manifest> manifest = LoadManifest(snap.manifest_root, backups.codec(), backups.source());
  if (!manifest.ok()) return manifest.status().WithContext("snapshot " + snap.id);
  if (r.partition > 0) {
    Result<PartitionTable> table = SnapshotPartitions(*manifest, backups.codec(), backups.source());
    if (!table.ok()) {
      return table.status().WithContext("snapshot " + snap.id + ": its partition table cannot "
                                        "be used to restore partition " +
                                        std::to_string(r.partition) +
                                        "; restore the whole disk instead");
    }
    for (const Partition& p : table->partitions) {
      if (p.number == r.partition) report.partition = p;
    }
    if (!report.partition) {
      return NotFound("snapshot " + snap.id + " has no partition " + std::to_string(r.partition) +
                      " (" + SchemeName(table->scheme) + " table; partitions: " +
                      PartitionList(*table) + ")");
    }
    *manifest = WindowManifest(*manifest, report.partition->offset, report.partition->size);
  }
  ST_RETURN_IF_ERROR(backups.Prepare(manifest->chunks));
  const uint64_t wanted = report.partition ? report.partition->size : manifest->size;
  report.image_size = wanted;
  // An existing regular file larger than the image keeps its size (and the
  // bytes past the image) unless truncate was asked for.
  uint64_t open_size = wanted;
  struct stat st {};
  if (!r.truncate && ::stat(r.target.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
      static_cast<uint64_t>(st.st_size) > open_size) {
    open_size = static_cast<uint64_t>(st.st_size);
  }
  Result<std::unique_ptr<RestoreTarget>> opened = OpenRestoreTarget(
      r.target, open_size,
      {.zero_holes = r.zero_holes, .direct_io = !r.buffered && !report.partition});
  if (!opened.ok() && report.partition) {
    return opened.status().WithContext("partition " + std::to_string(r.partition) + " of snapshot " +
                                       snap.id + " is " + std::to_string(wanted) + " bytes");
  }
  ST_RETURN_IF_ERROR(opened.status());
  std::unique_ptr<RestoreTarget> target = std::move(*opened);
  report.target_size = target->size();
  std::unique_ptr<RestoreTarget> window;
  if (report.partition) {
    window = WindowTarget(*target, report.partition->offset, wanted, manifest->size);
  }
  RestoreOptions options{.progress = r.progress, .cancel = r.cancel};
  options.keep_going = r.keep_going;
  Result<RestoreStats> stats = Restore(*manifest, backups.codec(), backups.source(),
                                       window ? *window : *target, options);
  if (!stats.ok()) {
    return stats.status().WithContext("restore of snapshot " + snap.id + " to " + r.target);
  }
  report.stats = *stats;
  if (!report.partition && report.target_size > report.image_size) {
    target.reset();  // closed: the GPT fix-up opens the target itself
    Result<bool> moved = RelocateGpt(r.target, report.image_size);
    if (!moved.ok()) {
      return moved.status().WithContext("snapshot " + snap.id + " is restored to " + r.target +
                                        " but its backup GPT was not moved to the end");
    }
    report.gpt_moved = *moved;
  }
  return report;
}

Result<Snapshot> ForgetSnapshot(Backups& backups, const std::string& spec) {
  ST_ASSIGN_OR_RETURN(Snapshot snap, backups.catalog().FindSnapshot(spec));
  ST_RETURN_IF_ERROR(backups.catalog().ForgetSnapshot(snap.id));
  ST_RETURN_IF_ERROR(backups.Commit());
  return snap;
}

}  // namespace sparetime::ops
