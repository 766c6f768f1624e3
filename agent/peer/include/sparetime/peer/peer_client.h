// PeerClient: one authenticated session to one peer, with a typed call for
// each sparetime/1 request. Calls are synchronous; SendRequest/ReceiveReply
// let a caller keep several requests in flight on one session (replies come
// back in order, matched by request id).
//
// Errors: kUnavailable (peer unreachable, gone, timed out) — the session is
// dead, reconnect; a request the peer refused comes back as the peer's
// Status (e.g. kNoSpace over quota, kNotFound), the session stays usable.
#ifndef SPARETIME_PEER_PEER_CLIENT_H_
#define SPARETIME_PEER_PEER_CLIENT_H_

#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "sparetime/base/clock.h"
#include "sparetime/base/status.h"
#include "sparetime/crypto/chunk_id.h"
#include "sparetime/transport/identity.h"
#include "sparetime/transport/messages.h"

namespace sparetime::peer {

struct PeerEndpoint {
  std::string name;  // agent name, for messages
  std::string host;
  uint16_t port = 0;
  transport::PublicKey key;  // the key the directory publishes for it
};

struct PeerClientOptions {
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds handshake_timeout{10'000};
  std::chrono::milliseconds io_timeout{30'000};
  const Clock* clock = nullptr;  // null: SystemClock()
};

class PeerClient {
 public:
  static Result<std::unique_ptr<PeerClient>> Connect(const PeerEndpoint& peer,
                                                     const transport::Identity& me,
                                                     PeerClientOptions options = {});
  ~PeerClient();

  const PeerEndpoint& peer() const;

  // `owner` empty: this agent's own chunks.
  Result<std::vector<bool>> Has(const std::string& owner, std::span<const ChunkId> ids);
  // Per-chunk results, parallel to `chunks`.
  Result<std::vector<Status>> PutChunks(std::vector<transport::PutChunksRequest::Item> chunks);
  Result<std::vector<std::byte>> GetChunk(const std::string& owner, const ChunkId& id);
  Result<uint32_t> Release(std::vector<ChunkId> ids);
  // A read hold on `owner`'s `snapshot` for `seconds` (0: drop it).
  Status HoldSnapshot(const std::string& owner, const std::string& snapshot, uint32_t seconds);
  Status PutRoots(uint64_t generation, std::vector<std::byte> roots);
  Result<transport::RootsReply> GetRoots(const std::string& owner);
  Status PutWrappedKey(std::vector<std::byte> wrapped_key);
  Result<std::vector<std::byte>> GetWrappedKey(const std::string& owner);
  Result<transport::StatsReply> Stats();
  // Process migration onto the peer (its migration cache, then the restore).
  Result<std::vector<bool>> MigrateHas(std::span<const ChunkId> ids);
  Result<std::vector<Status>> MigratePut(std::vector<transport::PutChunksRequest::Item> chunks);
  Result<transport::MigrateRestoreReply> MigrateRestore(transport::MigrateRestoreRequest request);
  // OK when the peer would run a process with these credentials.
  Status MigrateCheck(transport::MigrateCheckRequest request);

  // Caretaker (docs/peers.md "Caretaker"): every chunk id the peer holds
  // for `owner`, in id order (pages of ListChunks until a short one).
  Result<std::vector<ChunkId>> ListChunks(const std::string& owner);
  // Stores `owner`'s sealed chunks as its caretaker; per-chunk results.
  Result<std::vector<Status>> CaretakerPut(const std::string& owner,
                                           std::vector<transport::PutChunksRequest::Item> chunks);

  // Pipelining: send now, collect the reply later (in send order).
  Result<uint32_t> SendRequest(transport::MessageBody body);
  Result<transport::Message> ReceiveReply(uint32_t request_id);

  // Ends the session cleanly.
  Status Close();

 private:
  class Impl;
  explicit PeerClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sparetime::peer

#endif  // SPARETIME_PEER_PEER_CLIENT_H_
