// Codec tests: the documented test vectors (docs/formats.md, "Sealed chunk"),
// round trips over sizes and levels, and every way a blob can be damaged,
// swapped or inflated.
#include "sparetime/imaging/codec.h"

#include <gtest/gtest.h>
#include <sodium.h>
#include <zstd.h>

#include <memory>
#include <string>
#include <thread>

#include "sparetime/base/bytes.h"
#include "sparetime/base/fd.h"
#include "testutil/testutil.h"

namespace sparetime {
namespace {

using testing::RandomBytes;

std::shared_ptr<const KeySet> KeysFrom(uint8_t first_byte) {
  SecretBuffer master(KeySet::kKeySize);
  for (size_t i = 0; i < master.size(); ++i) master.data()[i] = std::byte(first_byte + i);
  return KeySet::Derive(master);
}

// The test-vector key set: master key bytes 0x00..0x1f.
std::shared_ptr<const KeySet> VectorKeys() { return KeysFrom(0x00); }

// "sparetime test vector\n" repeated and truncated to n bytes.
std::vector<std::byte> Pattern(size_t n) {
  const std::string s = "sparetime test vector\n";
  std::vector<std::byte> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = std::byte(s[i % s.size()]);
  return v;
}

std::array<std::byte, 24> VectorNonce() {
  std::array<std::byte, 24> nonce;
  for (size_t i = 0; i < nonce.size(); ++i) nonce[i] = std::byte(0x40 + i);
  return nonce;
}

std::vector<std::byte> Hex(std::string_view hex) { return FromHex(hex).value(); }

// Unkeyed BLAKE2b-256, hex: how the docs name long vectors.
std::string Blake2b(std::span<const std::byte> data) {
  std::array<std::byte, 32> h;
  crypto_generichash(reinterpret_cast<unsigned char*>(h.data()), h.size(),
                     reinterpret_cast<const unsigned char*>(data.data()), data.size(), nullptr, 0);
  return ToHex(h);
}

// zstd output is only guaranteed byte-identical for the version that made the
// vectors; any version must still open them.
bool SameZstdAsVectors() { return ZSTD_versionNumber() == 10504; }

constexpr size_t kMax = 8 << 20;

TEST(CodecVectors, ChunkIdOf4096BytePattern) {
  Codec codec(VectorKeys(), {});
  EXPECT_EQ(codec.Id(Pattern(4096)).hex(),
            "e8c98bf77feb92346c9160d1ed0befdb4656b9e5e99f6ccc7cf1c857d9ebaca8");
  EXPECT_EQ(codec.Id(AsBytes("sparetime")).hex(),
            "21413d600567417b3a5005eed0bdb87ff8a6d1c13a81a47f15d1c74940ecefdf");
  EXPECT_EQ(codec.Id(Pattern(1 << 20)).hex(),
            "e43e9f36338e4b8002f203f3456d3e5f3dd233f43ec9e5789851711454125e5c");
}

TEST(CodecVectors, CompressedDataChunk) {
  Codec codec(VectorKeys(), {.zstd_level = 3});
  auto plain = Pattern(4096);
  ChunkId id = codec.Id(plain);
  auto expected =
      Hex("02404142434445464748494a4b4c4d4e4f5051525354555657448507d056572548cade18d004a101608967a7"
          "28de981de3e13f1053844bba57f975766c70f61633186b947cec656bb7b799de3043ec1df1");
  auto opened = codec.Open(BlobKind::kData, id, expected, kMax);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(*opened, plain);
  if (!SameZstdAsVectors()) GTEST_SKIP() << "zstd " << ZSTD_versionString() << " is not 1.5.4";
  EXPECT_EQ(ToHex(codec.SealWithNonce(BlobKind::kData, id, plain, VectorNonce())), ToHex(expected));
}

TEST(CodecVectors, RawDataChunkAtLevel0) {
  Codec codec(VectorKeys(), {.zstd_level = 0});
  auto plain = Pattern(4096);
  auto sealed = codec.SealWithNonce(BlobKind::kData, codec.Id(plain), plain, VectorNonce());
  EXPECT_EQ(sealed.size(), 4137u);
  EXPECT_EQ(Blake2b(sealed), "6278dff0ffbc888d62f78b85e7a96fb3b1d6e42fc991cde4b2a9bedff1fcee8f");
}

TEST(CodecVectors, SmallManifestChunkStaysRaw) {
  Codec codec(VectorKeys(), {.zstd_level = 3});
  auto plain = AsBytes("sparetime");
  auto sealed = codec.SealWithNonce(BlobKind::kManifest, codec.Id(plain), plain, VectorNonce());
  EXPECT_EQ(ToHex(sealed),
            "01404142434445464748494a4b4c4d4e4f5051525354555657f9d070e02d9b21897b4dce4e9e4ac14a1b"
            "edb13da6d296f521");
}

TEST(CodecVectors, LongChunks) {
  auto plain = Pattern(1 << 20);
  Codec raw(VectorKeys(), {.zstd_level = 0});
  ChunkId id = raw.Id(plain);
  auto sealed = raw.SealWithNonce(BlobKind::kData, id, plain, VectorNonce());
  EXPECT_EQ(sealed.size(), 1048617u);
  EXPECT_EQ(Blake2b(sealed), "a6fa573d677255bb44f6d3544272ec90317e1b35291e1dcba8fa1b5dbc4dd699");

  Codec zstd3(VectorKeys(), {.zstd_level = 3});
  sealed = zstd3.SealWithNonce(BlobKind::kData, id, plain, VectorNonce());
  ASSERT_TRUE(zstd3.Open(BlobKind::kData, id, sealed, kMax).ok());
  if (!SameZstdAsVectors()) GTEST_SKIP() << "zstd " << ZSTD_versionString() << " is not 1.5.4";
  EXPECT_EQ(sealed.size(), 167u);
  EXPECT_EQ(Blake2b(sealed), "f52c80b9f76bf559fb8c666d95a64f782e179dad6e283f5d23ed52f23a722f4f");
}

// Seals and opens `plain`, returning the sealed form.
std::vector<std::byte> RoundTrip(const Codec& codec, BlobKind kind,
                                 const std::vector<std::byte>& plain) {
  ChunkId id = codec.Id(plain);
  auto sealed = codec.Seal(kind, id, plain);
  auto opened = codec.Open(kind, id, sealed, plain.size());
  EXPECT_TRUE(opened.ok()) << opened.status().ToString();
  if (opened.ok()) {
    EXPECT_EQ(*opened, plain);
  }
  return sealed;
}

TEST(Codec, RoundTripsAllSizesAndLevels) {
  const size_t sizes[] = {0, 1, 2, 15, 16, 17, 100, 4095, 4096, 4097, 65536, 1 << 20, 4 << 20};
  for (int level : {0, 1, 3, 9}) {
    Codec codec(KeysFrom(7), {.zstd_level = level});
    for (size_t n : sizes) {
      SCOPED_TRACE("level " + std::to_string(level) + ", " + std::to_string(n) + " bytes");
      auto random = RandomBytes(n, n + 1);
      auto sealed = RoundTrip(codec, BlobKind::kData, random);
      // Random data never compresses: stored raw, exactly kOverhead larger.
      EXPECT_EQ(sealed.size(), n + Codec::kOverhead);
      EXPECT_EQ(sealed[0], std::byte{0x01});

      auto text = Pattern(n);
      sealed = RoundTrip(codec, BlobKind::kManifest, text);
      const bool should_compress = level != 0 && n >= 100;
      EXPECT_EQ(sealed[0], should_compress ? std::byte{0x02} : std::byte{0x01});
      if (should_compress) {
        EXPECT_LT(sealed.size(), n);
      }
      EXPECT_LE(sealed.size(), n + Codec::kOverhead);
    }
  }
}

TEST(Codec, CompressibleDataShrinks) {
  Codec codec(KeysFrom(7), {.zstd_level = 1});
  auto plain = Pattern(1 << 20);
  auto sealed = RoundTrip(codec, BlobKind::kData, plain);
  EXPECT_LT(sealed.size(), plain.size() / 100);
  // Zeros with a little noise: partially compressible, still smaller.
  auto mixed = RandomBytes(1 << 20, 3);
  for (size_t i = 0; i < mixed.size(); ++i)
    if (i % 4 != 0) mixed[i] = std::byte{0};
  sealed = RoundTrip(codec, BlobKind::kData, mixed);
  EXPECT_EQ(sealed[0], std::byte{0x02});
  EXPECT_LT(sealed.size(), mixed.size() * 2 / 3);
}

// The size of one zstd frame of `data` at level 3, with hash and chain tables
// of 2^table_log entries (0: zstd's own choice).
size_t ZstdLevel3Size(std::span<const std::byte> data, int table_log) {
  std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> cctx(ZSTD_createCCtx(), ZSTD_freeCCtx);
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel, 3);
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_hashLog, table_log);
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_chainLog, table_log);
  std::vector<std::byte> out(ZSTD_compressBound(data.size()));
  size_t n = ZSTD_compress2(cctx.get(), out.data(), out.size(), data.data(), data.size());
  EXPECT_FALSE(ZSTD_isError(n));
  return n;
}

