// Message codec: one encoder and one decoder per message type, all limits
// checked on both sides (see messages.h and docs/protocol.md).
#include "sparetime/transport/messages.h"

#include <sodium.h>

#include <array>
#include <cstdio>
#include <cstring>

#include "sparetime/transport/frame.h"
#include "sparetime/transport/wire.h"

namespace sparetime::transport {
namespace {

// The largest MigrateRestore fits a message, so encoding one never fails
// once its key is written.
constexpr size_t kMaxMigrateRestoreSize =
    kMessageHeaderSize + 4 + size_t{kMaxMigrationIndex} * ChunkId::kSize + kMigrationKeySize;
static_assert(kMaxMigrateRestoreSize <= kMaxMessageSize);

// Wire numbers of error codes; fixed by the protocol, independent of the enum.
constexpr std::array<ErrorCode, 13> kWireCodes = {
    ErrorCode::kOk,           ErrorCode::kInvalidArgument,    ErrorCode::kNotFound,
    ErrorCode::kAlreadyExists, ErrorCode::kPermissionDenied,  ErrorCode::kIoError,
    ErrorCode::kNoSpace,      ErrorCode::kCorruption,         ErrorCode::kAuthFailed,
    ErrorCode::kUnavailable,  ErrorCode::kFailedPrecondition, ErrorCode::kCancelled,
    ErrorCode::kInternal,
};

uint8_t WireCode(ErrorCode code) {
  for (size_t i = 0; i < kWireCodes.size(); ++i)
    if (kWireCodes[i] == code) return static_cast<uint8_t>(i);
  return static_cast<uint8_t>(kWireCodes.size() - 1);  // unreachable: every code is listed
}

bool ValidOwner(std::string_view owner) {
  for (char c : owner) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return owner.size() <= 255;
}

// A user or group name as the migration check carries it: 1-255 bytes, no
// NUL or other control characters (the user databases decide the rest).
bool ValidAccountName(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  for (char c : name)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
  return true;
}

bool ValidText(std::string_view text) {
  for (char c : text)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
  return true;
}

// ---- encoding ---------------------------------------------------------------

class Encoder {
 public:
  explicit Encoder(Writer& w) : w_(w) {}

