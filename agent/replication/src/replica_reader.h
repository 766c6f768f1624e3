// ReplicaReader: the PeerSet's read side — Get with replica fallback, the
// check of every fetched copy, and Locate for chunks without records.
//
// Get tries the chunk's holders (recorded in ChunkLocations, or found by
// Locate), starting at a different replica for different chunks so parallel
// reads spread over the peers. Every copy is checked (Check) before it is
// returned; a missing or damaged one is skipped for the next and reported.
//
// Invariants:
//  - a copy is returned only when it matches the recorded hash, or when the
//    verify hook (the AEAD) accepts it; a copy that passes verify with a
//    different hash replaces the stale record;
//  - located_ maps every id a Locate asked about to exactly the live peers
//    that said they hold it (each id asked once per Locate, however often
//    it is listed — a snapshot may hold the same chunk many times);
//  - Locate asks the live peers in parallel on the worker pool, never on
//    more than its threads;
//  - damaged_ holds each (chunk, peer) once whose copy failed its check
//    (kCorruption) or that the peer said it lacks (kNotFound), until
//    TakeDamaged; an unreachable peer (kUnavailable) is never in it;
//  - with check_every_ set (verify), Get reads every holder, not only until
//    the first good copy, so a damaged replica behind a good one is found.
#ifndef SPARETIME_REPLICATION_REPLICA_READER_H_
#define SPARETIME_REPLICATION_REPLICA_READER_H_

#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "peer_link.h"
#include "sparetime/base/mutex.h"
#include "sparetime/base/worker_pool.h"
#include "sparetime/replication/chunk_locations.h"
#include "sparetime/replication/peer_set.h"

namespace sparetime::replication {

class ReplicaReader {
 public:
  // Everything must outlive the reader.
  ReplicaReader(PeerLinks& links, ChunkLocations& locations, const PeerSetOptions& options,
                WorkerPool& pool)
      : links_(links), locations_(locations), options_(options), pool_(pool) {}

  Result<std::vector<std::byte>> Get(const ChunkId& id) EXCLUDES(mu_);
  // Fetches the copy of `holder.peer` (as `owner`; empty = this agent) and
  // checks it against `holder` (its hash may be empty: verify decides).
  Result<std::vector<std::byte>> ReadFrom(const ChunkLocation& holder, const std::string& owner);
  // Which live peers hold the ids without a location record (holes and
  // repeats are skipped).
  Status Locate(std::span<const ChunkId> ids) EXCLUDES(mu_);

  uint64_t bad_replicas() const EXCLUDES(mu_);
  void set_check_every(bool on) EXCLUDES(mu_);
  // The damaged or missing replicas found since the last call (see above).
  std::vector<DamagedReplica> TakeDamaged() EXCLUDES(mu_);

 private:
  // A fetched copy against its record (see the invariants).
  Status Check(const ChunkId& id, const ChunkLocation& record, std::span<const std::byte> blob);
  void Report(const std::string& line) const {
    if (options_.report) options_.report(line);
  }

  PeerLinks& links_;
  ChunkLocations& locations_;
  const PeerSetOptions& options_;
  WorkerPool& pool_;

  mutable Mutex mu_;
  std::unordered_map<ChunkId, std::vector<std::string>, ChunkIdHash> located_ GUARDED_BY(mu_);
  uint64_t bad_replicas_ GUARDED_BY(mu_) = 0;
  bool check_every_ GUARDED_BY(mu_) = false;
  std::vector<DamagedReplica> damaged_ GUARDED_BY(mu_);
  std::set<std::pair<ChunkId, std::string>> damaged_seen_ GUARDED_BY(mu_);
};

}  // namespace sparetime::replication

#endif  // SPARETIME_REPLICATION_REPLICA_READER_H_
