// PackIndex: index.db of a PackStore (see pack_index.h, docs/storage.md).
//
// Invariants: every statement is prepared once and used under mu_; writes
// happen in BEGIN IMMEDIATE transactions, so a batch of rows and the
// committed sizes that cover them become visible (and durable) together.
#include "pack_index.h"

#include <cstdio>
#include <cstring>

#include "sparetime/base/bytes.h"

namespace sparetime {

namespace {

constexpr int kSchemaVersion = 1;
constexpr std::string_view kSchema = R"sql(
CREATE TABLE packs(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  committed_size INTEGER NOT NULL);
CREATE TABLE chunks(
  id BLOB PRIMARY KEY,
  pack INTEGER NOT NULL,
  offset INTEGER NOT NULL,
  length INTEGER NOT NULL,
  hash BLOB NOT NULL) WITHOUT ROWID;
)sql";

// Chunks verify found damaged: their chunks row is gone (so a backup that
// meets their content stores them again), and this row says why. Added in
// schema version 1 without a version bump: an older sparetime ignores the
// table and sees the chunk as not stored, which is what it is.
constexpr std::string_view kDamagedSchema = R"sql(
CREATE TABLE IF NOT EXISTS damaged(
  id BLOB PRIMARY KEY,
  error TEXT NOT NULL) WITHOUT ROWID;
)sql";

// packs/NN/PPPPPPPP.pack, NN the low byte of the id, so that no directory
// grows beyond a few thousand packs for a very long time.
std::string PackName(uint64_t id) {
  char name[64];
  std::snprintf(name, sizeof name, "packs/%02x/%08llx.pack", static_cast<unsigned>(id & 0xff),
                static_cast<unsigned long long>(id));
  return name;
}

// The path of pack `id` from its name column: only the exact name the
// scheme gives that id (PackName) is accepted. A damaged or edited index.db
// must not point a read, rewrite or delete at "../x", an absolute path or
// another pack's file.
Result<std::string> PackPath(const std::string& dir, const std::string& db_path, int64_t id,
                             const std::string& name) {
  if (id < 0 || name != PackName(static_cast<uint64_t>(id))) {
    std::string shown = name.size() > 80 ? name.substr(0, 80) + "..." : name;
    return Corruption(db_path + ": pack " + std::to_string(id) + " is listed as \"" + shown +
                      "\", not a pack name (" +
                      (id < 0 ? std::string("packs/NN/PPPPPPPP.pack")
                              : PackName(static_cast<uint64_t>(id))) +
                      "); index.db is damaged or was edited: restore it from a copy");
  }
  return dir + "/" + name;
}

}  // namespace

Result<std::unique_ptr<PackIndex>> PackIndex::Open(const std::string& dir, SqliteDb::Mode mode,
                                                   Env* env) {
  ST_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, SqliteDb::Open(dir + "/index.db", mode, env));
  ST_RETURN_IF_ERROR(db->EnsureSchema(kSchemaVersion, kSchema));
  ST_RETURN_IF_ERROR(db->Exec(kDamagedSchema));
  std::unique_ptr<PackIndex> index(new PackIndex(dir, std::move(db)));
  MutexLock l(index->mu_);
  ST_RETURN_IF_ERROR(index->Prepare());
  return index;
}