TEST(Codec, DefaultLevelUsesTablesThatFitACoresCache) {
  // Text-like data: 1 MiB of words drawn from a vocabulary, where the size
  // of zstd's match tables changes what it finds.
  std::vector<std::string> words;
  auto seed = RandomBytes(4096, 11);
  for (size_t i = 0; i + 8 <= seed.size(); i += 8) {
    std::string w;
    for (size_t j = 0; j < 2 + size_t(seed[i]) % 6; ++j) w += char('a' + size_t(seed[i + j]) % 26);
    words.push_back(w + " ");
  }
  auto picks = RandomBytes(1 << 20, 12);
  std::vector<std::byte> text;
  for (size_t i = 0; text.size() < (1 << 20); i += 2) {
    const std::string& w = words[(size_t(picks[i]) << 8 | size_t(picks[i + 1])) % words.size()];
    for (char c : w) text.push_back(std::byte(c));
  }
  text.resize(1 << 20);
  const size_t capped = ZstdLevel3Size(text, 15), own = ZstdLevel3Size(text, 0);
  ASSERT_NE(capped, own) << "the input does not tell the table sizes apart";

  Codec codec(KeysFrom(7), {});
  ASSERT_EQ(CodecOptions{}.zstd_level, 3);
  auto sealed = RoundTrip(codec, BlobKind::kData, text);
  EXPECT_EQ(sealed[0], std::byte{0x02});
  EXPECT_EQ(sealed.size(), capped + Codec::kOverhead);
  // Other levels keep zstd's own tables.
  Codec level2(KeysFrom(7), {.zstd_level = 2});
  std::vector<std::byte> frame(ZSTD_compressBound(text.size()));
  size_t level2_size = ZSTD_compress(frame.data(), frame.size(), text.data(), text.size(), 2);
  EXPECT_EQ(RoundTrip(level2, BlobKind::kData, text).size(), level2_size + Codec::kOverhead);
}

