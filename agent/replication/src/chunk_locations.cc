// ChunkLocations over SQLite: locations(id BLOB, peer TEXT, hash BLOB),
// primary key (id, peer), so re-adding a row is a no-op.
#include "sparetime/replication/chunk_locations.h"

#include <cstring>

#include "sparetime/base/sqlite_db.h"

namespace sparetime::replication {
namespace {

constexpr int kSchemaVersion = 1;
constexpr char kSchema[] =
    "CREATE TABLE locations(id BLOB NOT NULL, peer TEXT NOT NULL, hash BLOB NOT NULL,"
    " PRIMARY KEY(id, peer)) WITHOUT ROWID;";

ChunkLocation RowOf(const SqliteQuery& q) {
  ChunkLocation row;
  std::span<const std::byte> id = q.Blob(0);
  std::span<const std::byte> hash = q.Blob(2);
  if (id.size() == ChunkId::kSize) std::memcpy(row.id.bytes.data(), id.data(), id.size());
  if (hash.size() == row.hash.size()) std::memcpy(row.hash.data(), hash.data(), hash.size());
  row.peer = q.Text(1);
  return row;
}

Result<std::vector<ChunkLocation>> ReadRows(SqliteQuery& q) {
  std::vector<ChunkLocation> out;
  while (true) {
    ST_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back(RowOf(q));
  }
  return out;
}

}  // namespace

ChunkLocations::~ChunkLocations() = default;

Result<std::unique_ptr<ChunkLocations>> ChunkLocations::Open(const std::string& db_path) {
  ST_ASSIGN_OR_RETURN(auto db, SqliteDb::Open(db_path, SqliteDb::Mode::kCreate));
  ST_RETURN_IF_ERROR(db->EnsureSchema(kSchemaVersion, kSchema));
  std::unique_ptr<ChunkLocations> locations(new ChunkLocations(std::move(db)));
  MutexLock lock(locations->mu_);  // not shared yet; the analysis wants it all the same
  SqliteDb& d = *locations->db_;
  ST_ASSIGN_OR_RETURN(locations->insert_,
                      d.Prepare("INSERT OR REPLACE INTO locations(id, peer, hash) VALUES(?,?,?)"));
  ST_ASSIGN_OR_RETURN(locations->remove_,
                      d.Prepare("DELETE FROM locations WHERE id = ? AND peer = ?"));
  ST_ASSIGN_OR_RETURN(locations->holders_,
                      d.Prepare("SELECT id, peer, hash FROM locations WHERE id = ? ORDER BY peer"));
  ST_ASSIGN_OR_RETURN(locations->all_,
                      d.Prepare("SELECT id, peer, hash FROM locations ORDER BY id, peer"));
  return locations;
}

Status ChunkLocations::Add(std::span<const ChunkLocation> rows) {
  if (rows.empty()) return Status::Ok();
  MutexLock lock(mu_);
  ST_ASSIGN_OR_RETURN(SqliteTransaction tx, SqliteTransaction::Begin(*db_));
  for (const ChunkLocation& row : rows) {
    ST_RETURN_IF_ERROR(insert_.Query()
                           .Bind(1, std::span<const std::byte>(row.id.bytes))
                           .Bind(2, row.peer)
                           .Bind(3, std::span<const std::byte>(row.hash))
                           .Run());
  }
  return tx.Commit();
}

Status ChunkLocations::Remove(const ChunkId& id, const std::string& peer) {
  MutexLock lock(mu_);
  return remove_.Query().Bind(1, std::span<const std::byte>(id.bytes)).Bind(2, peer).Run();
}

Status ChunkLocations::RemoveMany(std::span<const ChunkId> ids, const std::string& peer) {
  if (ids.empty()) return Status::Ok();
  MutexLock lock(mu_);
  ST_ASSIGN_OR_RETURN(SqliteTransaction tx, SqliteTransaction::Begin(*db_));
  for (const ChunkId& id : ids) {
    ST_RETURN_IF_ERROR(remove_.Query().Bind(1, std::span<const std::byte>(id.bytes)).Bind(2, peer).Run());
  }
  return tx.Commit();
}

Result<std::vector<ChunkLocation>> ChunkLocations::Holders(const ChunkId& id) {
  MutexLock lock(mu_);
  SqliteQuery q = holders_.Query();
  q.Bind(1, std::span<const std::byte>(id.bytes));
  return ReadRows(q);
}

Result<std::vector<ChunkLocation>> ChunkLocations::All() {
  MutexLock lock(mu_);
  SqliteQuery q = all_.Query();
  return ReadRows(q);
}

Result<std::pair<uint64_t, uint64_t>> ChunkLocations::ReplicaCounts(uint32_t replicas) {
  MutexLock lock(mu_);
  ST_ASSIGN_OR_RETURN(SqliteStmt stmt,
                      db_->Prepare("SELECT COALESCE(SUM(n >= ?1), 0), COALESCE(SUM(n < ?1), 0) "
                                   "FROM (SELECT COUNT(*) AS n FROM locations GROUP BY id)"));
  SqliteQuery q = stmt.Query();
  q.Bind(1, static_cast<int64_t>(replicas));
  ST_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return std::pair<uint64_t, uint64_t>{0, 0};
  return std::pair<uint64_t, uint64_t>{static_cast<uint64_t>(q.Int(0)), static_cast<uint64_t>(q.Int(1))};
}

}  // namespace sparetime::replication
