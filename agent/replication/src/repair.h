// Repair and release: functions over the chunk locations, for PeerSet's
// Repair and its ChunkRemover side (prune).
//
// RepairReplicas: asks every live recorded holder (in parallel, on the
// pool) which of its recorded chunks it really has; drops the rows of live
// holders that lost a chunk; for every chunk with fewer verified holders
// than `replicas`, fetches a checked copy (sealed, never decrypted) from a
// holder and queues it for the missing replicas. All copies go out behind
// ONE flush: the upload queue hands each link all of its copies at once, so
// a peer receives them in as few PutChunks requests as the batch limits
// allow, and ChunkLocations records them in one transaction. Memory stays
// bounded by max_inflight_bytes (queueing waits for room).
//
// ReleaseChunks: sends ReleaseChunks (batched) to every recorded holder, in
// parallel on the pool, and drops the rows each holder confirmed. A holder
// that is down or fails keeps its rows (and the chunk), so the next prune
// retries; only a failure to update locations.db is an error.
#ifndef SPARETIME_REPLICATION_REPAIR_H_
#define SPARETIME_REPLICATION_REPAIR_H_

#include <atomic>
#include <span>

#include "peer_link.h"
#include "replica_reader.h"
#include "sparetime/base/worker_pool.h"
#include "sparetime/replication/chunk_locations.h"
#include "sparetime/replication/peer_set.h"
#include "upload_queue.h"

namespace sparetime::replication {

// What repair and release work with; everything is owned by the PeerSet.
struct ReplicaTools {
  PeerLinks& links;
  ChunkLocations& locations;
  UploadQueue& uploads;
  ReplicaReader& reader;
  WorkerPool& pool;
  const PeerSetOptions& options;
};

Result<PeerSet::RepairReport> RepairReplicas(const ReplicaTools& tools);

// Returns the bytes the holders' usage dropped by; adds the chunks a holder
// did not confirm releasing to `unreleased`.
Result<uint64_t> ReleaseChunks(const ReplicaTools& tools, std::span<const ChunkId> ids,
                               std::atomic<uint64_t>& unreleased);

}  // namespace sparetime::replication

#endif  // SPARETIME_REPLICATION_REPAIR_H_
