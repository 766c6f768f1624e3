// The sparetime/1 message catalogue: what travels inside sealed frames once a
// session is up. Each message is
//
//   type (1) || request id (LE32) || body
//
// A reply carries the request id of the request it answers, so requests can
// be pipelined. Byte layouts, limits and the meaning of every field are in
// docs/protocol.md ("Messages"). Decoding is strict: unknown types, truncated
// fields, counts above their limit (checked before anything is allocated),
// malformed owner names or error texts, and trailing bytes are kCorruption.
// Encoding checks the same limits and reports kInvalidArgument, so a sender
// learns to split a batch instead of having the peer drop the session.
//
// Owner names: empty means "the owner this session authenticated as"; else
// an agent name of 1-255 characters from [A-Za-z0-9._-].
//
// Thread safety: plain values and pure functions.
#ifndef SPARETIME_TRANSPORT_MESSAGES_H_
#define SPARETIME_TRANSPORT_MESSAGES_H_

#include <cstddef>
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/crypto/chunk_id.h"
#include "sparetime/crypto/secret.h"

namespace sparetime::transport {

inline constexpr size_t kMessageHeaderSize = 5;  // type + request id
inline constexpr uint32_t kMaxIdsPerBatch = 8192;
inline constexpr uint32_t kMaxChunksPerPut = 1024;
inline constexpr size_t kMaxSealedChunkSize = (4u << 20) + (32u << 10);
inline constexpr size_t kMaxRootsSize = 1u << 20;
inline constexpr size_t kMaxWrappedKeySize = 4u << 10;
inline constexpr size_t kMaxErrorText = 1024;
inline constexpr size_t kMigrationKeySize = 32;
inline constexpr uint32_t kMaxMigrationIndex = 1024;  // index chunk ids in one MigrateRestore
// Bytes a PutChunks item adds to its message beyond the sealed chunk itself.
inline constexpr size_t kPutChunkItemOverhead = ChunkId::kSize + 4;

enum class MessageType : uint8_t {
  kHasChunks = 0x01,
  kPutChunks = 0x02,
  kGetChunk = 0x03,
  kReleaseChunks = 0x04,
  kPutRoots = 0x05,
  kGetRoots = 0x06,
  kPutWrappedKey = 0x07,
  kGetWrappedKey = 0x08,
  kGetStats = 0x09,
  kHoldSnapshot = 0x0a,
  kOk = 0x80,
  kHasChunksReply = 0x81,
  kPutChunksReply = 0x82,
  kChunkReply = 0x83,
  kReleaseChunksReply = 0x84,
  kRootsReply = 0x86,
  kWrappedKeyReply = 0x88,
  kStatsReply = 0x89,
  kError = 0xff,
  // Process migration (docs/protocol.md, "Migration"): a source agent fills
  // the target's migration cache, then asks it to restore.
  kMigrateHasChunks = 0x20,
  kMigratePutChunks = 0x21,
  kMigrateRestore = 0x22,
  kMigrateCheck = 0x23,
  kMigrateRestoreReply = 0xa2,
  // Caretaker (docs/peers.md "Caretaker"): a live peer heals the replicas
  // of an owner that stopped sending heartbeats.
  kListChunks = 0x30,
  kCaretakerPutChunks = 0x31,
  kChunkListReply = 0xb0,
};

// Which of these chunks of `owner` do you hold?
struct HasChunksRequest {
  std::string owner;
  std::vector<ChunkId> ids;
};
// Store these sealed chunks for the session's owner.
struct PutChunksRequest {
  struct Item {
    ChunkId id;
    std::vector<std::byte> sealed;
  };
  std::vector<Item> chunks;
};
struct GetChunkRequest {
  std::string owner;
  ChunkId id;
};
// Drop these chunks of the session's owner (only an owner releases its own).
struct ReleaseChunksRequest {
  std::vector<ChunkId> ids;
};
// Replace the session owner's manifest roots (opaque, sealed by the owner).
// `generation` must grow; the store keeps the highest.
struct PutRootsRequest {
  uint64_t generation = 0;
  std::vector<std::byte> roots;
};
struct GetRootsRequest {
  std::string owner;
};
// Store the session owner's wrapped master key (keys.h WrappedKey JSON).
struct PutWrappedKeyRequest {
  std::vector<std::byte> wrapped_key;
};
struct GetWrappedKeyRequest {
  std::string owner;
};
struct GetStatsRequest {};

struct OkReply {};
struct HasChunksReply {
  std::vector<bool> present;  // parallel to the request's ids
};
struct PutChunksReply {
  std::vector<Status> results;  // parallel to the request's chunks
};
struct ChunkReply {
  std::vector<std::byte> sealed;
};
struct ReleaseChunksReply {
  uint32_t released = 0;
};
struct RootsReply {
  uint64_t generation = 0;
  std::vector<std::byte> roots;
};
struct WrappedKeyReply {
  std::vector<std::byte> wrapped_key;
};
struct StatsReply {
  uint64_t used_bytes = 0;   // held for the session's owner
  uint64_t quota_bytes = 0;  // the owner's quota on this peer
  uint64_t chunk_count = 0;  // chunks held for the owner
  uint64_t free_bytes = 0;   // capacity this peer still offers to anyone
};
// The request failed as a whole. REQUIRES: !status.ok().
struct ErrorReply {
  Status status;
};

// Which of these chunks does your migration cache hold for me (the
// session's agent)? Answered with HasChunksReply.
struct MigrateHasChunksRequest {
  std::vector<ChunkId> ids;
};
// Keep these sealed chunks in your migration cache for me. PutChunksReply.
struct MigratePutChunksRequest {
  std::vector<PutChunksRequest::Item> chunks;
};
// Restore the process whose image index chunks are `index` (in the cache),
// sealed with the 32-byte migration `key`; reply once it runs. The key lives
// in sodium memory (so this message, and MessageBody, are move-only); its
// encoded form is the secret-bearing plaintext WipeSecrets() is for.
struct MigrateRestoreRequest {
  SecretBuffer key;
  std::vector<ChunkId> index;
};
struct MigrateRestoreReply {
  uint32_t pid = 0;  // the restored process, running on the target
};
// May a process with these credentials run on you? Asked before the source
// stops it; answered with OkReply or an Error saying why not. Names of the
// process's 4 uids and 4 gids (real, effective, saved, fs) and of its
// supplementary groups (1-255 bytes each, no NUL or control characters);
// `privileged`: root or capabilities.
inline constexpr uint32_t kMaxMigrateGroups = 1024;
struct MigrateCheckRequest {
  bool privileged = false;
  std::array<std::string, 4> users, groups;
  std::vector<std::string> supplementary;
};

// A read hold (docs/peers.md "Read holds"): `owner`'s snapshot `snapshot` is
// mounted by the session's agent; while a hold of `owner` is live the peer
// defers `owner`'s ReleaseChunks. `seconds` > 0 sets (or renews) the hold to
// expire that long from now (the peer caps it at kMaxHoldSeconds); 0 drops
// it. Answered with OkReply. `snapshot`: 1..64 characters [A-Za-z0-9._-].
inline constexpr uint32_t kMaxHoldSeconds = 3600;
struct HoldSnapshotRequest {
  std::string owner;
  std::string snapshot;
  uint32_t seconds = 0;
};

// Which chunks do you hold for `owner`, in id order, after `after` (from
// the first when `from_start`)? Answered with ChunkListReply: at most
// kMaxIdsPerBatch ids; fewer means the list is complete. Allowed for the
// owner itself and for its caretaker (docs/peers.md "Who may do what").
struct ListChunksRequest {
  std::string owner;
  bool from_start = true;
  ChunkId after;
};
struct ChunkListReply {
  std::vector<ChunkId> ids;
};
// The caretaker of `owner` stores these sealed chunks (copied, never
// opened) for `owner`. Answered with PutChunksReply, one status per chunk;
// a chunk already held is OK (idempotent).
struct CaretakerPutChunksRequest {
  std::string owner;
  std::vector<PutChunksRequest::Item> chunks;
};

using MessageBody =
    std::variant<HasChunksRequest, PutChunksRequest, GetChunkRequest, ReleaseChunksRequest,
                 PutRootsRequest, GetRootsRequest, PutWrappedKeyRequest, GetWrappedKeyRequest,
                 GetStatsRequest, OkReply, HasChunksReply, PutChunksReply, ChunkReply,
                 ReleaseChunksReply, RootsReply, WrappedKeyReply, StatsReply, ErrorReply,
                 MigrateHasChunksRequest, MigratePutChunksRequest, MigrateRestoreRequest,
                 MigrateRestoreReply, HoldSnapshotRequest, MigrateCheckRequest, ListChunksRequest,
                 ChunkListReply, CaretakerPutChunksRequest>;

struct Message {
  uint32_t request_id = 0;
  MessageBody body;
};

MessageType TypeOf(const MessageBody& body);
// "PutChunks (0x02)", for messages.
std::string MessageName(uint8_t type);

// kInvalidArgument when a limit is exceeded (too many ids, a chunk or blob
// too large, a bad owner name, an OK status in an ErrorReply, or a total
// above kMaxMessageSize). Error texts longer than kMaxErrorText are cut.
Result<std::vector<std::byte>> EncodeMessage(const Message& message);
// kCorruption naming the message type, the offset and the problem.
Result<Message> DecodeMessage(std::span<const std::byte> bytes);

// Zeroes an encoded message in place when its type carries a secret
// (MigrateRestore's key); other messages are left alone. Call it on the
// plaintext once it is sealed (sender) or decoded (receiver). EncodeMessage
// never leaves a copy of a secret behind in memory it frees (the key is the
// last field written), and a Session holds no plaintext after Send/Receive.
void WipeSecrets(std::span<std::byte> encoded);

}  // namespace sparetime::transport

#endif  // SPARETIME_TRANSPORT_MESSAGES_H_
