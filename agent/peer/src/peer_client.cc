// PeerClient implementation: connect + initiator handshake, then typed calls
// built on SendRequest/ReceiveReply. An ErrorReply becomes the peer's Status.
#include "sparetime/peer/peer_client.h"

#include <deque>

#include "sparetime/transport/net.h"
#include "sparetime/transport/session.h"

namespace sparetime::peer {
namespace {

using transport::Message;
using transport::MessageBody;

// A batch reply must answer every item of its request.
template <typename T>
Result<std::vector<T>> Answered(const std::string& peer, std::vector<T> answers, size_t asked,
                                const char* what) {
  if (answers.size() != asked) {
    return Status(ErrorCode::kCorruption, "peer " + peer + " answered " + std::to_string(answers.size()) +
                                              " of " + std::to_string(asked) + " " + what);
  }
  return answers;
}

}  // namespace

class PeerClient::Impl {
 public:
  Impl(PeerEndpoint peer, transport::Session session)
      : peer_(std::move(peer)), session_(std::move(session)) {}

  Result<uint32_t> Send(MessageBody body) {
    uint32_t id = next_id_++;
    ST_ASSIGN_OR_RETURN(std::vector<std::byte> bytes,
                        transport::EncodeMessage(Message{id, std::move(body)}));
    Status sent = session_.Send(bytes);
    transport::WipeSecrets(bytes);  // sealed or failed: the plaintext is done with
    ST_RETURN_IF_ERROR(sent);
    in_flight_.push_back(id);
    return id;
  }

  Result<Message> Receive(uint32_t id) {
    if (in_flight_.empty() || in_flight_.front() != id) {
      return Status(ErrorCode::kInternal, "replies are received in request order");
    }
    ST_ASSIGN_OR_RETURN(std::optional<std::vector<std::byte>> bytes, session_.Receive());
    if (!bytes) {
      return Status(ErrorCode::kUnavailable, "peer " + peer_.name + " ended the session");
    }
    ST_ASSIGN_OR_RETURN(Message reply, transport::DecodeMessage(*bytes));
    in_flight_.pop_front();
    if (reply.request_id != id) {
      return Status(ErrorCode::kCorruption, "peer " + peer_.name + " answered request " +
                                                std::to_string(reply.request_id) + " instead of " +
                                                std::to_string(id));
    }
    return reply;
  }

  // One request, one reply of type Reply (or the peer's error).
  template <typename Reply>
  Result<Reply> Call(MessageBody body) {
    uint8_t request_type = static_cast<uint8_t>(transport::TypeOf(body));
    ST_ASSIGN_OR_RETURN(uint32_t id, Send(std::move(body)));
    ST_ASSIGN_OR_RETURN(Message reply, Receive(id));
    if (auto* error = std::get_if<transport::ErrorReply>(&reply.body)) {
      return error->status.WithContext("peer " + peer_.name);
    }
    if (auto* r = std::get_if<Reply>(&reply.body)) return std::move(*r);
    return Status(ErrorCode::kCorruption,
                  "peer " + peer_.name + " sent " +
                      transport::MessageName(static_cast<uint8_t>(transport::TypeOf(reply.body))) +
                      " in reply to " + transport::MessageName(request_type));
  }

  const PeerEndpoint& peer() const { return peer_; }
  transport::Session& session() { return session_; }

