// ChunkLocations: the owner's record of where every chunk lives — which peer
// holds which chunk, with the stored-ciphertext hash (HashBlob) the owner
// computed when it sent it. Reads check a peer's answer against that hash, so
// a replica that was altered is detected without decrypting, and `repair`
// knows what to copy where. An SQLite (WAL) file next to the catalog
// (state_dir/backup/locations.db).
//
// A row is added only after the peer acknowledged a durable store of the
// chunk; rows of a peer that no longer has the chunk are removed by repair,
// and rows of a chunk a peer released by prune.
//
// Thread safety: safe for concurrent use (one connection, serialised).
#ifndef SPARETIME_REPLICATION_CHUNK_LOCATIONS_H_
#define SPARETIME_REPLICATION_CHUNK_LOCATIONS_H_

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "sparetime/base/mutex.h"
#include "sparetime/base/status.h"
#include "sparetime/crypto/chunk_id.h"
#include "sparetime/imaging/chunk_store.h"

#include "sparetime/base/sqlite_db.h"

namespace sparetime::replication {

struct ChunkLocation {
  ChunkId id;
  std::string peer;
  BlobHash hash{};
};

class ChunkLocations {
 public:
  static Result<std::unique_ptr<ChunkLocations>> Open(const std::string& db_path);
  ~ChunkLocations();

  // Adds (or confirms) rows, in one transaction.
  Status Add(std::span<const ChunkLocation> rows) EXCLUDES(mu_);
  Status Remove(const ChunkId& id, const std::string& peer) EXCLUDES(mu_);
  // Removes the rows of `ids` on `peer`, in one transaction (prune, after
  // the peer confirmed releasing them).
  Status RemoveMany(std::span<const ChunkId> ids, const std::string& peer) EXCLUDES(mu_);
  // The peers recorded for `id` (empty when none).
  Result<std::vector<ChunkLocation>> Holders(const ChunkId& id) EXCLUDES(mu_);
  // Every row, ordered by id (for repair).
  Result<std::vector<ChunkLocation>> All() EXCLUDES(mu_);
  // Distinct chunks recorded on at least `replicas` peers (first) and on
  // fewer (second): the replica health the fleet view publishes (one
  // aggregate query, no rows copied).
  Result<std::pair<uint64_t, uint64_t>> ReplicaCounts(uint32_t replicas) EXCLUDES(mu_);

 private:
  explicit ChunkLocations(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}
  Mutex mu_;
  // The connection and its statements; set up by Open before the object is
  // shared, used under mu_ after.
  std::unique_ptr<SqliteDb> db_ PT_GUARDED_BY(mu_);
  SqliteStmt insert_ GUARDED_BY(mu_), remove_ GUARDED_BY(mu_), holders_ GUARDED_BY(mu_),
      all_ GUARDED_BY(mu_);
};

}  // namespace sparetime::replication

#endif  // SPARETIME_REPLICATION_CHUNK_LOCATIONS_H_
