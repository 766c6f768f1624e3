// Manifest: round trips at piece boundaries, piece reuse, the root layout of
// docs/formats.md, and rejection of damaged or inconsistent manifests. A real
// Codec seals; a std::map stands in for the chunk store.
#include "sparetime/imaging/manifest.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "sparetime/base/bytes.h"
#include "testutil/testutil.h"

namespace sparetime {
namespace {

using testing::RandomBytes;

// In-memory ChunkSink + ChunkSource that counts what it is asked to do.
class MapStore : public ChunkSink, public ChunkSource {
 public:
  Result<bool> Contains(const ChunkId& id) override {
    std::lock_guard lock(mu_);
    return blobs.count(id) > 0;
  }
  Result<bool> Put(const ChunkId& id, std::span<const std::byte> sealed) override {
    std::lock_guard lock(mu_);
    bool existed = !blobs.emplace(id, std::vector<std::byte>(sealed.begin(), sealed.end())).second;
    if (!existed) ++new_puts;
    return existed;
  }
  Status Flush() override { return Status::Ok(); }
  Result<std::vector<std::byte>> Get(const ChunkId& id) override {
    std::lock_guard lock(mu_);
    auto it = blobs.find(id);
    if (it == blobs.end()) return NotFound("chunk " + id.hex() + " is not held");
    return it->second;
  }

  std::map<ChunkId, std::vector<std::byte>> blobs;
  int new_puts = 0;  // Puts that returned false

 private:
  std::mutex mu_;
};

constexpr uint32_t kChunk = 64 << 10;

class ManifestTest : public ::testing::Test {
 protected:
  ManifestTest() : codec_(Keys(), CodecOptions{}) {}

  static std::shared_ptr<const KeySet> Keys() {
    if (!InitCrypto().ok()) std::abort();
    SecretBuffer master(KeySet::kKeySize);
    std::memset(master.data(), 0x42, master.size());
    return KeySet::Derive(master);
  }

  // `count` chunks (the last one short), every 5th a hole.
  static Manifest Make(uint64_t count, uint64_t seed = 1) {
    Manifest m;
    m.device = DeviceIdentity{"/dev/loop3", "block", 0, 512, "", "", "/srv/a.img", ""};
    m.chunk_size = kChunk;
    m.size = count == 0 ? 0 : count * kChunk - 100;
    m.device.size = m.size;
    std::vector<std::byte> raw = RandomBytes(count * ChunkId::kSize, seed);
    for (uint64_t i = 0; i < count; ++i) {
      m.chunks.push_back(i % 5 == 3 ? kHoleId
                                    : ChunkId::FromBytes(std::span<const std::byte, 32>(
                                          raw.data() + i * ChunkId::kSize, 32)));
    }
    return m;
  }

  // Seals `plaintext` as a manifest chunk into the store; returns its id.
  ChunkId PutRaw(const std::vector<std::byte>& plaintext) {
    ChunkId id = codec_.Id(plaintext);
    EXPECT_TRUE(store_.Put(id, codec_.Seal(BlobKind::kManifest, id, plaintext)).ok());
    return id;
  }

  std::vector<std::byte> OpenRoot(const ChunkId& root) {
    Result<std::vector<std::byte>> plain =
        codec_.Open(BlobKind::kManifest, root, store_.blobs.at(root), 16 << 20);
    EXPECT_TRUE(plain.ok()) << plain.status().ToString();
    return plain.ok() ? *plain : std::vector<std::byte>{};
  }

  void ExpectCorruption(const ChunkId& root, const std::string& in_message) {
    Result<Manifest> m = LoadManifest(root, codec_, store_);
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.error().code(), ErrorCode::kCorruption) << m.error().ToString();
    EXPECT_NE(m.error().message().find(in_message), std::string::npos) << m.error().message();
  }

  Codec codec_;
  MapStore store_;
};

// The root layout of docs/formats.md, built by hand.
struct RootFields {
  std::string magic = "STMANIF1";
  uint32_t version = 1;
  uint64_t size = 0;
  uint32_t chunk_size = kChunk;
  uint64_t count = 0;
  std::string json = DeviceIdentity{"/d", "file", 0, 512, "", "", "", ""}.ToJson().dump();
  std::vector<ChunkId> pieces;
  std::vector<std::byte> trailer;

