// Codec: chunk plaintext <-> sealed blob. The chunk id is a keyed BLAKE2b-256
// or HMAC-SHA-256 (options.id_hash; crypto/id_hash.h);
// the blob is format || nonce || XChaCha20-Poly1305(payload, AD = format ||
// kind || id), where the payload is a zstd frame (format 0x02) or the
// plaintext itself (0x01). Layout and test vectors: docs/formats.md.
//
// Invariants: a zstd payload is kept only when strictly smaller than the
// plaintext, and always records its content size, so Open() knows the output
// size before decompressing and refuses anything above max_plaintext. Open()
// returns plaintext only after authentication succeeded and the plaintext
// hashed back to the expected id. This is the backup hot path: Seal
// compresses straight into the output vector and encrypts it in place; zstd
// contexts are per thread and reused.
#include "sparetime/imaging/codec.h"

#include <sodium.h>
#include <zstd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>

#include "sparetime/base/bytes.h"

namespace sparetime {
namespace {

constexpr std::byte kFormatRaw{0x01};
constexpr std::byte kFormatZstd{0x02};
constexpr size_t kNonceBytes = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kTagBytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;
constexpr size_t kHeaderBytes = 1 + kNonceBytes;  // format || nonce
constexpr size_t kAdBytes = 2 + ChunkId::kSize;   // format || kind || id

// log2 of the hash and chain table entries at the default level (Compress).
constexpr int kDefaultLevelTableLog = 15;

static_assert(Codec::kOverhead == kHeaderBytes + kTagBytes);
static_assert(ChunkId::kSize == crypto_generichash_BYTES);

struct CctxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DctxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

// One compression / decompression context per thread, reused across calls.
ZSTD_CCtx* ThreadCctx() {
  thread_local std::unique_ptr<ZSTD_CCtx, CctxDeleter> cctx(ZSTD_createCCtx());
  if (!cctx) std::abort();  // out of memory: nothing sensible to do
  return cctx.get();
}
ZSTD_DCtx* ThreadDctx() {
  thread_local std::unique_ptr<ZSTD_DCtx, DctxDeleter> dctx(ZSTD_createDCtx());
  if (!dctx) std::abort();
  return dctx.get();
}

// One zstd frame of src at `level`. The default level (3) runs with hash and
// chain tables of at most 2^15 entries (128 KiB each; zstd's own choice for
// inputs over 256 KiB is 2^17 and 2^16, 768 KiB): with the chunk and its
// output they then fit a core's L2 cache, which makes compressing 1 MiB
// chunks 14-19 % faster for 0.8 % more bytes (docs/performance.md, "zstd
// tables"). zstd still shrinks the tables for small inputs. Other levels
// are zstd's own.
size_t Compress(void* dst, size_t room, const void* src, size_t n, int level) {
  ZSTD_CCtx* cctx = ThreadCctx();
  ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
  size_t rc = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
  if (!ZSTD_isError(rc) && level == CodecOptions::kDefaultZstdLevel) {
    rc = ZSTD_CCtx_setParameter(cctx, ZSTD_c_hashLog, kDefaultLevelTableLog);
    if (!ZSTD_isError(rc))
      rc = ZSTD_CCtx_setParameter(cctx, ZSTD_c_chainLog, kDefaultLevelTableLog);
  }
  return ZSTD_isError(rc) ? rc : ZSTD_compress2(cctx, dst, room, src, n);
}

std::array<unsigned char, kAdBytes> Ad(std::byte format, BlobKind kind, const ChunkId& id) {
  std::array<unsigned char, kAdBytes> ad;
  ad[0] = std::to_integer<unsigned char>(format);
  ad[1] = static_cast<unsigned char>(kind);
  std::memcpy(ad.data() + 2, id.bytes.data(), ChunkId::kSize);
  return ad;
}

// Data and manifest chunks are sealed under different subkeys.
const SecretBuffer& KeyFor(const KeySet& keys, BlobKind kind) {
  return kind == BlobKind::kManifest ? keys.manifest_key() : keys.chunk_key();
}

unsigned char* Uchar(std::byte* p) { return reinterpret_cast<unsigned char*>(p); }
const unsigned char* Uchar(const std::byte* p) { return reinterpret_cast<const unsigned char*>(p); }

// "chunk 1a2b3c4d" for messages.
std::string Name(const ChunkId& id) { return "chunk " + id.short_hex(); }

Status TooBig(const ChunkId& id, std::string_view what, uint64_t size, size_t max_plaintext) {
  return Corruption(Name(id) + ": " + std::string(what) + " " + std::to_string(size) +
                    " bytes, more than the " + std::to_string(max_plaintext) + " allowed");
}

}  // namespace

Codec::Codec(std::shared_ptr<const KeySet> keys, CodecOptions options)
    : keys_(std::move(keys)),
      options_(options),
      id_(std::make_shared<const ChunkIdFunction>(
          options.id_hash, options.id_hash == IdHash::kHmacSha256 ? keys_->hmac_id_key()
                                                                  : keys_->id_key())) {}

ChunkId Codec::Id(std::span<const std::byte> plaintext) const { return id_->Compute(plaintext); }

std::vector<std::byte> Codec::Seal(BlobKind kind, const ChunkId& id,
                                   std::span<const std::byte> plaintext) const {
  std::array<std::byte, kNonceBytes> nonce;
  randombytes_buf(nonce.data(), nonce.size());
  return SealWithNonce(kind, id, plaintext, nonce);
}

std::vector<std::byte> Codec::SealWithNonce(BlobKind kind, const ChunkId& id,
                                            std::span<const std::byte> plaintext,
                                            std::span<const std::byte, 24> nonce) const {
  const size_t n = plaintext.size();
  // Room for the worst-case zstd frame, which is always larger than n.
  const bool compress = options_.zstd_level != 0 && n > 0;
  const size_t room = compress ? ZSTD_compressBound(n) : n;
  std::vector<std::byte> out(kHeaderBytes + room + kTagBytes);
  std::byte* payload = out.data() + kHeaderBytes;

  std::byte format = kFormatRaw;
  size_t payload_size = n;
  if (compress) {
    size_t z = Compress(payload, room, plaintext.data(), n, options_.zstd_level);
    if (!ZSTD_isError(z) && z < n) {
      format = kFormatZstd;
      payload_size = z;
    }
  }
  if (format == kFormatRaw && n > 0) std::memcpy(payload, plaintext.data(), n);

  out[0] = format;
  std::memcpy(out.data() + 1, nonce.data(), kNonceBytes);
  auto ad = Ad(format, kind, id);
  const SecretBuffer& key = KeyFor(*keys_, kind);
  // In place: libsodium allows c == m; the tag lands right after the payload.
  crypto_aead_xchacha20poly1305_ietf_encrypt(Uchar(payload), nullptr, Uchar(payload), payload_size,
                                             ad.data(), ad.size(), nullptr, Uchar(nonce.data()),
                                             key.uchar());
  out.resize(kHeaderBytes + payload_size + kTagBytes);
  return out;
}

// Open's work for both entry points: `buffer(n)` hands out room for the n
// plaintext bytes once n is known (from the blob length, or from the zstd
// frame header after authentication).
Result<size_t> Codec::OpenWith(BlobKind kind, const ChunkId& id, std::span<const std::byte> sealed,
                               size_t max_plaintext,
                               const std::function<std::byte*(size_t)>& buffer) const {
  if (sealed.size() < kOverhead) {
    return Corruption(Name(id) + ": sealed blob is " + std::to_string(sealed.size()) +
                      " bytes, less than the " + std::to_string(kOverhead) +
                      "-byte minimum (truncated)");
  }
  const std::byte format = sealed[0];
  if (format != kFormatRaw && format != kFormatZstd) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02x", std::to_integer<unsigned>(format));
    return Corruption(Name(id) + ": unknown format byte " + hex +
                      " (damaged, or written by a newer sparetime)");
  }
  const std::byte* ciphertext = sealed.data() + kHeaderBytes;
  const size_t ciphertext_size = sealed.size() - kHeaderBytes;
  const size_t payload_size = ciphertext_size - kTagBytes;
  if (format == kFormatRaw && payload_size > max_plaintext) {
    return TooBig(id, "holds", payload_size, max_plaintext);
  }