 private:
  PeerEndpoint peer_;
  transport::Session session_;
  uint32_t next_id_ = 1;
  std::deque<uint32_t> in_flight_;
};

PeerClient::PeerClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PeerClient::~PeerClient() = default;

Result<std::unique_ptr<PeerClient>> PeerClient::Connect(const PeerEndpoint& peer,
                                                        const transport::Identity& me,
                                                        PeerClientOptions options) {
  Result<Fd> fd = transport::ConnectTcp(peer.host, peer.port, options.connect_timeout);
  if (!fd.ok()) return fd.status().WithContext("peer " + peer.name);
  transport::SessionOptions so;
  so.clock = options.clock;
  so.handshake_timeout = options.handshake_timeout;
  so.io_timeout = options.io_timeout;
  so.peer_name = peer.name + " (" + peer.host + ":" + std::to_string(peer.port) + ")";
  ST_ASSIGN_OR_RETURN(transport::Session session,
                      transport::Session::Connect(std::move(*fd), me, peer.key, so));
  return std::unique_ptr<PeerClient>(
      new PeerClient(std::make_unique<Impl>(peer, std::move(session))));
}

const PeerEndpoint& PeerClient::peer() const { return impl_->peer(); }

Result<std::vector<bool>> PeerClient::Has(const std::string& owner, std::span<const ChunkId> ids) {
  ST_ASSIGN_OR_RETURN(auto reply, impl_->Call<transport::HasChunksReply>(transport::HasChunksRequest{
                                      owner, std::vector<ChunkId>(ids.begin(), ids.end())}));
  return Answered(peer().name, std::move(reply.present), ids.size(), "ids");
}

Result<std::vector<Status>> PeerClient::PutChunks(
    std::vector<transport::PutChunksRequest::Item> chunks) {
  size_t n = chunks.size();
  ST_ASSIGN_OR_RETURN(auto reply, impl_->Call<transport::PutChunksReply>(
                                      transport::PutChunksRequest{std::move(chunks)}));
  return Answered(peer().name, std::move(reply.results), n, "puts");
}

Result<std::vector<std::byte>> PeerClient::GetChunk(const std::string& owner, const ChunkId& id) {
  ST_ASSIGN_OR_RETURN(auto reply,
                      impl_->Call<transport::ChunkReply>(transport::GetChunkRequest{owner, id}));
  return std::move(reply.sealed);
}

Result<uint32_t> PeerClient::Release(std::vector<ChunkId> ids) {
  ST_ASSIGN_OR_RETURN(auto reply, impl_->Call<transport::ReleaseChunksReply>(
                                      transport::ReleaseChunksRequest{std::move(ids)}));
  return reply.released;
}

Status PeerClient::HoldSnapshot(const std::string& owner, const std::string& snapshot,
                                uint32_t seconds) {
  return impl_
      ->Call<transport::OkReply>(transport::HoldSnapshotRequest{owner, snapshot, seconds})
      .status();
}

Status PeerClient::PutRoots(uint64_t generation, std::vector<std::byte> roots) {
  return impl_
      ->Call<transport::OkReply>(transport::PutRootsRequest{generation, std::move(roots)})
      .status();
}

Result<transport::RootsReply> PeerClient::GetRoots(const std::string& owner) {
  return impl_->Call<transport::RootsReply>(transport::GetRootsRequest{owner});
}

Status PeerClient::PutWrappedKey(std::vector<std::byte> wrapped_key) {
  return impl_
      ->Call<transport::OkReply>(transport::PutWrappedKeyRequest{std::move(wrapped_key)})
      .status();
}

Result<std::vector<std::byte>> PeerClient::GetWrappedKey(const std::string& owner) {
  ST_ASSIGN_OR_RETURN(auto reply, impl_->Call<transport::WrappedKeyReply>(
                                      transport::GetWrappedKeyRequest{owner}));
  return std::move(reply.wrapped_key);
}

Result<transport::StatsReply> PeerClient::Stats() {
  return impl_->Call<transport::StatsReply>(transport::GetStatsRequest{});
}

Result<std::vector<bool>> PeerClient::MigrateHas(std::span<const ChunkId> ids) {
  ST_ASSIGN_OR_RETURN(auto reply, impl_->Call<transport::HasChunksReply>(transport::MigrateHasChunksRequest{
                                      std::vector<ChunkId>(ids.begin(), ids.end())}));
  return Answered(peer().name, std::move(reply.present), ids.size(), "ids");
}

Result<std::vector<Status>> PeerClient::MigratePut(std::vector<transport::PutChunksRequest::Item> chunks) {
  size_t n = chunks.size();
  ST_ASSIGN_OR_RETURN(auto reply, impl_->Call<transport::PutChunksReply>(
                                      transport::MigratePutChunksRequest{std::move(chunks)}));
  return Answered(peer().name, std::move(reply.results), n, "puts");
}

Result<transport::MigrateRestoreReply> PeerClient::MigrateRestore(transport::MigrateRestoreRequest request) {
  return impl_->Call<transport::MigrateRestoreReply>(std::move(request));
}

Status PeerClient::MigrateCheck(transport::MigrateCheckRequest request) {
  return impl_->Call<transport::OkReply>(std::move(request)).status();
}

Result<std::vector<ChunkId>> PeerClient::ListChunks(const std::string& owner) {
  std::vector<ChunkId> out;
  transport::ListChunksRequest request{owner, true, ChunkId{}};
  for (;;) {
    ST_ASSIGN_OR_RETURN(auto reply, impl_->Call<transport::ChunkListReply>(request));
    for (const ChunkId& id : reply.ids) {
      if (!out.empty() && !(out.back().bytes < id.bytes)) {
        return Status(ErrorCode::kCorruption,
                      "peer " + peer().name + " listed chunks of " + owner + " out of order");
      }
      out.push_back(id);
    }
    if (reply.ids.size() < transport::kMaxIdsPerBatch) return out;
    request.from_start = false;
    request.after = out.back();
  }
}

Result<std::vector<Status>> PeerClient::CaretakerPut(
    const std::string& owner, std::vector<transport::PutChunksRequest::Item> chunks) {
  size_t n = chunks.size();
  ST_ASSIGN_OR_RETURN(auto reply, impl_->Call<transport::PutChunksReply>(
                                      transport::CaretakerPutChunksRequest{owner, std::move(chunks)}));
  return Answered(peer().name, std::move(reply.results), n, "puts");
}

Result<uint32_t> PeerClient::SendRequest(transport::MessageBody body) {
  return impl_->Send(std::move(body));
}

Result<transport::Message> PeerClient::ReceiveReply(uint32_t request_id) {
  return impl_->Receive(request_id);
}

Status PeerClient::Close() { return impl_->session().Close(); }

}  // namespace sparetime::peer