  std::vector<std::byte> Encode() const {
    std::vector<std::byte> out;
    AppendBytes(out, std::as_bytes(std::span(magic)));
    AppendLe32(out, version);
    AppendLe64(out, size);
    AppendLe32(out, chunk_size);
    AppendLe64(out, count);
    AppendLe32(out, static_cast<uint32_t>(json.size()));
    AppendBytes(out, std::as_bytes(std::span(json)));
    AppendLe32(out, static_cast<uint32_t>(pieces.size()));
    for (const ChunkId& p : pieces) AppendBytes(out, p.bytes);
    AppendBytes(out, trailer);
    return out;
  }
};

TEST_F(ManifestTest, RoundTripAtPieceBoundaries) {
  for (uint64_t count : {0, 1, 2047, 2048, 2049, 10000}) {
    SCOPED_TRACE(count);
    MapStore store;
    Manifest m = Make(count);
    Result<ChunkId> root = StoreManifest(m, codec_, store);
    ASSERT_TRUE(root.ok()) << root.status().ToString();
    uint64_t pieces = (count + Manifest::kEntriesPerPiece - 1) / Manifest::kEntriesPerPiece;
    EXPECT_EQ(store.blobs.size(), pieces + 1);

    Result<Manifest> back = LoadManifest(*root, codec_, store);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(back->device.ToJson(), m.device.ToJson());
    EXPECT_EQ(back->size, m.size);
    EXPECT_EQ(back->chunk_size, m.chunk_size);
    EXPECT_EQ(back->chunk_count(), count);
    EXPECT_TRUE(back->chunks == m.chunks);

    Result<std::vector<ChunkId>> ids = ManifestChunkIds(*root, codec_, store);
    ASSERT_TRUE(ids.ok()) << ids.status().ToString();
    ASSERT_EQ(ids->size(), pieces + 1);
    EXPECT_EQ(ids->front(), *root);
    for (const ChunkId& id : *ids) EXPECT_EQ(store.blobs.count(id), 1u) << id.hex();
  }
}

TEST_F(ManifestTest, ChunkLength) {
  Manifest m;
  m.chunk_size = kChunk;
  m.size = 2 * kChunk + 18928;
  EXPECT_EQ(m.ChunkLength(0), kChunk);
  EXPECT_EQ(m.ChunkLength(1), kChunk);
  EXPECT_EQ(m.ChunkLength(2), 18928u);
  EXPECT_EQ(m.ChunkLength(3), 0u);
  m.size = 2 * kChunk;
  EXPECT_EQ(m.ChunkLength(1), kChunk);
}

TEST_F(ManifestTest, UnchangedManifestAddsNothing) {
  Manifest m = Make(10000);
  Result<ChunkId> first = StoreManifest(m, codec_, store_);
  ASSERT_TRUE(first.ok());
  int puts = store_.new_puts;
  size_t blobs = store_.blobs.size();
  EXPECT_EQ(puts, 6);  // 5 pieces + root
  Result<ChunkId> second = StoreManifest(m, codec_, store_);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*second, *first);
  EXPECT_EQ(store_.new_puts, puts);
  EXPECT_EQ(store_.blobs.size(), blobs);
}

TEST_F(ManifestTest, OneChangedChunkChangesOnePiece) {
  Manifest m = Make(10000);
  ChunkId root1 = *StoreManifest(m, codec_, store_);
  m.chunks[5000] = m.chunks[4999] == kHoleId ? m.chunks[0] : kHoleId;  // in piece 2
  ChunkId root2 = *StoreManifest(m, codec_, store_);
  EXPECT_NE(root1, root2);
  EXPECT_EQ(store_.new_puts, 6 + 2);  // one new piece and one new root

  std::vector<ChunkId> ids1 = *ManifestChunkIds(root1, codec_, store_);
  std::vector<ChunkId> ids2 = *ManifestChunkIds(root2, codec_, store_);
  ASSERT_EQ(ids1.size(), ids2.size());
  for (size_t i = 1; i < ids1.size(); ++i) {
    if (i == 1 + 5000 / Manifest::kEntriesPerPiece)
      EXPECT_NE(ids1[i], ids2[i]);
    else
      EXPECT_EQ(ids1[i], ids2[i]) << "piece " << i - 1;
  }
  EXPECT_TRUE(LoadManifest(root2, codec_, store_)->chunks == m.chunks);
}

TEST_F(ManifestTest, RootLayoutMatchesTheDocs) {
  Manifest m = Make(2049);
  ChunkId root = *StoreManifest(m, codec_, store_);
  std::vector<std::byte> plain = OpenRoot(root);
  std::vector<ChunkId> ids = *ManifestChunkIds(root, codec_, store_);

  RootFields want;
  want.size = m.size;
  want.count = 2049;
  want.json = m.device.ToJson().dump();
  want.pieces.assign(ids.begin() + 1, ids.end());
  EXPECT_EQ(plain, want.Encode());
  // Piece 1 is the raw concatenation of the last id.
  EXPECT_EQ(codec_.Id(std::span(m.chunks.back().bytes)), ids[2]);
}

