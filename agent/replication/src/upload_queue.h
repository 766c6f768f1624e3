// UploadQueue: the PeerSet's write side — placement, the pending-upload
// table, failover and the acknowledged rows waiting for Flush.
//
// A chunk is queued with the number of replicas it still wants and the
// peers that already hold it (repair). Its candidates are RankPeers over the
// set's links; NextCandidate is the one place that picks the next one (not
// down, not tried yet), both for the first targets and after a failure.
//
// Invariants (all under mu_):
//  - a chunk is in pending_ from Queue until its last upload completes;
//    outstanding == uploads queued or in flight for it, and it leaves
//    pending_ exactly when outstanding drops to 0;
//  - inflight_bytes_ == the sealed bytes of pending_; Queue waits while a
//    new chunk would exceed max_inflight_bytes (unless nothing is pending),
//    handing the undispatched uploads to their links first so room appears;
//  - every acknowledged replica is one row in acked_rows_ (and its id in
//    unflushed_) until Flush records it in ChunkLocations;
//  - a chunk whose every upload failed, and that no peer held before, is
//    one line in failures_, reported by the next Flush (one that has
//    holders counts as under-replicated instead);
//  - uploads_ holds uploads chosen but not yet handed to their link;
//    Dispatch hands them over outside mu_, all of one link's at once.
// Lock order: mu_ before a PeerLink's lock (down()); links call OnDone
// without holding theirs.
#ifndef SPARETIME_REPLICATION_UPLOAD_QUEUE_H_
#define SPARETIME_REPLICATION_UPLOAD_QUEUE_H_

#include <condition_variable>
#include <deque>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "peer_link.h"
#include "sparetime/base/mutex.h"
#include "sparetime/replication/chunk_locations.h"
#include "sparetime/replication/peer_set.h"

namespace sparetime::replication {

class UploadQueue {
 public:
  struct Counters {
    uint64_t chunks_sent = 0;       // replicas acknowledged
    uint64_t bytes_sent = 0;
    uint64_t under_replicated = 0;  // chunks stored on fewer replicas than wanted
  };

  // `links` and `locations` must outlive the queue; the links report every
  // upload's completion to OnDone.
  UploadQueue(PeerLinks& links, ChunkLocations& locations, const PeerSetOptions& options)
      : links_(links), locations_(locations), options_(options) {}

  // A chunk queued, or acknowledged and not yet flushed.
  bool Holds(const ChunkId& id) const EXCLUDES(mu_);

  // Queues `sealed` to `want` more peers than `holders` (which keep theirs)
  // and hands the uploads to their links. kUnavailable when no live
  // candidate is left. A chunk already queued (or, without holders,
  // acknowledged and not flushed) is not queued again: false, decided under
  // the lock, so of two racing callers exactly one gets true.
  Result<bool> Place(const ChunkId& id, std::shared_ptr<const std::vector<std::byte>> sealed,
                     const std::vector<std::string>& holders, size_t want) EXCLUDES(mu_);
  // Like Place, but keeps the uploads until Dispatch (or until room is
  // needed), so many chunks go out in as few requests as possible.
  Result<bool> Queue(const ChunkId& id, std::shared_ptr<const std::vector<std::byte>> sealed,
                     const std::vector<std::string>& holders, size_t want) EXCLUDES(mu_);
  void Dispatch() EXCLUDES(mu_);

  // Waits for every queued chunk, records the acknowledged replicas in
  // ChunkLocations (one transaction) and reports chunks no peer took.
  Status Flush() EXCLUDES(mu_);

  // A link finished an upload (any thread).
  void OnDone(PeerLink& link, const ChunkId& id, const Status& status) EXCLUDES(mu_);

  Counters counters() const EXCLUDES(mu_);

 private:
  // One chunk on its way to its replicas.
  struct Pending {
    std::shared_ptr<const std::vector<std::byte>> sealed;
    BlobHash hash{};
    std::vector<size_t> ranking;  // link indices, best first
    size_t next = 0;              // next ranking entry to consider
    size_t want = 0;              // replicas wanted in total
    bool held_elsewhere = false;  // queued with holders: no taker is under-replication, not failure
    size_t outstanding = 0;       // uploads queued or in flight
    std::set<size_t> tried;       // links sent to (or holding it already)
    std::vector<std::string> acked;
    std::string errors;
  };

  bool AlreadyQueued(const ChunkId& id, const std::vector<std::string>& holders) const REQUIRES(mu_);
  bool HasRoom(size_t bytes) const REQUIRES(mu_);
  // The next ranked link that is not down and has not had the chunk, marked
  // tried; null when none is left.
  PeerLink* NextCandidate(Pending& p) REQUIRES(mu_);

  PeerLinks& links_;
  ChunkLocations& locations_;
  const PeerSetOptions& options_;

  mutable Mutex mu_;
  std::condition_variable_any space_cv_, idle_cv_;
  std::unordered_map<ChunkId, Pending, ChunkIdHash> pending_ GUARDED_BY(mu_);
  std::deque<std::pair<PeerLink*, Upload>> uploads_ GUARDED_BY(mu_);
  size_t inflight_bytes_ GUARDED_BY(mu_) = 0;
  std::vector<ChunkLocation> acked_rows_ GUARDED_BY(mu_);
  std::unordered_set<ChunkId, ChunkIdHash> unflushed_ GUARDED_BY(mu_);
  std::vector<std::string> failures_ GUARDED_BY(mu_);
  Counters counters_ GUARDED_BY(mu_);
};

}  // namespace sparetime::replication

#endif  // SPARETIME_REPLICATION_UPLOAD_QUEUE_H_