TEST(Codec, SealIsRandomizedButBothOpen) {
  Codec codec(KeysFrom(7), {});
  auto plain = Pattern(5000);
  ChunkId id = codec.Id(plain);
  auto a = codec.Seal(BlobKind::kData, id, plain);
  auto b = codec.Seal(BlobKind::kData, id, plain);
  EXPECT_NE(a, b);
  EXPECT_TRUE(codec.Open(BlobKind::kData, id, a, kMax).ok());
  EXPECT_TRUE(codec.Open(BlobKind::kData, id, b, kMax).ok());
}

TEST(Codec, IdsAreKeyed) {
  auto plain = Pattern(4096);
  Codec a(KeysFrom(0), {}), a2(KeysFrom(0), {}), b(KeysFrom(1), {});
  EXPECT_EQ(a.Id(plain), a2.Id(plain));
  EXPECT_NE(a.Id(plain), b.Id(plain));
  std::array<std::byte, 32> unkeyed;
  crypto_generichash(reinterpret_cast<unsigned char*>(unkeyed.data()), 32,
                     reinterpret_cast<const unsigned char*>(plain.data()), plain.size(), nullptr,
                     0);
  EXPECT_NE(a.Id(plain).bytes, unkeyed);
  EXPECT_NE(a.Id(plain), a.Id(Pattern(4095)));
}