TEST_F(ManifestTest, TamperedRootIsCorruption) {
  ChunkId root = *StoreManifest(Make(3000), codec_, store_);
  store_.blobs[root][40] ^= std::byte{1};
  ExpectCorruption(root, "manifest " + root.short_hex());
  Result<std::vector<ChunkId>> ids = ManifestChunkIds(root, codec_, store_);
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.error().code(), ErrorCode::kCorruption);
}

TEST_F(ManifestTest, TamperedOrMissingPieceIsCorruption) {
  ChunkId root = *StoreManifest(Make(3000), codec_, store_);
  std::vector<ChunkId> ids = *ManifestChunkIds(root, codec_, store_);
  std::vector<std::byte> saved = store_.blobs[ids[2]];
  store_.blobs[ids[2]].back() ^= std::byte{0x80};
  ExpectCorruption(root, "piece 1");
  store_.blobs.erase(ids[2]);
  ExpectCorruption(root, "piece 1 (" + ids[2].short_hex() + ") is missing");
  store_.blobs[ids[2]] = saved;
  EXPECT_TRUE(LoadManifest(root, codec_, store_).ok());
  // A piece from another manifest's position (the wrong id) fails the id check.
  store_.blobs[ids[2]] = store_.blobs[ids[1]];
  ExpectCorruption(root, "piece 1");
}

TEST_F(ManifestTest, MissingRootIsNotFound) {
  ChunkId nowhere = codec_.Id(RandomBytes(10, 1));
  Result<Manifest> m = LoadManifest(nowhere, codec_, store_);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(m.error().message().find(nowhere.short_hex()), std::string::npos);
}

TEST_F(ManifestTest, InconsistentRootsAreCorruption) {
  // A valid root for 3 chunks: size 3*64KiB-1, one piece.
  std::vector<ChunkId> three = Make(3).chunks;
  std::vector<std::byte> piece;
  for (const ChunkId& id : three) AppendBytes(piece, id.bytes);
  ChunkId piece_id = PutRaw(piece);
  RootFields good;
  good.size = 3 * kChunk - 1;
  good.count = 3;
  good.pieces = {piece_id};
  ASSERT_TRUE(LoadManifest(PutRaw(good.Encode()), codec_, store_).ok());

  struct Case {
    std::function<void(RootFields&)> mutate;
    std::string message;
  } cases[] = {
      {[](RootFields& r) { r.count = 4; }, "header lists 4 chunks, but an image of 196607 bytes"},
      {[](RootFields& r) { r.size = 10 * kChunk; }, "has 10"},
      {[](RootFields& r) {
         r.count = 2049;
         r.size = 2049ull * kChunk;
       },
       "1 pieces"},
      {[](RootFields& r) { r.pieces.clear(); }, "root lists 0 pieces"},
      {[](RootFields& r) { r.chunk_size = 1000; }, "chunk size 1000 is not allowed"},
      {[](RootFields& r) { r.chunk_size = 0; }, "chunk size 0 is not allowed"},
      {[](RootFields& r) { r.magic = "STMANIF0"; }, "not a manifest"},
      {[](RootFields& r) { r.version = 2; }, "format version 2 is not supported"},
      {[](RootFields& r) { r.json = "{not json"; }, "not valid JSON"},
      {[](RootFields& r) { r.json = "{\"path\":\"/d\"}"; }, "missing field"},
      {[](RootFields& r) { r.trailer = {std::byte{0}}; }, "33 bytes of piece ids, expected 32"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    RootFields r = good;
    c.mutate(r);
    ExpectCorruption(PutRaw(r.Encode()), c.message);
  }
  // Truncated anywhere in the header.
  std::vector<std::byte> full = good.Encode();
  for (size_t n : {0, 7, 8, 11, 20, 35, 40, 60}) {
    SCOPED_TRACE(n);
    ExpectCorruption(PutRaw({full.begin(), full.begin() + n}), "manifest");
  }
}

TEST_F(ManifestTest, PieceOfTheWrongLengthIsCorruption) {
  // The root says 3 chunks, the (authentic) piece holds 2 ids.
  std::vector<std::byte> piece;
  for (const ChunkId& id : Make(2).chunks) AppendBytes(piece, id.bytes);
  RootFields r;
  r.size = 3 * kChunk;
  r.count = 3;
  r.pieces = {PutRaw(piece)};
  ExpectCorruption(PutRaw(r.Encode()), "holds 64 bytes, expected 96");
}

TEST_F(ManifestTest, StoreRejectsInconsistentManifests) {
  Manifest m = Make(10);
  m.chunks.pop_back();
  Result<ChunkId> r = StoreManifest(m, codec_, store_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("manifest has 9 chunk ids"), std::string::npos);

  m = Make(10);
  m.chunk_size = 3000;
  r = StoreManifest(m, codec_, store_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(store_.blobs.empty());
}

}  // namespace
}  // namespace sparetime