Status PackIndex::Prepare() {
  constexpr char kRowColumns[] =
      "SELECT c.id, c.pack, c.offset, c.length, c.hash, p.name "
      "FROM chunks c LEFT JOIN packs p ON p.id = c.pack ";
  ST_ASSIGN_OR_RETURN(contains_, db_->Prepare("SELECT 1 FROM chunks WHERE id = ?"));
  ST_ASSIGN_OR_RETURN(find_, db_->Prepare(std::string(kRowColumns) + "WHERE c.id = ?"));
  ST_ASSIGN_OR_RETURN(
      page_, db_->Prepare(std::string(kRowColumns) + "WHERE c.id > ? ORDER BY c.id LIMIT ?"));
  ST_ASSIGN_OR_RETURN(insert_chunk_,
                      db_->Prepare("INSERT OR IGNORE INTO chunks(id, pack, offset, length, hash) "
                                   "VALUES(?, ?, ?, ?, ?)"));
  ST_ASSIGN_OR_RETURN(set_committed_,
                      db_->Prepare("UPDATE packs SET committed_size = ? WHERE id = ?"));
  ST_ASSIGN_OR_RETURN(delete_chunk_, db_->Prepare("DELETE FROM chunks WHERE id = ?"));
  ST_ASSIGN_OR_RETURN(next_pack_, db_->Prepare("SELECT COALESCE(MAX(id), 0) + 1 FROM packs"));
  ST_ASSIGN_OR_RETURN(add_pack_, db_->Prepare("INSERT INTO packs(id, name, committed_size) "
                                              "VALUES(?, ?, 0)"));
  ST_ASSIGN_OR_RETURN(drop_pack_, db_->Prepare("DELETE FROM packs WHERE id = ?"));
  ST_ASSIGN_OR_RETURN(list_packs_, db_->Prepare("SELECT id, name FROM packs ORDER BY id"));
  ST_ASSIGN_OR_RETURN(get_committed_,
                      db_->Prepare("SELECT committed_size FROM packs WHERE id = ?"));
  ST_ASSIGN_OR_RETURN(count_chunks_,
                      db_->Prepare("SELECT COUNT(*), COALESCE(SUM(length), 0) FROM chunks"));
  ST_ASSIGN_OR_RETURN(count_packs_, db_->Prepare("SELECT COUNT(*) FROM packs"));
  ST_ASSIGN_OR_RETURN(usage_, db_->Prepare(
                                  "SELECT p.id, p.name, p.committed_size, COUNT(c.id), "
                                  "COALESCE(SUM(c.length), 0) FROM packs p LEFT JOIN chunks c "
                                  "ON c.pack = p.id GROUP BY p.id ORDER BY p.id"));
  ST_ASSIGN_OR_RETURN(rows_in_pack_, db_->Prepare(std::string(kRowColumns) +
                                                  "WHERE c.pack = ? ORDER BY c.offset"));
  ST_ASSIGN_OR_RETURN(mark_damaged_, db_->Prepare("INSERT OR IGNORE INTO damaged(id, error) "
                                                  "VALUES(?, ?)"));
  ST_ASSIGN_OR_RETURN(damaged_error_, db_->Prepare("SELECT error FROM damaged WHERE id = ?"));
  ST_ASSIGN_OR_RETURN(list_damaged_, db_->Prepare("SELECT id, error FROM damaged ORDER BY id"));
  ST_ASSIGN_OR_RETURN(heal_, db_->Prepare("DELETE FROM damaged WHERE id = ?"));
  ST_ASSIGN_OR_RETURN(move_row_, db_->Prepare("UPDATE chunks SET pack = ?, offset = ? "
                                              "WHERE id = ? AND pack = ?"));
  return Status::Ok();
}

Result<bool> PackIndex::Contains(const ChunkId& id) {
  MutexLock l(mu_);
  return contains_.Query().Bind(1, id.bytes).Step();
}

Result<bool> PackIndex::ReadRow(SqliteQuery& q, IndexRow& r) {
  ST_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return false;
  std::span<const std::byte> id = q.Blob(0), hash = q.Blob(4);
  if (id.size() != ChunkId::kSize || hash.size() != r.loc.hash.size() || q.Int(2) < 0 ||
      q.Int(3) < 0 || q.Int(3) > UINT32_MAX)
    return Corruption(db_->path() + ": malformed index row for chunk " + ToHex(id) +
                      "; restore index.db from a copy");
  r.id = ChunkId::FromBytes(id.first<ChunkId::kSize>());
  r.pack = static_cast<uint64_t>(q.Int(1));
  r.loc.offset = static_cast<uint64_t>(q.Int(2));
  r.loc.length = static_cast<uint32_t>(q.Int(3));
  std::memcpy(r.loc.hash.data(), hash.data(), hash.size());
  const std::string name = q.Text(5);
  if (q.IsNull(5)) {
    r.loc.pack_path.clear();
  } else {
    ST_ASSIGN_OR_RETURN(r.loc.pack_path, PackPath(dir_, db_->path(), q.Int(1), name));
  }
  return true;
}

Result<std::optional<IndexRow>> PackIndex::Find(const ChunkId& id) {
  MutexLock l(mu_);
  SqliteQuery q = find_.Query();
  q.Bind(1, id.bytes);
  IndexRow r;
  ST_ASSIGN_OR_RETURN(bool found, ReadRow(q, r));
  if (!found) return std::optional<IndexRow>();
  return std::optional<IndexRow>(std::move(r));
}