template <typename T>
void ExpectCorruption(const Result<T>& r, std::string_view needle) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kCorruption) << r.status().ToString();
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().ToString();
}

TEST(Codec, EveryDamagedByteIsCaught) {
  for (int level : {0, 3}) {
    Codec codec(KeysFrom(7), {.zstd_level = level});
    auto plain = Pattern(300);
    ChunkId id = codec.Id(plain);
    auto sealed = codec.Seal(BlobKind::kData, id, plain);
    for (size_t i = 0; i < sealed.size(); ++i) {
      for (std::byte flip : {std::byte{0x01}, std::byte{0x80}, std::byte{0xff}}) {
        SCOPED_TRACE("level " + std::to_string(level) + ", byte " + std::to_string(i));
        auto damaged = sealed;
        damaged[i] ^= flip;
        auto r = codec.Open(BlobKind::kData, id, damaged, kMax);
        ExpectCorruption(r, "chunk " + id.short_hex());
      }
    }
  }
}

TEST(Codec, FormatByteSwapAndUnknownFormat) {
  Codec codec(KeysFrom(7), {});
  auto plain = Pattern(4096);
  ChunkId id = codec.Id(plain);
  auto sealed = codec.Seal(BlobKind::kData, id, plain);
  ASSERT_EQ(sealed[0], std::byte{0x02});
  sealed[0] = std::byte{0x01};  // claim raw: the AD no longer matches
  ExpectCorruption(codec.Open(BlobKind::kData, id, sealed, kMax), "authentication failed");
  sealed[0] = std::byte{0x03};
  ExpectCorruption(codec.Open(BlobKind::kData, id, sealed, kMax), "unknown format byte 0x03");
}

TEST(Codec, WrongKindIdOrKeysFailAuthentication) {
  Codec codec(KeysFrom(7), {});
  auto plain = Pattern(4096);
  ChunkId id = codec.Id(plain);
  auto data = codec.Seal(BlobKind::kData, id, plain);
  ASSERT_TRUE(codec.Open(BlobKind::kData, id, data, kMax).ok());
  ExpectCorruption(codec.Open(BlobKind::kManifest, id, data, kMax), "authentication failed");
  auto manifest = codec.Seal(BlobKind::kManifest, id, plain);
  ExpectCorruption(codec.Open(BlobKind::kData, id, manifest, kMax), "authentication failed");

  ChunkId other = codec.Id(Pattern(4097));
  ExpectCorruption(codec.Open(BlobKind::kData, other, data, kMax),
                   "chunk " + other.short_hex() + ": authentication failed");

  Codec stranger(KeysFrom(8), {});
  ExpectCorruption(stranger.Open(BlobKind::kData, id, data, kMax),
                   "authentication failed (damaged or tampered data, or a different key)");
}

TEST(Codec, PlaintextMustHashToId) {
  // A blob sealed under the wrong id (a bug in the caller) authenticates but
  // is still refused.
  Codec codec(KeysFrom(7), {});
  auto plain = Pattern(4096);
  ChunkId wrong = codec.Id(Pattern(10));
  auto sealed = codec.Seal(BlobKind::kData, wrong, plain);
  ExpectCorruption(codec.Open(BlobKind::kData, wrong, sealed, kMax), "does not hash to its id");
}

