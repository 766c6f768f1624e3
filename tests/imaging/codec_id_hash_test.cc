// The codec with HMAC-SHA-256 chunk ids: the project's vectors of
// docs/formats.md ("Chunk id", master key 0x00..0x1f -> HMAC id key, subkey
// 4 -> ids of fixed inputs; cross-checked by scripts/crosscheck-key-vectors.py
// with Python's hmac/hashlib), BLAKE2b ids unchanged, a sealed round trip,
// and the restore's id re-check: a blob opened by a codec with the other id
// function is refused as content that does not hash to its id.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "keys_testing.h"
#include "sparetime/base/bytes.h"
#include "sparetime/base/fd.h"
#include "sparetime/imaging/codec.h"

namespace sparetime {
namespace {

using testing::VectorMaster;

// "sparetime test vector\n" repeated and cut to n bytes (formats.md's P(n)).
std::vector<std::byte> Pattern(size_t n) {
  const std::string s = "sparetime test vector\n";
  std::vector<std::byte> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = std::byte(s[i % s.size()]);
  return v;
}

class CodecIdHash : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(InitCrypto().ok()); }
  std::shared_ptr<const KeySet> keys_ = KeySet::Derive(VectorMaster());
  Codec hmac_{keys_, {.id_hash = IdHash::kHmacSha256}};
  Codec blake_{keys_, {.id_hash = IdHash::kBlake2b}};
};

TEST_F(CodecIdHash, HmacIdKeyIsSubkeyFour) {
  EXPECT_EQ(testing::Hex(keys_->hmac_id_key()),
            "636dc1888e39810aedd5a797fab45fac2fb962d4fc4ef39f318a41a81f0d88ad");
  // Distinct from the BLAKE2b id key (subkey 1).
  EXPECT_EQ(testing::Hex(keys_->id_key()),
            "46c03483d5b8613fcc73578671190d5bd05ce0fb541ba6f3213dac8018f13452");
}

TEST_F(CodecIdHash, ProjectVectors) {
  EXPECT_EQ(hmac_.Id({}).hex(), "11a5c0525d113cdfaf2041a050fe4a7b3de724ca6b5a691ca41161d00afc02d3");
  EXPECT_EQ(hmac_.Id(AsBytes("sparetime")).hex(),
            "a95c584a33106c5e3c32b8fa7331a74b239e109551927b73fd1066f8937bb77c");
  EXPECT_EQ(hmac_.Id(Pattern(4096)).hex(),
            "c81b6ec24bf092dd677c8121a0471b3a0b05a034b5afa4484565154962cc7cb5");
  EXPECT_EQ(hmac_.Id(Pattern(1 << 20)).hex(),
            "71850578938f8bbdc753b011de3e8b372d189829609e838e30c6e43473399a64");
  // The default stays BLAKE2b, with the vectors of before.
  Codec plain(keys_, {});
  EXPECT_EQ(plain.options().id_hash, IdHash::kBlake2b);
  EXPECT_EQ(plain.Id(AsBytes("sparetime")).hex(),
            "21413d600567417b3a5005eed0bdb87ff8a6d1c13a81a47f15d1c74940ecefdf");
  EXPECT_EQ(blake_.Id(Pattern(4096)).hex(),
            "e8c98bf77feb92346c9160d1ed0befdb4656b9e5e99f6ccc7cf1c857d9ebaca8");
}

TEST_F(CodecIdHash, SealsAndOpensWithHmacIds) {
  const std::vector<std::byte> data = Pattern(100000);
  const ChunkId id = hmac_.Id(data);
  const std::vector<std::byte> sealed = hmac_.Seal(BlobKind::kData, id, data);
  Result<std::vector<std::byte>> back = hmac_.Open(BlobKind::kData, id, sealed, 1 << 20);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, data);
}

// Same keys for sealing, other id function: authentication passes (the AD
// holds the id as given), and the id re-check refuses the plaintext.
TEST_F(CodecIdHash, TheIdReCheckUsesTheRepositorysFunction) {
  const std::vector<std::byte> data = Pattern(5000);
  const ChunkId id = hmac_.Id(data);
  const std::vector<std::byte> sealed = hmac_.Seal(BlobKind::kData, id, data);
  Result<std::vector<std::byte>> wrong = blake_.Open(BlobKind::kData, id, sealed, 1 << 20);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), ErrorCode::kCorruption);
  EXPECT_EQ(wrong.status().message(),
            "chunk " + id.short_hex() + ": content does not hash to its id (damaged before sealing?)");
  std::vector<std::byte> out(1 << 20);
  Result<size_t> into = blake_.OpenInto(BlobKind::kData, id, sealed, out);
  EXPECT_EQ(into.status().code(), ErrorCode::kCorruption);
}

}  // namespace
}  // namespace sparetime