Result<PackInfo> PackIndex::AddPack() {
  MutexLock l(mu_);
  ST_ASSIGN_OR_RETURN(SqliteTransaction txn, SqliteTransaction::Begin(*db_));
  PackInfo info;
  {
    SqliteQuery q = next_pack_.Query();
    ST_RETURN_IF_ERROR(q.Step().status());
    info.id = static_cast<uint64_t>(q.Int(0));
  }
  const std::string name = PackName(info.id);
  ST_RETURN_IF_ERROR(add_pack_.Query().Bind(1, static_cast<int64_t>(info.id)).Bind(2, name).Run());
  ST_RETURN_IF_ERROR(txn.Commit());
  info.path = dir_ + "/" + name;
  return info;
}

void PackIndex::DropPack(uint64_t id) {
  MutexLock l(mu_);
  // Best effort: a leftover row with committed_size 0 and no file is harmless.
  drop_pack_.Query().Bind(1, static_cast<int64_t>(id)).Run().IgnoreError();
}

Result<std::vector<PackInfo>> PackIndex::ListPacks() {
  MutexLock l(mu_);
  std::vector<PackInfo> packs;
  SqliteQuery q = list_packs_.Query();
  for (;;) {
    ST_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return packs;
    ST_ASSIGN_OR_RETURN(std::string path, PackPath(dir_, db_->path(), q.Int(0), q.Text(1)));
    packs.push_back({static_cast<uint64_t>(q.Int(0)), std::move(path)});
  }
}

Result<uint64_t> PackIndex::CommittedSize(uint64_t pack) {
  MutexLock l(mu_);
  SqliteQuery q = get_committed_.Query();
  q.Bind(1, static_cast<int64_t>(pack));
  ST_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return NotFound(db_->path() + ": pack " + std::to_string(pack) + " is not listed");
  return static_cast<uint64_t>(q.Int(0));
}

Result<uint64_t> PackIndex::Commit(std::span<const IndexEntry> rows,
                                   std::span<const std::pair<uint64_t, uint64_t>> pack_sizes) {
  MutexLock l(mu_);
  ST_ASSIGN_OR_RETURN(SqliteTransaction txn, SqliteTransaction::Begin(*db_));
  uint64_t added = 0;
  for (const IndexEntry& e : rows) {
    ST_RETURN_IF_ERROR(insert_chunk_.Query()
                           .Bind(1, e.id.bytes)
                           .Bind(2, static_cast<int64_t>(e.pack))
                           .Bind(3, static_cast<int64_t>(e.offset))
                           .Bind(4, int64_t{e.length})
                           .Bind(5, e.hash)
                           .Run());
    if (db_->changes() == 0) continue;
    ++added;
    ST_RETURN_IF_ERROR(heal_.Query().Bind(1, e.id.bytes).Run());  // stored again: healed
  }
  for (const auto& [pack, size] : pack_sizes) {
    ST_RETURN_IF_ERROR(set_committed_.Query()
                           .Bind(1, static_cast<int64_t>(size))
                           .Bind(2, static_cast<int64_t>(pack))
                           .Run());
  }
  ST_RETURN_IF_ERROR(txn.Commit());
  return added;
}

Status PackIndex::Remove(std::span<const ChunkId> ids) {
  MutexLock l(mu_);
  ST_ASSIGN_OR_RETURN(SqliteTransaction txn, SqliteTransaction::Begin(*db_));
  for (const ChunkId& id : ids) ST_RETURN_IF_ERROR(delete_chunk_.Query().Bind(1, id.bytes).Run());
  return txn.Commit();
}

Status PackIndex::MarkDamaged(std::span<const DamagedChunk> chunks) {
  MutexLock l(mu_);
  ST_ASSIGN_OR_RETURN(SqliteTransaction txn, SqliteTransaction::Begin(*db_));
  for (const DamagedChunk& c : chunks) {
    ST_RETURN_IF_ERROR(delete_chunk_.Query().Bind(1, c.id.bytes).Run());
    ST_RETURN_IF_ERROR(mark_damaged_.Query().Bind(1, c.id.bytes).Bind(2, c.error).Run());
  }
  return txn.Commit();
}

Status PackIndex::ForgetDamaged(std::span<const ChunkId> ids) {
  if (ids.empty()) return Status::Ok();
  MutexLock l(mu_);
  ST_ASSIGN_OR_RETURN(SqliteTransaction txn, SqliteTransaction::Begin(*db_));
  for (const ChunkId& id : ids) ST_RETURN_IF_ERROR(heal_.Query().Bind(1, id.bytes).Run());
  return txn.Commit();
}

