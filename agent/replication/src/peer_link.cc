// PeerLink: upload thread with pipelined PutChunks batches, pooled read
// sessions, reconnect with backoff, then down for the run; PeerLinks, the
// set's links (see peer_link.h).
#include "peer_link.h"

#include <algorithm>
#include <utility>

#include "sparetime/transport/messages.h"

namespace sparetime::replication {
namespace {

// The reply to a PutChunks request: one status per chunk, or the peer's
// error for the whole request.
Result<std::vector<Status>> PutResults(const transport::Message& reply, size_t count,
                                       const std::string& peer) {
  if (auto* error = std::get_if<transport::ErrorReply>(&reply.body)) {
    return error->status.WithContext("peer " + peer);
  }
  auto* put = std::get_if<transport::PutChunksReply>(&reply.body);
  if (put == nullptr || put->results.size() != count) {
    return Status(ErrorCode::kCorruption, "peer " + peer + " sent a malformed PutChunks reply");
  }
  return put->results;
}

// A session-level failure (the session is gone: peer unreachable, hung up,
// timed out), as opposed to a request the peer refused.
bool SessionDead(const Status& s) { return s.code() == ErrorCode::kUnavailable; }

}  // namespace

PeerLink::PeerLink(PeerSetPeer peer, const transport::Identity& identity,
                   const PeerSetOptions& options, TokenBucket* bucket, DoneFn on_done)
    : peer_(std::move(peer)),
      identity_(identity),
      options_(options),
      bucket_(bucket),
      on_done_(std::move(on_done)) {
  uploader_ = std::thread([this] { UploadLoop(); });
}

PeerLink::~PeerLink() { Stop(); }

void PeerLink::Stop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (uploader_.joinable()) uploader_.join();
  for (Upload& u : TakeAll()) on_done_(*this, u.id, Status(ErrorCode::kCancelled, "stopped"));
}

bool PeerLink::down() const {
  MutexLock lock(mu_);
  return down_ || stopping_;
}

std::string PeerLink::down_reason() const {
  MutexLock lock(mu_);
  return down_ ? down_reason_ : stopping_ ? "stopped" : "";
}

void PeerLink::MarkDown(const Status& why) {
  MutexLock lock(mu_);
  if (down_) return;
  down_ = true;
  down_reason_ = why.message();
  if (options_.report) options_.report("peer " + name() + " given up for this run: " + why.message());
}

std::vector<Upload> PeerLink::TakeAll() {
  MutexLock lock(mu_);
  std::vector<Upload> all(std::make_move_iterator(queue_.begin()),
                          std::make_move_iterator(queue_.end()));
  queue_.clear();
  return all;
}

void PeerLink::Enqueue(Upload upload) {
  std::vector<Upload> one;
  one.push_back(std::move(upload));
  EnqueueMany(std::move(one));
}

void PeerLink::EnqueueMany(std::vector<Upload> uploads) {
  Status refused;
  {
    MutexLock lock(mu_);
    if (down_ || stopping_) {
      refused = Status(ErrorCode::kUnavailable,
                       "peer " + name() + " is down: " + (down_ ? down_reason_ : "stopped"));
    } else {
      for (Upload& u : uploads) queue_.push_back(std::move(u));
    }
  }
  if (refused.ok()) {
    cv_.notify_all();
    return;
  }
  for (const Upload& u : uploads) on_done_(*this, u.id, refused);
}

Result<std::unique_ptr<peer::PeerClient>> PeerLink::ConnectWithRetry() {
  Status last;
  auto backoff = std::chrono::milliseconds(200);
  for (int attempt = 0; attempt <= options_.reconnect_attempts; ++attempt) {
    if (attempt > 0) {
      MutexLock lock(mu_);
      if (lock.WaitFor(cv_, backoff, [&]() REQUIRES(mu_) { return stopping_; })) {
        return Status(ErrorCode::kCancelled, "stopped");
      }
      backoff *= 2;
    }
    Result<std::unique_ptr<peer::PeerClient>> client =
        peer::PeerClient::Connect(peer_.endpoint, identity_, options_.client);
    if (client.ok()) return client;
    last = client.status();
    // A peer that refuses us (unknown key, key mismatch) will not change its
    // mind within this run.
    if (last.code() == ErrorCode::kAuthFailed || last.code() == ErrorCode::kPermissionDenied) break;
  }
  return last;
}

