// Catalog schema migrations: schema 1 -> 2 re-keys device identities (see
// catalog_migrate.h for what is re-keyed, what stays a legacy key, and when a
// legacy group counts as ambiguous).
//
// Invariants: one transaction for the whole migration including the
// schema_version bump; a legacy row's Key() is exactly its schema-1 key; a
// re-keyed row never takes another device's partition/loop fields (they come
// from the live device only when its schema-1 key equals the stored one);
// loop devices are never re-keyed from the live system.
#include "catalog_migrate.h"

#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <vector>

namespace sparetime::detail {
namespace {

namespace fs = std::filesystem;

constexpr int kDeviceKeySchema = 2;     // 1 -> 2: device keys
constexpr int kConsistencySchema = 3;  // 2 -> 3: snapshots.consistency

// `path` made absolute-canonical without requiring it to exist.
std::string CanonicalFilePath(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(path, ec);
  return ec ? fs::path(path).lexically_normal().string() : p.string();
}

struct Row {
  int64_t seq = 0;
  DeviceIdentity device;
  bool changed = false;
};

// Fills `d`'s schema-2 fields from what was stored plus the live device at
// its path; false when its schema-2 key cannot be told.
bool Rekey(DeviceIdentity& d, const DeviceProbe& probe) {
  if (d.kind == "file") {
    if (!fs::path(d.path).is_absolute()) return false;
    d.real_path = CanonicalFilePath(d.path);
    return true;
  }
  if (!d.backing_file.empty()) return false;  // a loop: offset unknown, attachment transient
  Result<DeviceIdentity> live = probe(d.path);
  if (live.ok() && live->kind == "block" && live->backing_file.empty() &&
      SchemaOneKey(*live) == SchemaOneKey(d)) {
    d.partition = live->partition;
    d.start = live->start;
    d.part_uuid = live->part_uuid;
    return true;
  }
  // Without a hardware identity the key is the path, as it was in schema 1
  // (minus the fs UUID); with one, a gone or changed disk cannot be told.
  return d.wwid.empty() && d.serial.empty();
}

Result<std::vector<Row>> ReadRows(SqliteDb& db) {
  ST_ASSIGN_OR_RETURN(SqliteStmt list, db.Prepare("SELECT seq, device FROM snapshots ORDER BY seq"));
  SqliteQuery q = list.Query();
  std::vector<Row> rows;
  for (;;) {
    ST_ASSIGN_OR_RETURN(bool more, q.Step());
    if (!more) return rows;
    nlohmann::json j = nlohmann::json::parse(q.Text(1), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) continue;  // the reader reports it, naming the snapshot
    Result<DeviceIdentity> d = DeviceIdentity::FromJson(j);
    if (!d.ok()) continue;
    rows.push_back({q.Int(0), std::move(*d), false});
  }
}

Status MigrateSnapshots(SqliteDb& db, const DeviceProbe& probe, MigrationReport& report) {
  ST_ASSIGN_OR_RETURN(std::vector<Row> rows, ReadRows(db));
  std::map<std::string, std::vector<Row*>> legacy;  // schema-1 key -> rows keeping it
  for (Row& r : rows) {
    const std::string old_key = SchemaOneKey(r.device);
    if (Rekey(r.device, probe)) {
      ++report.rekeyed;
    } else {
      r.device.legacy_key = old_key;
      legacy[old_key].push_back(&r);
      ++report.legacy;
    }
    r.changed = true;  // every row gains the schema-2 fields
  }
  for (auto& [key, group] : legacy) {
    std::set<std::string> paths;
    bool loop = false;
    for (const Row* r : group) {
      paths.insert(r->device.path);
      loop = loop || !r->device.backing_file.empty();
    }
    if (group.size() < 2 || (paths.size() < 2 && !loop)) continue;
    for (Row* r : group) r->device.legacy_ambiguous = true;
    report.ambiguous += group.size();
  }
  ST_ASSIGN_OR_RETURN(SqliteStmt update, db.Prepare("UPDATE snapshots SET device = ? WHERE seq = ?"));
  for (const Row& r : rows) {
    if (!r.changed) continue;
    const std::string json =
        r.device.ToJson().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    ST_RETURN_IF_ERROR(update.Query().Bind(1, json).Bind(2, r.seq).Run());
  }
  return Status::Ok();
}

// A schema-1 job key: <schema-1 device key>:path=<path>:chunk=<bytes>.
struct OldJobKey {
  std::string device_key, path, chunk;
};

std::optional<OldJobKey> ParseJobKey(const std::string& key) {
  const size_t chunk = key.rfind(":chunk=");
  if (chunk == std::string::npos) return std::nullopt;
  const size_t path = key.rfind(":path=", chunk);
  if (path == std::string::npos) return std::nullopt;
  return OldJobKey{key.substr(0, path), key.substr(path + 6, chunk - path - 6),
                   key.substr(chunk + 7)};
}

Status MigrateJobs(SqliteDb& db, const DeviceProbe& probe, MigrationReport& report) {
  ST_ASSIGN_OR_RETURN(SqliteStmt list, db.Prepare("SELECT job_key FROM jobs"));
  std::vector<std::string> keys;
  {
    SqliteQuery q = list.Query();
    for (;;) {
      ST_ASSIGN_OR_RETURN(bool more, q.Step());
      if (!more) break;
      keys.push_back(q.Text(0));
    }
  }
  // progress.job_key references jobs: add the new job, move its progress,
  // then drop the old job.
  ST_ASSIGN_OR_RETURN(SqliteStmt add_job,
                      db.Prepare("INSERT OR IGNORE INTO jobs(job_key, started) "
                                 "SELECT ?2, started FROM jobs WHERE job_key = ?1"));
  ST_ASSIGN_OR_RETURN(SqliteStmt move_progress,
                      db.Prepare("UPDATE progress SET job_key = ?2 WHERE job_key = ?1"));
  ST_ASSIGN_OR_RETURN(SqliteStmt drop_job, db.Prepare("DELETE FROM jobs WHERE job_key = ?"));
  for (const std::string& key : keys) {
    std::optional<OldJobKey> old = ParseJobKey(key);
    if (!old) continue;
    Result<DeviceIdentity> live = probe(old->path);
    if (!live.ok() || !live->backing_file.empty() || SchemaOneKey(*live) != old->device_key)
      continue;
    // The imager's job key (imager.cc): Key() + ":path=" + path + ":chunk=" + size.
    const std::string fresh = live->Key() + ":path=" + old->path + ":chunk=" + old->chunk;
    if (fresh == key) continue;
    ST_RETURN_IF_ERROR(add_job.Query().Bind(1, key).Bind(2, fresh).Run());
    if (db.changes() == 0) continue;  // a job under the new key exists already: keep both
    ST_RETURN_IF_ERROR(move_progress.Query().Bind(1, key).Bind(2, fresh).Run());
    ST_RETURN_IF_ERROR(drop_job.Query().Bind(1, key).Run());
    ++report.jobs_rekeyed;
  }
  return Status::Ok();
}

}  // namespace

Result<DeviceIdentity> ProbeLiveDevice(const std::string& path) {
  ST_ASSIGN_OR_RETURN(std::unique_ptr<BlockDevice> dev,
                      OpenBlockDevice(path, {.direct_io = false}));
  return dev->identity();
}

std::string SchemaOneKey(const DeviceIdentity& id) {
  std::string key;
  if (!id.wwid.empty())
    key = "wwid:" + id.wwid;
  else if (!id.serial.empty())
    key = "serial:" + id.serial;
  else if (!id.fs_uuid.empty())
    key = "fsuuid:" + id.fs_uuid;
  else if (!id.backing_file.empty())
    key = "loopfile:" + id.backing_file;
  else
    key = "path:" + id.path;
  return key + ":size=" + std::to_string(id.size);
}

Result<MigrationReport> MigrateCatalog(SqliteDb& db, int target_version,
                                       const DeviceProbe& probe) {
  MigrationReport report;
  ST_ASSIGN_OR_RETURN(SqliteTransaction txn, SqliteTransaction::Begin(db));
  ST_ASSIGN_OR_RETURN(SqliteStmt has_meta,
                      db.Prepare("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"));
  ST_ASSIGN_OR_RETURN(bool exists, has_meta.Query().Step());
  if (!exists) return report;  // fresh: EnsureSchema creates it at the current version
  ST_ASSIGN_OR_RETURN(SqliteStmt get,
                      db.Prepare("SELECT value FROM meta WHERE key='schema_version'"));
  int64_t stored = 0;
  {
    SqliteQuery q = get.Query();
    ST_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return report;  // EnsureSchema reports the damage
    stored = q.Int(0);
  }
  // 1 -> 2 (device keys) and 2 -> 3 (the consistency column) exist; anything
  // else is EnsureSchema's to judge.
  if (stored < kDeviceKeySchema - 1 || stored >= target_version ||
      target_version > kConsistencySchema) {
    return report;
  }
  report.from_version = static_cast<int>(stored);
  Status st;
  if (stored == kDeviceKeySchema - 1) {
    // Each path is probed once, however many snapshots and jobs name it.
    std::map<std::string, Result<DeviceIdentity>> seen;
    const DeviceProbe once = [&](const std::string& path) {
      auto it = seen.find(path);
      if (it == seen.end()) it = seen.emplace(path, probe(path)).first;
      return it->second;
    };
    st = MigrateSnapshots(db, once, report);
    if (st.ok()) st = MigrateJobs(db, once, report);
  }
  if (st.ok() && target_version >= kConsistencySchema) {
    // Snapshots taken before schema 3 did not say how: '' (unknown).
    st = db.Exec("ALTER TABLE snapshots ADD COLUMN consistency TEXT NOT NULL DEFAULT ''");
  }
  if (st.ok()) {
    ST_ASSIGN_OR_RETURN(SqliteStmt put,
                        db.Prepare("UPDATE meta SET value = ? WHERE key='schema_version'"));
    st = put.Query().Bind(1, int64_t{target_version}).Run();
  }
  if (st.ok()) st = txn.Commit();
  if (!st.ok()) {
    return st.WithContext(db.path() + ": migrating the catalog from schema " +
                          std::to_string(stored) + " to " + std::to_string(target_version) +
                          " failed and nothing was changed; fix the cause and run sparetime again");
  }
  return report;
}

}  // namespace sparetime::detail
