// PeerSet: the owner's chunks stored on its peers — a ChunkSink and a
// ChunkSource over authenticated sessions (agent/peer), so the imager,
// restorer and verifier run unchanged against peers.
//
// Put: a chunk not held yet goes to `replicas` peers ranked by weighted
// rendezvous hashing over the live peers (placement.h, weighted by the free
// capacity each offers, spread over sites). Put only queues: every peer has
// an upload thread that batches chunks into PutChunks requests and keeps
// several in flight, under an optional token-bucket byte-rate limit; memory
// is bounded by `max_inflight_bytes` (Put waits). A peer that fails (refused,
// full, dead, link cut) is retried with backoff, then given up for this run;
// its chunks go to the next candidates. Flush waits for every queued chunk:
// OK once each has at least one durable replica (peers flush before they
// acknowledge) — the acknowledged replicas are then recorded in
// ChunkLocations. A chunk no peer took makes Flush fail (kUnavailable,
// naming the peers and why), so the imager never journals it.
//
// Get: tries the chunk's holders (recorded, or found by Locate), starting at
// a different replica for different chunks so parallel reads spread over the
// peers; each reply is checked against the recorded hash, and with the
// `verify` hook (the AEAD) when there is no record or the hash differs — a
// peer keeps the first copy of a chunk it got, and the owner may have sealed
// the same chunk again since; a copy that passes replaces the stale record. A
// missing or damaged replica is skipped for the next one and reported.
//
// Damaged replicas (issue 26): a copy that fails its check, or a holder
// that says it lacks a chunk its row says it holds, is remembered;
// DropDamagedReplicas drops those rows and tells each holder of a damaged
// copy to release it (the peer also drops a copy that fails its own hash
// check on Get or Scrub), so the next Put of the chunk, or Repair, stores a
// good copy again. Contains is false for a chunk with fewer than `replicas`
// recorded holders while a live peer without it is left, so a backup that
// meets the chunk's content re-sends it (a chunk damaged on every peer is
// stored again from the source); a re-send that no peer takes leaves the
// chunk under-replicated, not the backup failed. CheckEveryReplica (verify)
// makes Get read every holder, not only until the first good copy.
//
// Prune (ChunkRemover, imaging/prune.h): the stored chunks are the ones
// with location records; removing sends ReleaseChunks (batched) to every
// recorded holder and drops the rows each holder confirmed. A holder that is
// down or fails keeps its rows (and the chunk), so the next prune retries.
//
// Read only: a set opened for another owner's chunks (`owner` non-empty)
// refuses Put, RemoveStored and Repair with kFailedPrecondition (one check).
//
// Inside (agent/replication/src): PeerSet is a façade. UploadQueue
// (upload_queue.h) places, queues, fails over and records; ReplicaReader
// (replica_reader.h) reads, checks and locates; RepairReplicas and
// ReleaseChunks (repair.h) work over the chunk locations; PeerLinks
// (peer_link.h) are the per-peer connections they share. Work that asks
// every peer (Locate, the holder check of Repair, Release) runs on one
// WorkerPool of `workers` threads, however many peers there are.
//
// Thread safety: all methods are safe for concurrent use.
#ifndef SPARETIME_REPLICATION_PEER_SET_H_
#define SPARETIME_REPLICATION_PEER_SET_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/imaging/chunk_store.h"
#include "sparetime/imaging/prune.h"
#include "sparetime/peer/peer_client.h"
#include "sparetime/replication/chunk_locations.h"
#include "sparetime/transport/identity.h"