Status PeerLink::Drain(peer::PeerClient& client) {
  struct Batch {
    uint32_t request_id;
    std::vector<Upload> uploads;
  };
  std::deque<Batch> in_flight;
  auto put_back = [&](Status why) {
    MutexLock lock(mu_);
    for (auto it = in_flight.rbegin(); it != in_flight.rend(); ++it) {
      for (auto u = it->uploads.rbegin(); u != it->uploads.rend(); ++u) queue_.push_front(*u);
    }
    return why;
  };
  while (true) {
    while (in_flight.size() < options_.pipeline_depth) {
      std::vector<Upload> batch;
      size_t bytes = 0;
      {
        MutexLock lock(mu_);
        while (!queue_.empty() && batch.size() < transport::kMaxChunksPerPut &&
               (batch.empty() || bytes + queue_.front().sealed->size() <= options_.batch_bytes)) {
          bytes += queue_.front().sealed->size();
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
      if (batch.empty()) break;
      if (bucket_ != nullptr) bucket_->Acquire(bytes);
      transport::PutChunksRequest request;
      for (const Upload& u : batch) request.chunks.push_back({u.id, *u.sealed});
      Result<uint32_t> sent = client.SendRequest(std::move(request));
      in_flight.push_back({sent.ok() ? *sent : 0, std::move(batch)});
      if (!sent.ok()) return put_back(sent.status());
    }
    if (in_flight.empty()) return Status::Ok();
    Batch& front = in_flight.front();
    Result<transport::Message> reply = client.ReceiveReply(front.request_id);
    if (!reply.ok()) return put_back(reply.status());
    Result<std::vector<Status>> results = PutResults(*reply, front.uploads.size(), name());
    Batch done = std::move(front);
    in_flight.pop_front();
    for (size_t i = 0; i < done.uploads.size(); ++i) {
      on_done_(*this, done.uploads[i].id, results.ok() ? (*results)[i] : results.status());
    }
  }
}

void PeerLink::UploadLoop() {
  std::unique_ptr<peer::PeerClient> client;
  int session_failures = 0;  // in a row; a peer that keeps dropping us is given up
  auto give_up = [&](const Status& why) {
    MarkDown(why);
    for (Upload& u : TakeAll()) on_done_(*this, u.id, why);
  };
  while (true) {
    {
      MutexLock lock(mu_);
      lock.Wait(cv_, [&]() REQUIRES(mu_) { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
    }
    if (client == nullptr) {
      Result<std::unique_ptr<peer::PeerClient>> connected = ConnectWithRetry();
      if (!connected.ok()) {
        give_up(connected.status());
        if (connected.status().code() == ErrorCode::kCancelled) return;
        continue;
      }
      client = std::move(*connected);
    }
    Status drained = Drain(*client);
    if (drained.ok()) {
      session_failures = 0;
      continue;
    }
    client.reset();  // reconnect on the next round
    if (!SessionDead(drained)) {
      // Not a transport failure (e.g. a message we could not encode): fail
      // what is queued rather than loop on it.
      for (Upload& u : TakeAll()) on_done_(*this, u.id, drained);
    } else if (++session_failures > options_.reconnect_attempts) {
      give_up(drained);
    }
  }
}

template <typename T>
Result<T> PeerLink::WithReadSession(const std::function<Result<T>(peer::PeerClient&)>& call) {
  for (int round = 0; round < 2; ++round) {
    std::unique_ptr<peer::PeerClient> client;
    {
      MutexLock lock(mu_);
      if (down_) return Status(ErrorCode::kUnavailable, "peer " + name() + " is down: " + down_reason_);
      if (!idle_readers_.empty()) {
        client = std::move(idle_readers_.back());
        idle_readers_.pop_back();
      }
    }
    if (client == nullptr) {
      Result<std::unique_ptr<peer::PeerClient>> connected = ConnectWithRetry();
      if (!connected.ok()) {
        MarkDown(connected.status());
        return connected.status();
      }
      client = std::move(*connected);
    }
    Result<T> result = call(*client);
    if (!result.ok() && SessionDead(result.status()) && round == 0) continue;  // drop, retry
    if (!result.ok() && SessionDead(result.status())) {
      MarkDown(result.status());
      return result;
    }
    MutexLock lock(mu_);
    if (idle_readers_.size() < options_.read_sessions) idle_readers_.push_back(std::move(client));
    return result;
  }
  return Status(ErrorCode::kInternal, "unreachable");
}

Result<std::vector<std::byte>> PeerLink::Get(const std::string& owner, const ChunkId& id) {
  return WithReadSession<std::vector<std::byte>>(
      [&](peer::PeerClient& c) { return c.GetChunk(owner, id); });
}

Result<std::vector<bool>> PeerLink::Has(const std::string& owner, std::span<const ChunkId> ids) {
  return WithReadSession<std::vector<bool>>([&](peer::PeerClient& c) { return c.Has(owner, ids); });
}

Result<uint32_t> PeerLink::Release(std::vector<ChunkId> ids) {
  return WithReadSession<uint32_t>([&](peer::PeerClient& c) { return c.Release(ids); });
}

Result<transport::StatsReply> PeerLink::Stats() {
  return WithReadSession<transport::StatsReply>([](peer::PeerClient& c) { return c.Stats(); });
}

Status PeerLink::Hold(const std::string& owner, const std::string& snapshot, uint32_t seconds) {
  return WithReadSession<bool>([&](peer::PeerClient& c) -> Result<bool> {
           ST_RETURN_IF_ERROR(c.HoldSnapshot(owner, snapshot, seconds));
           return true;
         })
      .status();
}

Status ForEachHeld(PeerLink& link, const std::string& owner, std::span<const ChunkId> ids,
                   const std::function<void(const ChunkId&)>& held) {
  for (size_t start = 0; start < ids.size(); start += transport::kMaxIdsPerBatch) {
    auto slice = ids.subspan(start, std::min<size_t>(transport::kMaxIdsPerBatch, ids.size() - start));
    ST_ASSIGN_OR_RETURN(std::vector<bool> present, link.Has(owner, slice));
    for (size_t i = 0; i < slice.size(); ++i) {
      if (present[i]) held(slice[i]);
    }
  }
  return Status::Ok();
}

PeerLinks::PeerLinks(std::vector<PeerSetPeer> peers, const transport::Identity& identity,
                     const PeerSetOptions& options, TokenBucket* bucket,
                     const PeerLink::DoneFn& on_done) {
  for (PeerSetPeer& p : peers) {
    placement_.push_back({p.endpoint.name, p.site, p.free_bytes});
    links_.push_back(std::make_unique<PeerLink>(std::move(p), identity, options, bucket, on_done));
  }
}

PeerLink* PeerLinks::Find(const std::string& name) const {
  for (const auto& l : links_) {
    if (l->name() == name) return l.get();
  }
  return nullptr;
}

size_t PeerLinks::IndexOf(const PeerLink& link) const {
  for (size_t i = 0; i < links_.size(); ++i) {
    if (links_[i].get() == &link) return i;
  }
  return links_.size();
}

std::string PeerLinks::Summary() const {
  std::string out;
  for (const auto& l : links_) {
    out += (out.empty() ? "" : "; ") + l->name() +
           (l->down() ? " down (" + l->down_reason() + ")" : " up");
  }
  return out.empty() ? "no peers in the directory" : out;
}

void PeerLinks::StopAll() {
  for (const auto& l : links_) l->Stop();
}

}  // namespace sparetime::replication
