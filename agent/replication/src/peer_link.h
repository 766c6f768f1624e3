// PeerLink: the PeerSet's connection to one peer. An upload thread batches
// queued chunks into pipelined PutChunks requests; a small pool of read
// sessions serves Get and Has from any thread. A failed session is retried
// with backoff (200 ms, doubling) up to `reconnect_attempts` times; after
// that the link is down for the rest of the run: queued and later uploads
// complete with its reason at once, so the PeerSet places them elsewhere.
//
// Every upload completes exactly once through `on_done` (on the upload
// thread, or on the caller's thread when the link is already down). The
// destructor stops the thread; uploads still queued complete as kCancelled.
#ifndef SPARETIME_REPLICATION_PEER_LINK_H_
#define SPARETIME_REPLICATION_PEER_LINK_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "sparetime/base/token_bucket.h"
#include "sparetime/replication/peer_set.h"

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
  bool down() const;
  std::string down_reason() const;

  void Enqueue(Upload upload);

  Result<std::vector<std::byte>> Get(const std::string& owner, const ChunkId& id);
  Result<std::vector<bool>> Has(const std::string& owner, std::span<const ChunkId> ids);
  // Prune: drops this agent's copies of `ids` (at most kMaxIdsPerBatch);
  // returns how many the peer held.
  Result<uint32_t> Release(std::vector<ChunkId> ids);
  // What the peer holds for this agent.
  Result<transport::StatsReply> Stats();

 private:
  void UploadLoop();
  // Sends and collects batches on `client` until the queue is empty; the
  // first session error is returned with the unfinished uploads put back.
  Status Drain(peer::PeerClient& client);
  Result<std::unique_ptr<peer::PeerClient>> ConnectWithRetry();
  void MarkDown(const Status& why);
  std::vector<Upload> TakeAll();
  // A read on a pooled session, reconnecting once when the session died.
  template <typename T>
  Result<T> WithReadSession(const std::function<Result<T>(peer::PeerClient&)>& call);

  const PeerSetPeer peer_;
  const transport::Identity& identity_;
  const PeerSetOptions& options_;
  TokenBucket* bucket_;  // may be null
  DoneFn on_done_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Upload> queue_;  // guarded by mu_
  bool stopping_ = false;     // guarded by mu_
  bool down_ = false;         // guarded by mu_
  std::string down_reason_;   // guarded by mu_
  std::vector<std::unique_ptr<peer::PeerClient>> idle_readers_;  // guarded by mu_
  std::thread uploader_;
};

}  // namespace sparetime::replication

#endif  // SPARETIME_REPLICATION_PEER_LINK_H_
