// Catalog: snapshots and backup progress in SQLite (see catalog.h and
// docs/storage.md for the schema).
//
// Invariants: snapshot ids are 16 lower-case hex digits and unique; a job's
// progress rows exist only with its jobs row and are written in one
// transaction per RecordProgress; one connection, serialised by mu_.
#include "sparetime/imaging/catalog.h"

#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <nlohmann/json.hpp>

#include "catalog_migrate.h"
#include "sparetime/base/bytes.h"
#include "sparetime/base/json_numbers.h"
#include "sparetime/base/clock.h"
#include "sparetime/base/mutex.h"
#include "sparetime/base/sqlite_db.h"

namespace sparetime {

namespace {

constexpr int kSchemaVersion = 3;  // 2: schema-2 device keys, 3: consistency (catalog_migrate.h)
constexpr std::string_view kSchema = R"sql(
CREATE TABLE snapshots(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- insertion order, breaks ties in time
  id TEXT NOT NULL UNIQUE,
  label TEXT NOT NULL,
  time INTEGER NOT NULL,
  device TEXT NOT NULL,                   -- DeviceIdentity::ToJson
  size INTEGER NOT NULL,
  chunk_size INTEGER NOT NULL,
  manifest_root BLOB NOT NULL,
  chunks INTEGER NOT NULL,
  holes INTEGER NOT NULL,
  new_chunks INTEGER NOT NULL,
  new_bytes INTEGER NOT NULL,
  stored_bytes INTEGER NOT NULL,
  resumed_chunks INTEGER NOT NULL,
  seconds REAL NOT NULL,
  consistency TEXT NOT NULL DEFAULT '');  -- Snapshot::consistency
CREATE INDEX snapshots_by_time ON snapshots(time, seq);
CREATE TABLE jobs(
  job_key TEXT PRIMARY KEY,
  started INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE progress(
  job_key TEXT NOT NULL REFERENCES jobs(job_key),
  idx INTEGER NOT NULL,
  id BLOB NOT NULL,
  PRIMARY KEY(job_key, idx)) WITHOUT ROWID;
)sql";

constexpr size_t kIdDigits = 16;
constexpr size_t kMinPrefixDigits = 4;
constexpr int kIdAttempts = 4;  // fresh ids tried before giving up on collisions
constexpr char kListHint[] = "run `sparetime snapshots` to list them";

constexpr char kColumns[] =
    "SELECT id, label, time, device, size, chunk_size, manifest_root, chunks, holes, "
    "new_chunks, new_bytes, stored_bytes, resumed_chunks, seconds, consistency FROM snapshots ";
constexpr char kNewestFirst[] = " ORDER BY time DESC, seq DESC";

bool IsHexDigits(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string NewSnapshotId() {
  std::byte raw[kIdDigits / 2];
  randombytes_buf(raw, sizeof raw);
  return ToHex(raw);
}

}  // namespace

class Catalog::Impl {
 public:
  explicit Impl(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}
  Status Prepare() REQUIRES(mu_);
  Status Insert(const Snapshot& s) REQUIRES(mu_);
  Result<Snapshot> ReadSnapshot(const SqliteQuery& q) REQUIRES(mu_);
  Result<std::vector<Snapshot>> ReadAll(SqliteQuery& q) REQUIRES(mu_);