  Status operator()(const HasChunksRequest& m) {
    ST_RETURN_IF_ERROR(Owner(m.owner));
    return Ids(m.ids);
  }
  Status operator()(const PutChunksRequest& m) { return Chunks(m.chunks); }
  Status operator()(const GetChunkRequest& m) {
    ST_RETURN_IF_ERROR(Owner(m.owner));
    w_.Fixed(m.id.bytes);
    return Status::Ok();
  }
  Status operator()(const ReleaseChunksRequest& m) { return Ids(m.ids); }
  Status operator()(const PutRootsRequest& m) {
    w_.U64(m.generation);
    return Blob(m.roots, kMaxRootsSize, "manifest roots");
  }
  Status operator()(const GetRootsRequest& m) { return Owner(m.owner); }
  Status operator()(const PutWrappedKeyRequest& m) {
    return Blob(m.wrapped_key, kMaxWrappedKeySize, "wrapped key");
  }
  Status operator()(const GetWrappedKeyRequest& m) { return Owner(m.owner); }
  Status operator()(const GetStatsRequest&) { return Status::Ok(); }
  Status operator()(const OkReply&) { return Status::Ok(); }
  Status operator()(const HasChunksReply& m) {
    ST_RETURN_IF_ERROR(Count(m.present.size(), kMaxIdsPerBatch, "answers in one HasChunksReply"));
    std::vector<std::byte> bits((m.present.size() + 7) / 8);
    for (size_t i = 0; i < m.present.size(); ++i)
      if (m.present[i]) bits[i / 8] |= std::byte(1u << (i % 8));
    w_.Fixed(bits);
    return Status::Ok();
  }
  Status operator()(const PutChunksReply& m) {
    ST_RETURN_IF_ERROR(Count(m.results.size(), kMaxChunksPerPut, "results in one PutChunksReply"));
    for (const Status& s : m.results) StatusField(s);
    return Status::Ok();
  }
  Status operator()(const ChunkReply& m) {
    return Blob(m.sealed, kMaxSealedChunkSize, "sealed chunk");
  }
  Status operator()(const ReleaseChunksReply& m) {
    w_.U32(m.released);
    return Status::Ok();
  }
  Status operator()(const RootsReply& m) {
    w_.U64(m.generation);
    return Blob(m.roots, kMaxRootsSize, "manifest roots");
  }
  Status operator()(const WrappedKeyReply& m) {
    return Blob(m.wrapped_key, kMaxWrappedKeySize, "wrapped key");
  }
  Status operator()(const StatsReply& m) {
    w_.U64(m.used_bytes);
    w_.U64(m.quota_bytes);
    w_.U64(m.chunk_count);
    w_.U64(m.free_bytes);
    return Status::Ok();
  }
  Status operator()(const ErrorReply& m) {
    if (m.status.ok()) return InvalidArgument("an ErrorReply must carry an error, not OK");
    StatusField(m.status);
    return Status::Ok();
  }
  Status operator()(const MigrateHasChunksRequest& m) { return Ids(m.ids); }
  Status operator()(const MigratePutChunksRequest& m) { return Chunks(m.chunks); }
  Status operator()(const MigrateRestoreRequest& m) {
    if (m.key.size() != kMigrationKeySize)
      return InvalidArgument("a migration key is " + std::to_string(kMigrationKeySize) + " bytes, not " +
                             std::to_string(m.key.size()));
    ST_RETURN_IF_ERROR(Count(m.index.size(), kMaxMigrationIndex, "index chunks in one MigrateRestore"));
    for (const ChunkId& id : m.index) w_.Fixed(id.bytes);
    // Last: a buffer the writer outgrows and frees never held the key, and
    // nothing can fail after it (kMaxMigrateRestoreSize).
    w_.Fixed(m.key.span());
    return Status::Ok();
  }
  Status operator()(const MigrateRestoreReply& m) {
    w_.U32(m.pid);
    return Status::Ok();
  }
  Status operator()(const MigrateCheckRequest& m) {
    w_.U8(m.privileged ? 1 : 0);
    for (const auto* names : {&m.users, &m.groups})
      for (const std::string& n : *names) ST_RETURN_IF_ERROR(AccountName(n));
    ST_RETURN_IF_ERROR(Count(m.supplementary.size(), kMaxMigrateGroups, "groups in one MigrateCheck"));
    for (const std::string& n : m.supplementary) ST_RETURN_IF_ERROR(AccountName(n));
    return Status::Ok();
  }
  Status operator()(const HoldSnapshotRequest& m) {
    ST_RETURN_IF_ERROR(Owner(m.owner));
    if (m.snapshot.empty() || m.snapshot.size() > 64 || !ValidOwner(m.snapshot)) {
      return InvalidArgument("a held snapshot is named by 1-64 characters of [A-Za-z0-9._-]");
    }
    w_.Str8(m.snapshot);
    w_.U32(m.seconds);
    return Status::Ok();
  }
  Status operator()(const ListChunksRequest& m) {
    ST_RETURN_IF_ERROR(Owner(m.owner));
    w_.U8(m.from_start ? 1 : 0);
    w_.Fixed(m.after.bytes);
    return Status::Ok();
  }
  Status operator()(const ChunkListReply& m) { return Ids(m.ids); }
  Status operator()(const CaretakerPutChunksRequest& m) {
    ST_RETURN_IF_ERROR(Owner(m.owner));
    return Chunks(m.chunks);
  }

 private:
  Status AccountName(const std::string& name) {
    if (!ValidAccountName(name))
      return InvalidArgument("'" + name + "' is not a user or group name (1-255 bytes, no control characters)");
    w_.Str8(name);
    return Status::Ok();
  }
  Status Owner(const std::string& owner) {
    if (!ValidOwner(owner)) {
      return InvalidArgument("owner name '" + owner +
                             "' is not an agent name (1-255 characters of A-Z a-z 0-9 . _ -)");
    }
    w_.Str8(owner);
    return Status::Ok();
  }
  Status Count(size_t n, uint32_t max, std::string_view what) {
    if (n > max) {
      return InvalidArgument(std::to_string(n) + " " + std::string(what) + " exceed the limit of " +
                             std::to_string(max) + "; split the batch");
    }
    w_.U32(static_cast<uint32_t>(n));
    return Status::Ok();
  }
  Status Chunks(const std::vector<PutChunksRequest::Item>& chunks) {
    ST_RETURN_IF_ERROR(Count(chunks.size(), kMaxChunksPerPut, "chunks in one PutChunks"));
    for (const auto& item : chunks) {
      w_.Fixed(item.id.bytes);
      ST_RETURN_IF_ERROR(Blob(item.sealed, kMaxSealedChunkSize, "sealed chunk"));
    }
    return Status::Ok();
  }
  Status Ids(const std::vector<ChunkId>& ids) {
    ST_RETURN_IF_ERROR(Count(ids.size(), kMaxIdsPerBatch, "chunk ids in one batch"));
    for (const ChunkId& id : ids) w_.Fixed(id.bytes);
    return Status::Ok();
  }
  Status Blob(std::span<const std::byte> b, size_t max, std::string_view what) {
    if (b.size() > max) {
      return InvalidArgument(std::string(what) + " of " + std::to_string(b.size()) +
                             " bytes exceeds the limit of " + std::to_string(max));
    }
    w_.Bytes32(b);
    return Status::Ok();
  }
  // code u8 || Str16 text; long texts are cut, control characters replaced,
  // an OK result has no text.
  void StatusField(const Status& s) {
    w_.U8(WireCode(s.code()));
    std::string text = s.ok() ? std::string() : s.message().substr(0, kMaxErrorText);
    for (char& c : text)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    w_.Str16(text);
  }