TEST(Codec, TruncatedBlobsAreRejected) {
  for (int level : {0, 3}) {
    Codec codec(KeysFrom(7), {.zstd_level = level});
    auto plain = Pattern(1000);
    ChunkId id = codec.Id(plain);
    auto sealed = codec.Seal(BlobKind::kData, id, plain);
    for (size_t len = 0; len < sealed.size(); ++len) {
      SCOPED_TRACE(len);
      std::span<const std::byte> cut(sealed.data(), len);
      ExpectCorruption(codec.Open(BlobKind::kData, id, cut, kMax),
                       len < Codec::kOverhead ? "truncated" : "authentication failed");
    }
  }
}

TEST(Codec, RefusesToExpandBeyondMaxPlaintext) {
  auto plain = Pattern(1 << 20);
  for (int level : {0, 3}) {
    SCOPED_TRACE(level);
    Codec codec(KeysFrom(7), {.zstd_level = level});
    ChunkId id = codec.Id(plain);
    auto sealed = codec.Seal(BlobKind::kData, id, plain);
    EXPECT_TRUE(codec.Open(BlobKind::kData, id, sealed, plain.size()).ok());
    ExpectCorruption(codec.Open(BlobKind::kData, id, sealed, plain.size() - 1),
                     "more than the 1048575 allowed");
    ExpectCorruption(codec.Open(BlobKind::kData, id, sealed, 4096), "more than the 4096 allowed");
  }
}

TEST(Codec, OpenIntoFillsTheCallersBufferAndChecksLikeOpen) {
  for (int level : {0, 3}) {
    SCOPED_TRACE(level);
    Codec codec(KeysFrom(7), {.zstd_level = level});
    auto plain = RandomBytes(100000, 5);
    plain.resize(200000);  // a compressible tail, so level 3 stores a zstd frame
    ChunkId id = codec.Id(plain);
    auto sealed = codec.Seal(BlobKind::kData, id, plain);
    // A larger buffer: the plaintext lands at its front, the rest is untouched.
    std::vector<std::byte> out(plain.size() + 100, std::byte{0xee});
    Result<size_t> n = codec.OpenInto(BlobKind::kData, id, sealed, out);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    EXPECT_EQ(*n, plain.size());
    EXPECT_TRUE(std::equal(plain.begin(), plain.end(), out.begin()));
    EXPECT_EQ(out.back(), std::byte{0xee});
    // Too small a buffer, damage, another id: the same errors as Open.
    ExpectCorruption(codec.OpenInto(BlobKind::kData, id, sealed, std::span(out).first(1000)),
                     "more than the 1000 allowed");
    auto damaged = sealed;
    damaged[sealed.size() / 2] ^= std::byte{1};
    ExpectCorruption(codec.OpenInto(BlobKind::kData, id, damaged, out), "authentication failed");
    ChunkId wrong = codec.Id(Pattern(10));
    auto misfiled = codec.Seal(BlobKind::kData, wrong, plain);
    ExpectCorruption(codec.OpenInto(BlobKind::kData, wrong, misfiled, out),
                     "does not hash to its id");
  }
}

TEST(Codec, ConcurrentSealAndOpen) {
  Codec codec(KeysFrom(7), {.zstd_level = 3});
  constexpr int kThreads = 4, kRounds = 40;
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        size_t n = 1000 + 7919 * static_cast<size_t>(r + t * kRounds);
        auto plain = (r % 2 == 0) ? RandomBytes(n, t * 1000 + r) : Pattern(n);
        ChunkId id = codec.Id(plain);
        auto sealed = codec.Seal(r % 3 == 0 ? BlobKind::kManifest : BlobKind::kData, id, plain);
        auto opened = codec.Open(r % 3 == 0 ? BlobKind::kManifest : BlobKind::kData, id, sealed, n);
        if (!opened.ok() || *opened != plain) ++failures[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
}

}  // namespace
}  // namespace sparetime