  Mutex mu_;  // guards everything below
  const std::unique_ptr<SqliteDb> db_ PT_GUARDED_BY(mu_);
  SqliteStmt insert_ GUARDED_BY(mu_), list_ GUARDED_BY(mu_), by_range_ GUARDED_BY(mu_),
      forget_ GUARDED_BY(mu_), load_progress_ GUARDED_BY(mu_), add_job_ GUARDED_BY(mu_),
      add_progress_ GUARDED_BY(mu_), clear_progress_ GUARDED_BY(mu_),
      clear_job_ GUARDED_BY(mu_), journal_ids_ GUARDED_BY(mu_);
};

Status Catalog::Impl::Prepare() {
  ST_ASSIGN_OR_RETURN(
      insert_,
      db_->Prepare(
          "INSERT INTO snapshots(id, label, time, device, size, chunk_size, manifest_root, chunks, "
          "holes, new_chunks, new_bytes, stored_bytes, resumed_chunks, seconds, consistency) "
          "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  ST_ASSIGN_OR_RETURN(list_, db_->Prepare(std::string(kColumns) + kNewestFirst));
  // Ids are hex digits, so [prefix, prefix + "g") holds exactly the ids
  // starting with prefix, and the UNIQUE index on id serves the range.
  ST_ASSIGN_OR_RETURN(
      by_range_, db_->Prepare(std::string(kColumns) + "WHERE id >= ? AND id < ?" + kNewestFirst));
  ST_ASSIGN_OR_RETURN(forget_, db_->Prepare("DELETE FROM snapshots WHERE id = ?"));
  ST_ASSIGN_OR_RETURN(load_progress_,
                      db_->Prepare("SELECT j.started, p.idx, p.id FROM jobs j LEFT JOIN progress p "
                                   "ON p.job_key = j.job_key WHERE j.job_key = ? ORDER BY p.idx"));
  ST_ASSIGN_OR_RETURN(add_job_,
                      db_->Prepare("INSERT OR IGNORE INTO jobs(job_key, started) VALUES(?, ?)"));
  ST_ASSIGN_OR_RETURN(add_progress_, db_->Prepare("INSERT OR REPLACE INTO progress(job_key, idx, "
                                                  "id) VALUES(?, ?, ?)"));
  ST_ASSIGN_OR_RETURN(clear_progress_, db_->Prepare("DELETE FROM progress WHERE job_key = ?"));
  ST_ASSIGN_OR_RETURN(clear_job_, db_->Prepare("DELETE FROM jobs WHERE job_key = ?"));
  ST_ASSIGN_OR_RETURN(journal_ids_, db_->Prepare("SELECT DISTINCT id FROM progress"));
  return Status::Ok();
}

Status Catalog::Impl::Insert(const Snapshot& s) {
  // Replace, not throw, on invalid UTF-8 in a device string.
  const std::string device =
      s.device.ToJson().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  const SnapshotStats& st = s.stats;
  return insert_.Query()
      .Bind(1, s.id)
      .Bind(2, s.label)
      .Bind(3, s.time)
      .Bind(4, device)
      .Bind(5, static_cast<int64_t>(s.size))
      .Bind(6, int64_t{s.chunk_size})
      .Bind(7, s.manifest_root.bytes)
      .Bind(8, static_cast<int64_t>(st.chunks))
      .Bind(9, static_cast<int64_t>(st.holes))
      .Bind(10, static_cast<int64_t>(st.new_chunks))
      .Bind(11, static_cast<int64_t>(st.new_bytes))
      .Bind(12, static_cast<int64_t>(st.stored_bytes))
      .Bind(13, static_cast<int64_t>(st.resumed_chunks))
      .Bind(14, st.seconds)
      .Bind(15, s.consistency)
      .Run();
}

Result<Snapshot> Catalog::Impl::ReadSnapshot(const SqliteQuery& q) {
  Snapshot s;
  s.id = q.Text(0);
  auto damaged = [&](std::string_view what) {
    mu_.AssertHeld();  // called only below, under the lock
    return Corruption(db_->path() + ": snapshot " + s.id + " has " + std::string(what) +
                      "; forget it or restore the catalog from a copy");
  };
  s.label = q.Text(1);
  s.time = q.Int(2);
  nlohmann::json device = nlohmann::json::parse(q.Text(3), nullptr, /*allow_exceptions=*/false);
  if (device.is_discarded()) return damaged("an unreadable device record");
  Result<DeviceIdentity> identity = DeviceIdentity::FromJson(device);
  if (!identity.ok()) return damaged("a bad device record (" + identity.error().message() + ")");
  s.device = std::move(*identity);
  s.size = static_cast<uint64_t>(q.Int(4));
  s.chunk_size = static_cast<uint32_t>(q.Int(5));
  std::span<const std::byte> root = q.Blob(6);
  if (root.size() != ChunkId::kSize) return damaged("a malformed manifest root");
  s.manifest_root = ChunkId::FromBytes(root.first<ChunkId::kSize>());
  s.stats.chunks = static_cast<uint64_t>(q.Int(7));
  s.stats.holes = static_cast<uint64_t>(q.Int(8));
  s.stats.new_chunks = static_cast<uint64_t>(q.Int(9));
  s.stats.new_bytes = static_cast<uint64_t>(q.Int(10));
  s.stats.stored_bytes = static_cast<uint64_t>(q.Int(11));
  s.stats.resumed_chunks = static_cast<uint64_t>(q.Int(12));
  s.stats.seconds = q.Double(13);
  s.consistency = q.Text(14);
  return s;
}

Result<std::vector<Snapshot>> Catalog::Impl::ReadAll(SqliteQuery& q) {
  std::vector<Snapshot> out;
  for (;;) {
    ST_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return out;
    ST_ASSIGN_OR_RETURN(Snapshot s, ReadSnapshot(q));
    out.push_back(std::move(s));
  }
}

Result<std::unique_ptr<Catalog>> Catalog::Open(const std::string& db_path,
                                               CatalogOptions options) {
  if (sodium_init() < 0) return Internal("libsodium failed to initialise");
  ST_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db,
                      SqliteDb::Open(db_path, SqliteDb::Mode::kCreate, options.env));
  ST_RETURN_IF_ERROR(detail::MigrateCatalog(*db, kSchemaVersion).status());
  ST_RETURN_IF_ERROR(db->EnsureSchema(kSchemaVersion, kSchema));
  auto impl = std::make_unique<Impl>(std::move(db));
  MutexLock l(impl->mu_);
  ST_RETURN_IF_ERROR(impl->Prepare());
  return std::unique_ptr<Catalog>(new Catalog(std::move(impl)));
}

Catalog::Catalog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Catalog::~Catalog() = default;

Result<Snapshot> Catalog::AddSnapshot(Snapshot snapshot) {
  MutexLock l(impl_->mu_);
  if (!snapshot.id.empty()) {
    if (snapshot.id.size() != kIdDigits || !IsHexDigits(snapshot.id))
      return InvalidArgument("snapshot id '" + snapshot.id + "' is not " +
                             std::to_string(kIdDigits) + " lower-case hex digits");
    Status st = impl_->Insert(snapshot);
    if (st.code() == ErrorCode::kAlreadyExists)
      return AlreadyExists("snapshot " + snapshot.id + " is already in " + impl_->db_->path());
    ST_RETURN_IF_ERROR(st);
    return snapshot;
  }
  for (int attempt = 0; attempt < kIdAttempts; ++attempt) {
    snapshot.id = NewSnapshotId();
    Status st = impl_->Insert(snapshot);
    if (st.ok()) return snapshot;
    if (st.code() != ErrorCode::kAlreadyExists) return st;  // else: an id collision, draw again
  }
  return Internal(impl_->db_->path() + ": could not find an unused snapshot id");
}

Result<std::vector<Snapshot>> Catalog::ListSnapshots() {
  MutexLock l(impl_->mu_);
  SqliteQuery q = impl_->list_.Query();
  return impl_->ReadAll(q);
}

Result<Snapshot> Catalog::FindSnapshot(const std::string& spec,
                                       const std::optional<std::string>& device_key) {
  MutexLock l(impl_->mu_);
  const std::string& db = impl_->db_->path();
  if (spec == "latest") {
    SqliteQuery q = impl_->list_.Query();
    for (;;) {
      ST_ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      ST_ASSIGN_OR_RETURN(Snapshot s, impl_->ReadSnapshot(q));
      if (!device_key || s.device.Key() == *device_key) return s;
    }
    if (device_key)
      return NotFound("no snapshot of device " + *device_key + " in " + db + "; " + kListHint);
    return NotFound("no snapshots in " + db + " yet; " + kListHint);
  }
  std::string prefix = spec;
  std::transform(prefix.begin(), prefix.end(), prefix.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (prefix.size() < kMinPrefixDigits || prefix.size() > kIdDigits || !IsHexDigits(prefix))
    return InvalidArgument("'" + spec +
                           "' names no snapshot: give 'latest', a snapshot id or at "
                           "least " +
                           std::to_string(kMinPrefixDigits) + " of its hex digits; " + kListHint);
  SqliteQuery q = impl_->by_range_.Query();
  q.Bind(1, prefix).Bind(2, prefix + "g");
  ST_ASSIGN_OR_RETURN(std::vector<Snapshot> found, impl_->ReadAll(q));
  if (found.empty()) return NotFound("no snapshot '" + spec + "' in " + db + "; " + kListHint);
  if (found.size() > 1) {
    std::string ids;
    for (const Snapshot& s : found) ids += (ids.empty() ? "" : ", ") + s.id;
    return InvalidArgument("snapshot id prefix '" + spec + "' is ambiguous: it matches " + ids +
                           "; give more digits");
  }
  return std::move(found.front());
}

Status Catalog::CheckIntegrity(bool full) {
  MutexLock l(impl_->mu_);
  return impl_->db_->CheckIntegrity(full);
}

Status Catalog::ForgetSnapshot(const std::string& id) {
  MutexLock l(impl_->mu_);
  ST_RETURN_IF_ERROR(impl_->forget_.Query().Bind(1, id).Run());
  if (impl_->db_->changes() == 0)
    return NotFound("no snapshot '" + id + "' in " + impl_->db_->path() + "; " + kListHint);
  return Status::Ok();
}

Result<std::optional<JobProgress>> Catalog::LoadProgress(const std::string& job_key) {
  MutexLock l(impl_->mu_);
  SqliteQuery q = impl_->load_progress_.Query();
  q.Bind(1, job_key);
  std::optional<JobProgress> progress;
  for (;;) {
    ST_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return progress;
    if (!progress) progress = JobProgress{job_key, q.Int(0), {}};
    if (q.IsNull(1)) continue;  // a job with nothing done yet
    std::span<const std::byte> id = q.Blob(2);
    if (id.size() != ChunkId::kSize)
      return Corruption(impl_->db_->path() + ": progress of job " + job_key + " chunk " +
                        std::to_string(q.Int(1)) + " has a malformed id; clear the job's progress");
    progress->done.emplace_back(static_cast<uint64_t>(q.Int(1)),
                                ChunkId::FromBytes(id.first<ChunkId::kSize>()));
  }
}

Status Catalog::RecordProgress(const std::string& job_key,
                               std::span<const std::pair<uint64_t, ChunkId>> done) {
  MutexLock l(impl_->mu_);
  ST_ASSIGN_OR_RETURN(SqliteTransaction txn, SqliteTransaction::Begin(*impl_->db_));
  ST_RETURN_IF_ERROR(impl_->add_job_.Query()
                         .Bind(1, job_key)
                         .Bind(2, ToUnixSeconds(SystemClock().WallNow()))
                         .Run());
  for (const auto& [idx, id] : done) {
    ST_RETURN_IF_ERROR(impl_->add_progress_.Query()
                           .Bind(1, job_key)
                           .Bind(2, static_cast<int64_t>(idx))
                           .Bind(3, id.bytes)
                           .Run());
  }
  return txn.Commit();
}

Status Catalog::ClearProgress(const std::string& job_key) {
  MutexLock l(impl_->mu_);
  ST_ASSIGN_OR_RETURN(SqliteTransaction txn, SqliteTransaction::Begin(*impl_->db_));
  ST_RETURN_IF_ERROR(impl_->clear_progress_.Query().Bind(1, job_key).Run());
  ST_RETURN_IF_ERROR(impl_->clear_job_.Query().Bind(1, job_key).Run());
  return txn.Commit();
}

Result<std::vector<ChunkId>> Catalog::JournalChunkIds() {
  MutexLock l(impl_->mu_);
  SqliteQuery q = impl_->journal_ids_.Query();
  std::vector<ChunkId> ids;
  for (;;) {
    ST_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return ids;
    std::span<const std::byte> id = q.Blob(0);
    if (id.size() != ChunkId::kSize)
      return Corruption(impl_->db_->path() +
                        ": a backup's progress holds a malformed chunk id; clear the job's "
                        "progress (run the backup again from the start) before pruning");
    ids.push_back(ChunkId::FromBytes(id.first<ChunkId::kSize>()));
  }
}

nlohmann::json SnapshotStats::ToJson() const {
  return {{"chunks", chunks},
          {"holes", holes},
          {"new_chunks", new_chunks},
          {"new_bytes", new_bytes},
          {"stored_bytes", stored_bytes},
          {"resumed_chunks", resumed_chunks},
          {"seconds", seconds}};
}

Result<SnapshotStats> SnapshotStats::FromJson(const nlohmann::json& j) {
  ST_RETURN_IF_ERROR(CheckJsonIntegers(j, "snapshot statistics", {"seconds"}));
  try {
    SnapshotStats s;
    s.chunks = j.at("chunks").get<uint64_t>();
    s.holes = j.at("holes").get<uint64_t>();
    s.new_chunks = j.at("new_chunks").get<uint64_t>();
    s.new_bytes = j.at("new_bytes").get<uint64_t>();
    s.stored_bytes = j.at("stored_bytes").get<uint64_t>();
    s.resumed_chunks = j.at("resumed_chunks").get<uint64_t>();
    s.seconds = j.at("seconds").get<double>();
    return s;
  } catch (const nlohmann::json::exception& e) {
    return Corruption(std::string("snapshot statistics: ") + e.what());
  }
}

}  // namespace sparetime