  Writer& w_;
};

// ---- decoding ---------------------------------------------------------------

class Decoder {
 public:
  explicit Decoder(Reader& r) : r_(r) {}

  MessageBody Decode(MessageType type) {
    switch (type) {
      case MessageType::kHasChunks: {
        HasChunksRequest m;
        m.owner = Owner();
        m.ids = Ids();
        return m;
      }
      case MessageType::kPutChunks: {
        PutChunksRequest m;
        uint32_t n = r_.Count(kMaxChunksPerPut, kPutChunkItemOverhead);
        m.chunks.resize(n);
        for (auto& item : m.chunks) {
          item.id = Id();
          item.sealed = Blob(kMaxSealedChunkSize);
        }
        return m;
      }
      case MessageType::kGetChunk: {
        GetChunkRequest m;
        m.owner = Owner();
        m.id = Id();
        return m;
      }
      case MessageType::kReleaseChunks: return ReleaseChunksRequest{Ids()};
      case MessageType::kPutRoots: {
        PutRootsRequest m;
        m.generation = r_.U64();
        m.roots = Blob(kMaxRootsSize);
        return m;
      }
      case MessageType::kGetRoots: return GetRootsRequest{Owner()};
      case MessageType::kPutWrappedKey: return PutWrappedKeyRequest{Blob(kMaxWrappedKeySize)};
      case MessageType::kGetWrappedKey: return GetWrappedKeyRequest{Owner()};
      case MessageType::kGetStats: return GetStatsRequest{};
      case MessageType::kOk: return OkReply{};
      case MessageType::kHasChunksReply: return HasChunks();
      case MessageType::kPutChunksReply: {
        PutChunksReply m;
        uint32_t n = r_.Count(kMaxChunksPerPut, 3);
        m.results.reserve(n);
        for (uint32_t i = 0; i < n && r_.ok(); ++i) m.results.push_back(StatusField(true));
        return m;
      }
      case MessageType::kChunkReply: return ChunkReply{Blob(kMaxSealedChunkSize)};
      case MessageType::kReleaseChunksReply: return ReleaseChunksReply{r_.U32()};
      case MessageType::kRootsReply: {
        RootsReply m;
        m.generation = r_.U64();
        m.roots = Blob(kMaxRootsSize);
        return m;
      }
      case MessageType::kWrappedKeyReply: return WrappedKeyReply{Blob(kMaxWrappedKeySize)};
      case MessageType::kStatsReply: {
        StatsReply m;
        m.used_bytes = r_.U64();
        m.quota_bytes = r_.U64();
        m.chunk_count = r_.U64();
        m.free_bytes = r_.U64();
        return m;
      }
      case MessageType::kError: return ErrorReply{StatusField(false)};
      case MessageType::kMigrateHasChunks: return MigrateHasChunksRequest{Ids()};
      case MessageType::kMigratePutChunks:
        return MigratePutChunksRequest{std::get<PutChunksRequest>(Decode(MessageType::kPutChunks)).chunks};
      case MessageType::kMigrateRestore: {
        MigrateRestoreRequest m;
        uint32_t n = r_.Count(kMaxMigrationIndex, ChunkId::kSize);
        m.index.resize(n);
        for (ChunkId& id : m.index) id = Id();
        auto key = r_.Fixed(kMigrationKeySize);
        if (key.size() == kMigrationKeySize) {
          m.key = SecretBuffer(kMigrationKeySize);
          std::memcpy(m.key.data(), key.data(), key.size());
        }
        return m;
      }
      case MessageType::kMigrateRestoreReply: return MigrateRestoreReply{r_.U32()};
      case MessageType::kMigrateCheck: {
        MigrateCheckRequest m;
        const uint8_t privileged = r_.U8();
        if (r_.ok() && privileged > 1) r_.Fail("privileged is neither 0 nor 1");
        m.privileged = privileged == 1;
        for (auto* names : {&m.users, &m.groups})
          for (std::string& n : *names) n = AccountName();
        const uint32_t n = r_.Count(kMaxMigrateGroups, 2);
        for (uint32_t i = 0; i < n && r_.ok(); ++i) m.supplementary.push_back(AccountName());
        return m;
      }
      case MessageType::kHoldSnapshot: {
        HoldSnapshotRequest m;
        m.owner = Owner();
        m.snapshot = r_.Str8();
        if (r_.ok() && (m.snapshot.empty() || m.snapshot.size() > 64 || !ValidOwner(m.snapshot))) {
          r_.Fail("held snapshot name is not 1-64 characters of [A-Za-z0-9._-]");
        }
        m.seconds = r_.U32();
        return m;
      }
      case MessageType::kListChunks: {
        ListChunksRequest m;
        m.owner = Owner();
        uint8_t flag = r_.U8();
        if (r_.ok() && flag > 1) r_.Fail("ListChunks from_start is neither 0 nor 1");
        m.from_start = flag == 1;
        m.after = Id();
        return m;
      }
      case MessageType::kChunkListReply: return ChunkListReply{Ids()};
      case MessageType::kCaretakerPutChunks: {
        CaretakerPutChunksRequest m;
        m.owner = Owner();
        m.chunks = std::get<PutChunksRequest>(Decode(MessageType::kPutChunks)).chunks;
        return m;
      }
    }
    r_.Fail("unknown message type");
    return OkReply{};
  }