namespace sparetime::replication {

struct PeerSetPeer {
  peer::PeerEndpoint endpoint;
  std::string site;
  uint64_t free_bytes = 0;  // capacity it offers: the placement weight
};

struct PeerSetOptions {
  // Whose chunks: empty = this agent's own (it may store); another agent's
  // name = read only.
  std::string owner;
  size_t replicas = 2;
  uint64_t bandwidth_limit = 0;  // upload bytes/s over all peers; 0 = unlimited
  size_t max_inflight_bytes = 64u << 20;
  size_t pipeline_depth = 4;     // PutChunks requests in flight per peer
  size_t batch_bytes = 4u << 20;  // sealed bytes per PutChunks request
  size_t read_sessions = 4;      // parallel read sessions per peer
  int reconnect_attempts = 3;    // after a session fails, backoff 200 ms x 2^n
  size_t workers = 4;            // threads for requests to every peer (locate, release, repair)
  peer::PeerClientOptions client;
  // Checks a fetched blob when no hash is recorded for it (e.g. the codec's
  // AEAD check on a bare-metal restore). May be empty.
  std::function<Status(const ChunkId&, std::span<const std::byte>)> verify;
  // One line per event an operator should see (a peer given up, a damaged
  // replica). May be empty.
  std::function<void(const std::string&)> report;
};

// A replica found damaged (its copy failed the check) or missing (the
// holder said it lacks the chunk).
struct DamagedReplica {
  ChunkId id;
  std::string peer;
  bool damaged = false;  // false: missing
  std::string error;
};

struct PeerSetStats {
  uint64_t chunks_sent = 0;       // replicas acknowledged
  uint64_t bytes_sent = 0;
  uint64_t under_replicated = 0;  // chunks stored on fewer than `replicas` peers
  uint64_t bad_replicas = 0;      // missing or damaged replicas skipped on read
  uint64_t unreleased = 0;        // prune: chunks a holder did not confirm releasing
  std::vector<std::string> peers_down;  // "name: why"
};

class PeerSet final : public ChunkSink, public ChunkSource, public ChunkRemover {
 public:
  // `identity` and `locations` must outlive the PeerSet.
  static Result<std::unique_ptr<PeerSet>> Open(const transport::Identity& identity,
                                               std::vector<PeerSetPeer> peers,
                                               ChunkLocations& locations, PeerSetOptions options);
  ~PeerSet() override;

  Result<bool> Contains(const ChunkId& id) override;
  Result<bool> Put(const ChunkId& id, std::span<const std::byte> sealed) override;
  Status Flush() override;
  Result<std::vector<std::byte>> Get(const ChunkId& id) override;

  // ChunkRemover: the recorded chunks (sizes unknown: 0), and releasing
  // chunks on their recorded holders; returns the bytes the holders' usage
  // dropped by. kFailedPrecondition for another owner's (read-only) set.
  Result<std::vector<StoredChunk>> ListStored() override;
  Result<uint64_t> RemoveStored(std::span<const ChunkId> ids) override;

  // Asks every live peer (batched) which of `ids` without a location record
  // it holds, so Get knows where to look for them (holes are skipped).
  Status Locate(std::span<const ChunkId> ids);

  // Re-replicates: every recorded chunk whose live, verified holders are
  // fewer than `replicas` is copied (sealed, never decrypted) from a holder
  // that has it to new peers, all behind one flush; rows of holders that
  // lost it are dropped. kFailedPrecondition for a read-only set.
  struct RepairReport {
    uint64_t chunks = 0;     // distinct chunks checked
    uint64_t copied = 0;     // new replicas made
    uint64_t dropped = 0;    // location rows of holders that lost the chunk
    uint64_t lost = 0;       // chunks no live holder has
    // Holders found that locations.db did not list (copies a caretaker
    // made while this owner was gone), recorded before anything is copied.
    uint64_t learned = 0;
  };
  Result<RepairReport> Repair();

  // A read hold on the owner's `snapshot` (docs/peers.md "Read holds") on
  // every live peer of the set, for `seconds` (0: drop it); while held, the
  // owner's prune cannot release chunks on that peer. One result per peer
  // asked (a down peer is not asked).
  std::vector<std::pair<std::string, Status>> HoldSnapshot(const std::string& snapshot,
                                                           uint32_t seconds);

  // Verify: Get reads and checks every holder of a chunk (see above).
  void CheckEveryReplica(bool on);
  // The replicas found damaged or missing since the last call. In a
  // writable set their location rows are dropped and each holder of a
  // damaged copy is asked to release it (best effort: a holder that does
  // not answer drops it at its own next check); a read-only set only
  // returns them.
  Result<std::vector<DamagedReplica>> DropDamagedReplicas();

  PeerSetStats stats() const;
  // The peers in this set, by name.
  std::vector<std::string> peer_names() const;

  class Impl;

 private:
  explicit PeerSet(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sparetime::replication

#endif  // SPARETIME_REPLICATION_PEER_SET_H_
