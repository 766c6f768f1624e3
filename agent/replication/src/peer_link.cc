// PeerLink: upload thread with pipelined PutChunks batches, pooled read
// sessions, reconnect with backoff, then down for the run (see peer_link.h).
#include "peer_link.h"

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

PeerLink::~PeerLink() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  uploader_.join();
  for (Upload& u : TakeAll()) on_done_(*this, u.id, Status(ErrorCode::kCancelled, "stopped"));
}

bool PeerLink::down() const {
  std::lock_guard lock(mu_);
  return down_;
}

std::string PeerLink::down_reason() const {
  std::lock_guard lock(mu_);
  return down_reason_;
}

void PeerLink::MarkDown(const Status& why) {
  std::lock_guard lock(mu_);
  if (down_) return;
  down_ = true;
  down_reason_ = why.message();
  if (options_.report) options_.report("peer " + name() + " given up for this run: " + why.message());
}

std::vector<Upload> PeerLink::TakeAll() {
  std::lock_guard lock(mu_);
  std::vector<Upload> all(std::make_move_iterator(queue_.begin()),
                          std::make_move_iterator(queue_.end()));
  queue_.clear();
  return all;
}

void PeerLink::Enqueue(Upload upload) {
  std::unique_lock lock(mu_);
  if (down_ || stopping_) {
    Status why(ErrorCode::kUnavailable, "peer " + name() + " is down: " + down_reason_);
    lock.unlock();
    on_done_(*this, upload.id, why);
    return;
  }
  queue_.push_back(std::move(upload));
  lock.unlock();
  cv_.notify_all();
}

Result<std::unique_ptr<peer::PeerClient>> PeerLink::ConnectWithRetry() {
  Status last;
  auto backoff = std::chrono::milliseconds(200);
  for (int attempt = 0; attempt <= options_.reconnect_attempts; ++attempt) {
    if (attempt > 0) {
      std::unique_lock lock(mu_);
      if (cv_.wait_for(lock, backoff, [&] { return stopping_; })) {
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
    std::lock_guard lock(mu_);
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
        std::lock_guard lock(mu_);
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
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
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
      std::lock_guard lock(mu_);
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
    std::lock_guard lock(mu_);
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

}  // namespace sparetime::replication