 private:
  std::string AccountName() {
    std::string name = r_.Str8();
    if (r_.ok() && !ValidAccountName(name)) r_.Fail("not a user or group name");
    return name;
  }
  std::string Owner() {
    std::string owner = r_.Str8();
    if (r_.ok() && !ValidOwner(owner)) r_.Fail("owner name is not an agent name");
    return owner;
  }
  ChunkId Id() {
    auto b = r_.Fixed(ChunkId::kSize);
    return b.size() == ChunkId::kSize
               ? ChunkId::FromBytes(std::span<const std::byte, ChunkId::kSize>(b.data(), b.size()))
               : ChunkId{};
  }
  std::vector<ChunkId> Ids() {
    uint32_t n = r_.Count(kMaxIdsPerBatch, ChunkId::kSize);
    std::vector<ChunkId> ids(n);
    for (ChunkId& id : ids) id = Id();
    return ids;
  }
  std::vector<std::byte> Blob(size_t max) {
    auto b = r_.Bytes32(max);
    return {b.begin(), b.end()};
  }
  HasChunksReply HasChunks() {
    HasChunksReply m;
    uint32_t n = r_.Count(kMaxIdsPerBatch, 0);
    auto bits = r_.Fixed((size_t{n} + 7) / 8);
    if (!r_.ok()) return m;
    m.present.resize(n);
    for (size_t i = 0; i < n; ++i) m.present[i] = (bits[i / 8] & std::byte(1u << (i % 8))) != std::byte{0};
    if (n % 8 != 0 && (bits[n / 8] >> (n % 8)) != std::byte{0}) {
      r_.Fail("HasChunksReply bitmap has bits set beyond its count");
    }
    return m;
  }
  // An error (or, in a result list, OK) status: code u8 || Str16 text.
  Status StatusField(bool ok_allowed) {
    uint8_t code = r_.U8();
    std::string text = r_.Str16(kMaxErrorText);
    if (!r_.ok()) return Status::Ok();
    if (code >= kWireCodes.size() || (code == 0 && !ok_allowed)) {
      r_.Fail("error code " + std::to_string(code) + " is not a valid error");
      return Status::Ok();
    }
    if (!ValidText(text)) {
      r_.Fail("error text contains control characters");
      return Status::Ok();
    }
    if (code == 0) {
      if (!text.empty()) r_.Fail("an OK result carries text");
      return Status::Ok();
    }
    return Status(kWireCodes[code], std::move(text));
  }

