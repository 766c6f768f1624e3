// Manifest storage: the ordered chunk-id list cut into fixed pieces of
// Manifest::kEntriesPerPiece ids, each sealed as a kManifest chunk, and a
// small root chunk holding the header and the piece ids (docs/formats.md).
//
// Root plaintext (all integers little-endian):
//   "STMANIF1" | u32 version=1 | u64 image size | u32 chunk size |
//   u64 chunk count | u32 n + n bytes of DeviceIdentity JSON |
//   u32 piece count | piece count * 32-byte piece ids
// Piece i: the raw 32-byte ids of chunks [i*kEntriesPerPiece, ...), full
// except the last.
//
// Invariants: identical manifests produce identical pieces and root (ids are
// content hashes), so storing an unchanged manifest adds nothing; parsing
// trusts no length — every count is checked against the image size and
// chunk size before it is used, and Open() bounds every plaintext.
#include "sparetime/imaging/manifest.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>

#include "sparetime/base/bytes.h"
#include "sparetime/imaging/chunker.h"

namespace sparetime {
namespace {

constexpr char kMagic[8] = {'S', 'T', 'M', 'A', 'N', 'I', 'F', '1'};
constexpr uint32_t kVersion = 1;
constexpr size_t kMaxRootSize = 16u << 20;
constexpr size_t kPieceBytes = Manifest::kEntriesPerPiece * ChunkId::kSize;

// Pieces are the id vector's bytes as they lie in memory.
static_assert(sizeof(ChunkId) == ChunkId::kSize && std::is_trivially_copyable_v<ChunkId>);

uint64_t ChunksFor(uint64_t size, uint32_t chunk_size) {
  return size / chunk_size + (size % chunk_size != 0 ? 1 : 0);
}
uint64_t PiecesFor(uint64_t chunks) {
  return chunks / Manifest::kEntriesPerPiece + (chunks % Manifest::kEntriesPerPiece != 0 ? 1 : 0);
}
// Number of ids in piece `i` of a manifest with `chunks` ids.
uint64_t EntriesInPiece(uint64_t chunks, uint64_t i) {
  return std::min<uint64_t>(Manifest::kEntriesPerPiece, chunks - i * Manifest::kEntriesPerPiece);
}

std::string Name(const ChunkId& root) { return "manifest " + root.short_hex(); }

// Seals and stores `plaintext` unless the sink already holds its id.
Result<ChunkId> PutOnce(const Codec& codec, ChunkSink& sink, std::span<const std::byte> plaintext) {
  ChunkId id = codec.Id(plaintext);
  ST_ASSIGN_OR_RETURN(bool held, sink.Contains(id));
  if (!held) {
    ST_ASSIGN_OR_RETURN(bool existed, sink.Put(id, codec.Seal(BlobKind::kManifest, id, plaintext)));
    (void)existed;  // a concurrent writer stored it first: same content
  }
  return id;
}

// Fetches and opens one manifest chunk. A missing piece means the snapshot
// is damaged (kCorruption); a missing root is just kNotFound.
Result<std::vector<std::byte>> Fetch(const Codec& codec, ChunkSource& source, const ChunkId& id,
                                     size_t max_plaintext, const std::string& what,
                                     bool missing_is_corruption) {
  Result<std::vector<std::byte>> sealed = source.Get(id);
  if (!sealed.ok()) {
    if (missing_is_corruption && sealed.error().code() == ErrorCode::kNotFound) {
      return Corruption(what + " is missing (" + sealed.error().message() +
                        "); the snapshot is damaged");
    }
    return sealed.error().WithContext(what);
  }
  Result<std::vector<std::byte>> plain =
      codec.Open(BlobKind::kManifest, id, *sealed, max_plaintext);
  if (!plain.ok()) return plain.error().WithContext(what);
  return plain;
}

// A bounds-checked little-endian cursor over the root plaintext.
class Cursor {
 public:
  explicit Cursor(std::span<const std::byte> b) : b_(b) {}
  size_t remaining() const { return b_.size() - pos_; }
  bool Bytes(size_t n, std::span<const std::byte>& out) {
    if (n > remaining()) return false;
    out = b_.subspan(pos_, n);
    pos_ += n;
    return true;
  }
  bool U32(uint32_t& v) {
    std::span<const std::byte> s;
    if (!Bytes(4, s)) return false;
    v = GetLe32(s.data());
    return true;
  }
  bool U64(uint64_t& v) {
    std::span<const std::byte> s;
    if (!Bytes(8, s)) return false;
    v = GetLe64(s.data());
    return true;
  }

