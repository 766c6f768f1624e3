// PackIndex: the PackStore's SQLite index (index.db, WAL) — which pack,
// offset, length and hash hold each chunk, and how much of each pack is
// committed, and which chunks verify found damaged. Schema and rules in
// docs/storage.md.
//
// Env: index.db is opened through the store's Env (SqliteDb's VFS), so its
// writes and fsyncs are subject to injected faults and power cuts.
//
// Thread safety: safe for concurrent use (one connection behind a mutex);
// several processes may share index.db (SQLite serialises the writers).
#ifndef SPARETIME_IMAGING_PACK_INDEX_H_
#define SPARETIME_IMAGING_PACK_INDEX_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "pack_file.h"
#include "sparetime/base/status.h"
#include "sparetime/crypto/chunk_id.h"
#include "sparetime/imaging/pack_store.h"
#include "sparetime/base/mutex.h"
#include "sparetime/base/sqlite_db.h"

namespace sparetime {

// A chunks row.
struct IndexEntry {
  ChunkId id;
  uint64_t pack = 0;
  uint64_t offset = 0;
  uint32_t length = 0;
  BlobHash hash{};
};

// A chunks row joined with its pack's path.
struct IndexRow {
  ChunkId id;
  uint64_t pack = 0;
  RecordLocation loc;  // loc.pack_path is empty when the pack is not listed
};

struct PackInfo {
  uint64_t id = 0;
  std::string path;
};

// A listed pack and what of it the index still uses.
struct PackUsage {
  PackInfo pack;
  uint64_t committed_size = 0;
  uint64_t live_chunks = 0;
  uint64_t live_bytes = 0;  // sum of their blob lengths (record headers not included)
};

class PackIndex {
 public:
  // Opens (or, with kCreate, creates) DIR/index.db and checks its schema.
  static Result<std::unique_ptr<PackIndex>> Open(const std::string& dir, SqliteDb::Mode mode,
                                                 Env* env);

  const std::string& dir() const { return dir_; }

  Result<bool> Contains(const ChunkId& id);
  Result<std::optional<IndexRow>> Find(const ChunkId& id);

  // Registers a new pack with committed_size 0; returns it (path under dir).
  Result<PackInfo> AddPack();
  // Forgets a pack that was never written (best effort).
  void DropPack(uint64_t id);
  Result<std::vector<PackInfo>> ListPacks();
  // kNotFound when the pack is not listed.
  Result<uint64_t> CommittedSize(uint64_t pack);

  // In one transaction: adds `rows` (ids already indexed are left as they
  // are) and sets committed_size of each (pack, size). Returns rows added.
  Result<uint64_t> Commit(std::span<const IndexEntry> rows,
                          std::span<const std::pair<uint64_t, uint64_t>> pack_sizes);
  // Deletes rows, in one transaction.
  Status Remove(std::span<const ChunkId> ids);

  // In one transaction: drops the chunks rows of `chunks` and records them
  // as damaged (a later Commit of the same id heals it: drops the record).
  Status MarkDamaged(std::span<const DamagedChunk> chunks);
  // Why `id` was recorded damaged; none when it was not (or was healed).
  Result<std::optional<std::string>> DamagedError(const ChunkId& id);
  Result<std::vector<DamagedChunk>> ListDamaged();
  // Deletes the damaged records of `ids`, in one transaction (prune).
  Status ForgetDamaged(std::span<const ChunkId> ids);
  // SQLite quick_check (full: integrity_check) of index.db.
  Status CheckIntegrity(bool full);

  // Every listed pack with its live chunks and bytes (for repack).
  Result<std::vector<PackUsage>> Usage();
  // The rows in `pack`, in file order.
  Result<std::vector<IndexRow>> RowsInPack(uint64_t pack);
  // In one transaction: points each row of `moved` that is still in
  // `from_pack` at its new pack and offset, and sets committed_size of each
  // (pack, size).
  Status MoveRows(uint64_t from_pack, std::span<const IndexEntry> moved,
                  std::span<const std::pair<uint64_t, uint64_t>> pack_sizes);

  // Indexed chunks, their total length, and listed packs. Zero on errors.
  PackStoreStats Counts();
  // Up to `limit` rows with ids greater than `after` (the empty blob sorts
  // first), in id order.
  Result<std::vector<IndexRow>> Page(std::span<const std::byte> after, int limit);

 private:
  PackIndex(std::string dir, std::unique_ptr<SqliteDb> db)
      : dir_(std::move(dir)), db_(std::move(db)) {}
  Status Prepare() REQUIRES(mu_);
  // Steps `q` and reads the row into `r`; false when there are no more.
  Result<bool> ReadRow(SqliteQuery& q, IndexRow& r) REQUIRES(mu_);

  const std::string dir_;
  Mutex mu_;  // guards db_ and the statements
  const std::unique_ptr<SqliteDb> db_ PT_GUARDED_BY(mu_);
  SqliteStmt contains_ GUARDED_BY(mu_), find_ GUARDED_BY(mu_), insert_chunk_ GUARDED_BY(mu_),
      set_committed_ GUARDED_BY(mu_), delete_chunk_ GUARDED_BY(mu_), next_pack_ GUARDED_BY(mu_),
      add_pack_ GUARDED_BY(mu_), drop_pack_ GUARDED_BY(mu_), list_packs_ GUARDED_BY(mu_),
      get_committed_ GUARDED_BY(mu_), count_chunks_ GUARDED_BY(mu_),
      count_packs_ GUARDED_BY(mu_), page_ GUARDED_BY(mu_), usage_ GUARDED_BY(mu_),
      rows_in_pack_ GUARDED_BY(mu_), move_row_ GUARDED_BY(mu_), mark_damaged_ GUARDED_BY(mu_),
      damaged_error_ GUARDED_BY(mu_), list_damaged_ GUARDED_BY(mu_), heal_ GUARDED_BY(mu_);
};

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_PACK_INDEX_H_