  Reader& r_;
};

}  // namespace

MessageType TypeOf(const MessageBody& body) {
  static constexpr MessageType kTypes[] = {
      MessageType::kHasChunks,        MessageType::kPutChunks,      MessageType::kGetChunk,
      MessageType::kReleaseChunks,    MessageType::kPutRoots,       MessageType::kGetRoots,
      MessageType::kPutWrappedKey,    MessageType::kGetWrappedKey,  MessageType::kGetStats,
      MessageType::kOk,               MessageType::kHasChunksReply, MessageType::kPutChunksReply,
      MessageType::kChunkReply,       MessageType::kReleaseChunksReply, MessageType::kRootsReply,
      MessageType::kWrappedKeyReply,  MessageType::kStatsReply,     MessageType::kError,
      MessageType::kMigrateHasChunks, MessageType::kMigratePutChunks, MessageType::kMigrateRestore,
      MessageType::kMigrateRestoreReply, MessageType::kHoldSnapshot, MessageType::kMigrateCheck,
      MessageType::kListChunks,       MessageType::kChunkListReply, MessageType::kCaretakerPutChunks,
  };
  static_assert(std::size(kTypes) == std::variant_size_v<MessageBody>);
  return kTypes[body.index()];
}

std::string MessageName(uint8_t type) {
  std::string_view name;
  switch (static_cast<MessageType>(type)) {
    case MessageType::kHasChunks: name = "HasChunks"; break;
    case MessageType::kPutChunks: name = "PutChunks"; break;
    case MessageType::kGetChunk: name = "GetChunk"; break;
    case MessageType::kReleaseChunks: name = "ReleaseChunks"; break;
    case MessageType::kPutRoots: name = "PutRoots"; break;
    case MessageType::kGetRoots: name = "GetRoots"; break;
    case MessageType::kPutWrappedKey: name = "PutWrappedKey"; break;
    case MessageType::kGetWrappedKey: name = "GetWrappedKey"; break;
    case MessageType::kGetStats: name = "GetStats"; break;
    case MessageType::kOk: name = "Ok"; break;
    case MessageType::kHasChunksReply: name = "HasChunksReply"; break;
    case MessageType::kPutChunksReply: name = "PutChunksReply"; break;
    case MessageType::kChunkReply: name = "ChunkReply"; break;
    case MessageType::kReleaseChunksReply: name = "ReleaseChunksReply"; break;
    case MessageType::kRootsReply: name = "RootsReply"; break;
    case MessageType::kWrappedKeyReply: name = "WrappedKeyReply"; break;
    case MessageType::kStatsReply: name = "StatsReply"; break;
    case MessageType::kError: name = "Error"; break;
    case MessageType::kMigrateHasChunks: name = "MigrateHasChunks"; break;
    case MessageType::kMigratePutChunks: name = "MigratePutChunks"; break;
    case MessageType::kMigrateRestore: name = "MigrateRestore"; break;
    case MessageType::kMigrateRestoreReply: name = "MigrateRestoreReply"; break;
    case MessageType::kHoldSnapshot: name = "HoldSnapshot"; break;
    case MessageType::kMigrateCheck: name = "MigrateCheck"; break;
    case MessageType::kListChunks: name = "ListChunks"; break;
    case MessageType::kChunkListReply: name = "ChunkListReply"; break;
    case MessageType::kCaretakerPutChunks: name = "CaretakerPutChunks"; break;
  }
  char hex[8];
  std::snprintf(hex, sizeof hex, "0x%02x", type);
  return name.empty() ? "unknown message type " + std::string(hex)
                      : std::string(name) + " (" + hex + ")";
}

Result<std::vector<std::byte>> EncodeMessage(const Message& message) {
  Writer w;
  MessageType type = TypeOf(message.body);
  w.U8(static_cast<uint8_t>(type));
  w.U32(message.request_id);
  Encoder encoder(w);
  Status st = std::visit(encoder, message.body);
  if (!st.ok()) return st.WithContext("encoding " + MessageName(uint8_t(type)));
  if (w.size() > kMaxMessageSize) {
    return InvalidArgument("encoding " + MessageName(uint8_t(type)) + ": " +
                           std::to_string(w.size()) + " bytes exceed the message limit of " +
                           std::to_string(kMaxMessageSize) + "; split the batch");
  }
  return std::move(w).Take();
}

void WipeSecrets(std::span<std::byte> encoded) {
  if (!encoded.empty() && encoded[0] == std::byte(MessageType::kMigrateRestore))
    sodium_memzero(encoded.data(), encoded.size());
}

Result<Message> DecodeMessage(std::span<const std::byte> bytes) {
  if (bytes.size() > kMaxMessageSize) {
    return Corruption("message of " + std::to_string(bytes.size()) + " bytes exceeds the limit");
  }
  std::string what = bytes.empty() ? std::string("message") : MessageName(uint8_t(bytes[0]));
  Reader r(bytes, what);
  Message m;
  auto type = static_cast<MessageType>(r.U8());
  m.request_id = r.U32();
  if (r.ok()) {
    Decoder decoder(r);
    m.body = decoder.Decode(type);
  }
  ST_RETURN_IF_ERROR(r.Finish());
  return m;
}

}  // namespace sparetime::transport
