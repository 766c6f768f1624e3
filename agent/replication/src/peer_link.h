// PeerLink: the PeerSet's connection to one peer. An upload thread batches
// queued chunks into pipelined PutChunks requests; a small pool of read
// sessions serves Get and Has from any thread. A failed session is retried
// with backoff (200 ms, doubling) up to `reconnect_attempts` times; after
// that the link is down for the rest of the run: queued and later uploads
// complete with its reason at once, so the PeerSet places them elsewhere.
//
// Invariants:
//  - every upload completes exactly once through `on_done` (on the upload
//    thread, or on the caller's thread when the link is down or stopped),
//    and on_done is never called with mu_ held;
//  - uploads handed over together (EnqueueMany) are queued atomically, so
//    the upload thread sends them in as few requests as batch_bytes and
//    kMaxChunksPerPut allow;
//  - Stop (and the destructor) joins the thread; uploads still queued
//    complete as kCancelled, and a stopped link counts as down.
//
// PeerLinks: the set's links in directory order with their placement
// weights; index i of links and placement is the same peer. Fixed after
// construction, so it is read without a lock.
#ifndef SPARETIME_REPLICATION_PEER_LINK_H_
#define SPARETIME_REPLICATION_PEER_LINK_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "sparetime/base/mutex.h"
#include "sparetime/base/token_bucket.h"
#include "sparetime/replication/peer_set.h"
#include "sparetime/replication/placement.h"

namespace sparetime::replication {

struct Upload {
  ChunkId id;
  std::shared_ptr<const std::vector<std::byte>> sealed;
};

class PeerLink {
 public:
  using DoneFn = std::function<void(PeerLink& link, const ChunkId& id, const Status& status)>;

  PeerLink(PeerSetPeer peer, const transport::Identity& identity, const PeerSetOptions& options,
           TokenBucket* bucket, DoneFn on_done);
  ~PeerLink();
  PeerLink(const PeerLink&) = delete;
  PeerLink& operator=(const PeerLink&) = delete;

  const PeerSetPeer& peer() const { return peer_; }
  const std::string& name() const { return peer_.endpoint.name; }
  bool down() const EXCLUDES(mu_);
  std::string down_reason() const EXCLUDES(mu_);

  void Enqueue(Upload upload) EXCLUDES(mu_);
  void EnqueueMany(std::vector<Upload> uploads) EXCLUDES(mu_);
  // Joins the upload thread and cancels what is queued. Idempotent.
  void Stop() EXCLUDES(mu_);

  Result<std::vector<std::byte>> Get(const std::string& owner, const ChunkId& id);
  Result<std::vector<bool>> Has(const std::string& owner, std::span<const ChunkId> ids);
  // Prune: drops this agent's copies of `ids` (at most kMaxIdsPerBatch);
  // returns how many the peer held.
  Result<uint32_t> Release(std::vector<ChunkId> ids);
  // What the peer holds for this agent.
  Result<transport::StatsReply> Stats();
  // A read hold on `owner`'s `snapshot` for `seconds` (0: drop it).
  Status Hold(const std::string& owner, const std::string& snapshot, uint32_t seconds);

 private:
  void UploadLoop() EXCLUDES(mu_);
  // Sends and collects batches on `client` until the queue is empty; the
  // first session error is returned with the unfinished uploads put back.
  Status Drain(peer::PeerClient& client) EXCLUDES(mu_);
  Result<std::unique_ptr<peer::PeerClient>> ConnectWithRetry() EXCLUDES(mu_);
  void MarkDown(const Status& why) EXCLUDES(mu_);
  std::vector<Upload> TakeAll() EXCLUDES(mu_);
  // A read on a pooled session, reconnecting once when the session died.
  template <typename T>
  Result<T> WithReadSession(const std::function<Result<T>(peer::PeerClient&)>& call) EXCLUDES(mu_);

  const PeerSetPeer peer_;
  const transport::Identity& identity_;
  const PeerSetOptions& options_;
  TokenBucket* bucket_;  // may be null
  DoneFn on_done_;

  mutable Mutex mu_;
  std::condition_variable_any cv_;
  std::deque<Upload> queue_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  bool down_ GUARDED_BY(mu_) = false;
  std::string down_reason_ GUARDED_BY(mu_);
  std::vector<std::unique_ptr<peer::PeerClient>> idle_readers_ GUARDED_BY(mu_);
  std::thread uploader_;  // joined by the first Stop()
};

// Asks `link` (in batches of kMaxIdsPerBatch) which of `ids` it holds for
// `owner` and calls `held` for each one it does; stops at the first failed
// batch, whose error it returns (earlier batches' answers are kept).
Status ForEachHeld(PeerLink& link, const std::string& owner, std::span<const ChunkId> ids,
                   const std::function<void(const ChunkId&)>& held);

class PeerLinks {
 public:
  PeerLinks(std::vector<PeerSetPeer> peers, const transport::Identity& identity,
            const PeerSetOptions& options, TokenBucket* bucket, const PeerLink::DoneFn& on_done);
  ~PeerLinks() { StopAll(); }

  size_t size() const { return links_.size(); }
  PeerLink& at(size_t i) const { return *links_[i]; }
  // The link of peer `name`, or null when it is not in the set.
  PeerLink* Find(const std::string& name) const;
  size_t IndexOf(const PeerLink& link) const;  // size() when not in the set
  std::span<const PlacementPeer> placement() const { return placement_; }
  // "a up; b down (why)", for error messages.
  std::string Summary() const;
  // Stops every link (each counts as down from then on) before any is
  // destroyed, so a cancelled upload that fails over finds no dangling link.
  void StopAll();

 private:
  std::vector<PlacementPeer> placement_;
  std::vector<std::unique_ptr<PeerLink>> links_;
};

}  // namespace sparetime::replication

#endif  // SPARETIME_REPLICATION_PEER_LINK_H_