Result<std::optional<std::string>> PackIndex::DamagedError(const ChunkId& id) {
  MutexLock l(mu_);
  SqliteQuery q = damaged_error_.Query();
  q.Bind(1, id.bytes);
  ST_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(q.Text(0));
}

Result<std::vector<DamagedChunk>> PackIndex::ListDamaged() {
  MutexLock l(mu_);
  std::vector<DamagedChunk> out;
  SqliteQuery q = list_damaged_.Query();
  for (;;) {
    ST_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return out;
    std::span<const std::byte> id = q.Blob(0);
    if (id.size() != ChunkId::kSize)
      return Corruption(db_->path() + ": malformed damaged row; restore index.db from a copy");
    out.push_back({ChunkId::FromBytes(id.first<ChunkId::kSize>()), q.Text(1)});
  }
}

Status PackIndex::CheckIntegrity(bool full) {
  MutexLock l(mu_);
  return db_->CheckIntegrity(full);
}

Result<std::vector<PackUsage>> PackIndex::Usage() {
  MutexLock l(mu_);
  std::vector<PackUsage> out;
  SqliteQuery q = usage_.Query();
  for (;;) {
    ST_ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return out;
    PackUsage u;
    ST_ASSIGN_OR_RETURN(std::string path, PackPath(dir_, db_->path(), q.Int(0), q.Text(1)));
    u.pack = {static_cast<uint64_t>(q.Int(0)), std::move(path)};
    u.committed_size = static_cast<uint64_t>(q.Int(2));
    u.live_chunks = static_cast<uint64_t>(q.Int(3));
    u.live_bytes = static_cast<uint64_t>(q.Int(4));
    out.push_back(std::move(u));
  }
}

Result<std::vector<IndexRow>> PackIndex::RowsInPack(uint64_t pack) {
  MutexLock l(mu_);
  std::vector<IndexRow> rows;
  SqliteQuery q = rows_in_pack_.Query();
  q.Bind(1, static_cast<int64_t>(pack));
  for (;;) {
    IndexRow r;
    ST_ASSIGN_OR_RETURN(bool found, ReadRow(q, r));
    if (!found) return rows;
    rows.push_back(std::move(r));
  }
}

Status PackIndex::MoveRows(uint64_t from_pack, std::span<const IndexEntry> moved,
                           std::span<const std::pair<uint64_t, uint64_t>> pack_sizes) {
  MutexLock l(mu_);
  ST_ASSIGN_OR_RETURN(SqliteTransaction txn, SqliteTransaction::Begin(*db_));
  for (const IndexEntry& e : moved) {
    ST_RETURN_IF_ERROR(move_row_.Query()
                           .Bind(1, static_cast<int64_t>(e.pack))
                           .Bind(2, static_cast<int64_t>(e.offset))
                           .Bind(3, e.id.bytes)
                           .Bind(4, static_cast<int64_t>(from_pack))
                           .Run());
  }
  for (const auto& [pack, size] : pack_sizes) {
    ST_RETURN_IF_ERROR(set_committed_.Query()
                           .Bind(1, static_cast<int64_t>(size))
                           .Bind(2, static_cast<int64_t>(pack))
                           .Run());
  }
  return txn.Commit();
}

PackStoreStats PackIndex::Counts() {
  MutexLock l(mu_);
  PackStoreStats s;
  SqliteQuery chunks = count_chunks_.Query();
  if (chunks.Step().ok()) {
    s.chunks = static_cast<uint64_t>(chunks.Int(0));
    s.stored_bytes = static_cast<uint64_t>(chunks.Int(1));
  }
  SqliteQuery packs = count_packs_.Query();
  if (packs.Step().ok()) s.packs = static_cast<uint64_t>(packs.Int(0));
  return s;
}

Result<std::vector<IndexRow>> PackIndex::Page(std::span<const std::byte> after, int limit) {
  MutexLock l(mu_);
  std::vector<IndexRow> rows;
  SqliteQuery q = page_.Query();
  q.Bind(1, after).Bind(2, int64_t{limit});
  for (;;) {
    IndexRow r;
    ST_ASSIGN_OR_RETURN(bool found, ReadRow(q, r));
    if (!found) return rows;
    rows.push_back(std::move(r));
  }
}

}  // namespace sparetime
