// Snapshot use cases: latest-of-one-device selection, restore without
// shrinking the target, forget (see snapshots.h).
#include "sparetime/ops/snapshots.h"

#include <sys/stat.h>

#include <map>

#include "sparetime/imaging/device.h"
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

Result<RestoreReport> RestoreSnapshot(Backups& backups, const RestoreRequest& r) {
  RestoreReport report;
  ST_ASSIGN_OR_RETURN(report.snapshot, FindSnapshot(backups, r.snapshot, r.device));
  const Snapshot& snap = report.snapshot;
  Result<Manifest> manifest = LoadManifest(snap.manifest_root, backups.codec(), backups.source());
  if (!manifest.ok()) return manifest.status().WithContext("snapshot " + snap.id);
  ST_RETURN_IF_ERROR(backups.Prepare(manifest->chunks));
  report.image_size = manifest->size;
  // An existing regular file larger than the image keeps its size (and the
  // bytes past the image) unless truncate was asked for.
  uint64_t open_size = manifest->size;
  struct stat st {};
  if (!r.truncate && ::stat(r.target.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
      static_cast<uint64_t>(st.st_size) > open_size) {
    open_size = static_cast<uint64_t>(st.st_size);
  }
  ST_ASSIGN_OR_RETURN(std::unique_ptr<RestoreTarget> target,
                      OpenRestoreTarget(r.target, open_size,
                                        {.zero_holes = r.zero_holes, .direct_io = !r.buffered}));
  report.target_size = target->size();
  RestoreOptions options{.progress = r.progress, .cancel = r.cancel};
  options.keep_going = r.keep_going;
  Result<RestoreStats> stats =
      Restore(*manifest, backups.codec(), backups.source(), *target, options);
  if (!stats.ok()) {
    return stats.status().WithContext("restore of snapshot " + snap.id + " to " + r.target);
  }
  report.stats = *stats;
  return report;
}

Result<Snapshot> ForgetSnapshot(Backups& backups, const std::string& spec) {
  ST_ASSIGN_OR_RETURN(Snapshot snap, backups.catalog().FindSnapshot(spec));
  ST_RETURN_IF_ERROR(backups.catalog().ForgetSnapshot(snap.id));
  ST_RETURN_IF_ERROR(backups.Commit());
  return snap;
}

}  // namespace sparetime::ops