  auto ad = Ad(format, kind, id);
  const SecretBuffer& key = KeyFor(*keys_, kind);
  auto decrypt = [&](std::byte* out) -> Status {
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(Uchar(out), nullptr, nullptr, Uchar(ciphertext),
                                                   ciphertext_size, ad.data(), ad.size(),
                                                   Uchar(sealed.data() + 1), key.uchar()) != 0) {
      return Corruption(Name(id) +
                        ": authentication failed (damaged or tampered data, or a different key)");
    }
    return Status::Ok();
  };

  std::byte* plaintext;
  size_t size;
  if (format == kFormatRaw) {
    size = payload_size;
    plaintext = buffer(size);
    ST_RETURN_IF_ERROR(decrypt(plaintext));
  } else {
    auto frame = std::make_unique_for_overwrite<std::byte[]>(payload_size);
    ST_RETURN_IF_ERROR(decrypt(frame.get()));
    unsigned long long content = ZSTD_getFrameContentSize(frame.get(), payload_size);
    if (content == ZSTD_CONTENTSIZE_UNKNOWN || content == ZSTD_CONTENTSIZE_ERROR) {
      return Corruption(Name(id) + ": payload is not a zstd frame with a recorded size");
    }
    if (content > max_plaintext) {
      return TooBig(id, "would expand to", content, max_plaintext);
    }
    size = static_cast<size_t>(content);
    plaintext = buffer(size);
    size_t got = ZSTD_decompressDCtx(ThreadDctx(), plaintext, size, frame.get(), payload_size);
    if (ZSTD_isError(got) || got != size) {
      return Corruption(Name(id) + ": zstd payload does not decompress (" +
                        (ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short output") + ")");
    }
  }
  if (Id(std::span(plaintext, size)) != id) {
    return Corruption(Name(id) + ": content does not hash to its id (damaged before sealing?)");
  }
  return size;
}

Result<std::vector<std::byte>> Codec::Open(BlobKind kind, const ChunkId& id,
                                           std::span<const std::byte> sealed,
                                           size_t max_plaintext) const {
  std::vector<std::byte> plaintext;
  ST_RETURN_IF_ERROR(OpenWith(kind, id, sealed, max_plaintext, [&](size_t n) {
                       plaintext.resize(n);
                       return plaintext.data();
                     }).status());
  return plaintext;
}

Result<size_t> Codec::OpenInto(BlobKind kind, const ChunkId& id, std::span<const std::byte> sealed,
                               std::span<std::byte> out) const {
  return OpenWith(kind, id, sealed, out.size(), [&](size_t) { return out.data(); });
}

}  // namespace sparetime