 private:
  std::span<const std::byte> b_;
  size_t pos_ = 0;
};

// Appends the ids in `raw` (a multiple of 32 bytes) to `out`.
void AppendIds(std::span<const std::byte> raw, std::vector<ChunkId>& out) {
  for (size_t at = 0; at + ChunkId::kSize <= raw.size(); at += ChunkId::kSize) {
    out.push_back(ChunkId::FromBytes(raw.subspan(at).first<ChunkId::kSize>()));
  }
}

struct Root {
  Manifest header;  // everything but `chunks`
  uint64_t chunk_count = 0;
  std::vector<ChunkId> pieces;
};

// Root size for `json_size` bytes of identity and `pieces` piece ids.
uint64_t RootSize(uint64_t json_size, uint64_t pieces) {
  return sizeof kMagic + 4 + 8 + 4 + 8 + 4 + json_size + 4 + pieces * ChunkId::kSize;
}

std::vector<std::byte> EncodeRoot(const Manifest& m, const std::string& json,
                                  const std::vector<ChunkId>& pieces) {
  std::vector<std::byte> out;
  out.reserve(RootSize(json.size(), pieces.size()));
  AppendBytes(out, std::as_bytes(std::span(kMagic)));
  AppendLe32(out, kVersion);
  AppendLe64(out, m.size);
  AppendLe32(out, m.chunk_size);
  AppendLe64(out, m.chunks.size());
  AppendLe32(out, static_cast<uint32_t>(json.size()));
  AppendBytes(out, std::as_bytes(std::span(json)));
  AppendLe32(out, static_cast<uint32_t>(pieces.size()));
  AppendBytes(out, std::as_bytes(std::span(pieces)));
  return out;
}

Result<Root> ParseRoot(const ChunkId& root_id, std::span<const std::byte> b) {
  const std::string name = Name(root_id);
  auto bad = [&](const std::string& why) { return Corruption(name + ": " + why); };
  Cursor c(b);
  Root r;
  std::span<const std::byte> magic, json;
  uint32_t version = 0, json_len = 0, piece_count = 0;
  if (!c.Bytes(sizeof kMagic, magic) || std::memcmp(magic.data(), kMagic, sizeof kMagic) != 0) {
    return bad("root does not start with \"STMANIF1\": not a manifest");
  }
  if (!c.U32(version)) return bad("root is truncated in its header");
  if (version != kVersion) {
    return bad("format version " + std::to_string(version) +
               " is not supported (this build reads " + std::to_string(kVersion) +
               "); use a newer sparetime");
  }
  if (!c.U64(r.header.size) || !c.U32(r.header.chunk_size) || !c.U64(r.chunk_count) ||
      !c.U32(json_len) || !c.Bytes(json_len, json) || !c.U32(piece_count)) {
    return bad("root is truncated in its header");
  }
  if (Status st = ValidateChunkSize(r.header.chunk_size); !st.ok()) return bad(st.message());
  uint64_t want_chunks = ChunksFor(r.header.size, r.header.chunk_size);
  if (r.chunk_count != want_chunks) {
    return bad("header lists " + std::to_string(r.chunk_count) + " chunks, but an image of " +
               std::to_string(r.header.size) + " bytes in " + std::to_string(r.header.chunk_size) +
               "-byte chunks has " + std::to_string(want_chunks));
  }
  if (piece_count != PiecesFor(r.chunk_count)) {
    return bad("root lists " + std::to_string(piece_count) + " pieces, but " +
               std::to_string(r.chunk_count) + " chunk ids need " +
               std::to_string(PiecesFor(r.chunk_count)));
  }
  if (c.remaining() != uint64_t{piece_count} * ChunkId::kSize) {
    return bad("root holds " + std::to_string(c.remaining()) + " bytes of piece ids, expected " +
               std::to_string(uint64_t{piece_count} * ChunkId::kSize));
  }
  std::span<const std::byte> ids;
  (void)c.Bytes(c.remaining(), ids);
  r.pieces.reserve(piece_count);
  AppendIds(ids, r.pieces);

  nlohmann::json j = nlohmann::json::parse(json.begin(), json.end(), nullptr, false);
  if (j.is_discarded()) return bad("device identity is not valid JSON");
  Result<DeviceIdentity> device = DeviceIdentity::FromJson(j);
  if (!device.ok()) return bad(device.error().message());
  r.header.device = std::move(*device);
  return r;
}

Result<Root> LoadRoot(const ChunkId& root, const Codec& codec, ChunkSource& source) {
  ST_ASSIGN_OR_RETURN(std::vector<std::byte> plain,
                      Fetch(codec, source, root, kMaxRootSize, Name(root), false));
  return ParseRoot(root, plain);
}

}  // namespace

uint64_t Manifest::ChunkLength(uint64_t i) const {
  uint64_t offset = i * chunk_size;
  return offset >= size ? 0 : std::min<uint64_t>(chunk_size, size - offset);
}

Result<ChunkId> StoreManifest(const Manifest& manifest, const Codec& codec, ChunkSink& sink) {
  ST_RETURN_IF_ERROR(ValidateChunkSize(manifest.chunk_size));
  uint64_t want = ChunksFor(manifest.size, manifest.chunk_size);
  if (manifest.chunks.size() != want) {
    return InvalidArgument("manifest has " + std::to_string(manifest.chunks.size()) +
                           " chunk ids, but an image of " + std::to_string(manifest.size) +
                           " bytes in " + std::to_string(manifest.chunk_size) +
                           "-byte chunks needs " + std::to_string(want));
  }
  uint64_t piece_count = PiecesFor(want);
  std::string json = manifest.device.ToJson().dump();
  if (RootSize(json.size(), piece_count) > kMaxRootSize) {
    return InvalidArgument("an image of " + std::to_string(manifest.size) + " bytes in " +
                           std::to_string(manifest.chunk_size) +
                           "-byte chunks has too many chunks for one manifest; use larger chunks");
  }
  std::span<const std::byte> all = std::as_bytes(std::span(manifest.chunks));
  std::vector<ChunkId> pieces;
  pieces.reserve(piece_count);
  for (uint64_t i = 0; i < piece_count; ++i) {
    std::span<const std::byte> piece =
        all.subspan(i * kPieceBytes, EntriesInPiece(want, i) * ChunkId::kSize);
    ST_ASSIGN_OR_RETURN(ChunkId id, PutOnce(codec, sink, piece));
    pieces.push_back(id);
  }
  return PutOnce(codec, sink, EncodeRoot(manifest, json, pieces));
}

Result<Manifest> LoadManifest(const ChunkId& root, const Codec& codec, ChunkSource& source) {
  ST_ASSIGN_OR_RETURN(Root r, LoadRoot(root, codec, source));
  Manifest m = std::move(r.header);
  m.chunks.reserve(r.chunk_count);  // consistent with the authenticated piece list
  for (uint64_t i = 0; i < r.pieces.size(); ++i) {
    const std::string what =
        Name(root) + " piece " + std::to_string(i) + " (" + r.pieces[i].short_hex() + ")";
    ST_ASSIGN_OR_RETURN(std::vector<std::byte> piece,
                        Fetch(codec, source, r.pieces[i], kPieceBytes, what, true));
    uint64_t want = EntriesInPiece(r.chunk_count, i) * ChunkId::kSize;
    if (piece.size() != want) {
      return Corruption(what + " holds " + std::to_string(piece.size()) + " bytes, expected " +
                        std::to_string(want));
    }
    AppendIds(piece, m.chunks);
  }
  return m;
}

Result<std::vector<ChunkId>> ManifestChunkIds(const ChunkId& root, const Codec& codec,
                                              ChunkSource& source) {
  ST_ASSIGN_OR_RETURN(Root r, LoadRoot(root, codec, source));
  std::vector<ChunkId> ids;
  ids.reserve(r.pieces.size() + 1);
  ids.push_back(root);
  ids.insert(ids.end(), r.pieces.begin(), r.pieces.end());
  return ids;
}

}  // namespace sparetime
