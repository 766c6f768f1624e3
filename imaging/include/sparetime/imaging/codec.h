// Codec: the one module that turns chunk plaintext into a stored blob and
// back — digest, compress, seal (after PBS's data_blob). Nothing else in
// sparetime computes chunk ids or touches chunk crypto.
//
//   id     = BLAKE2b-256(key = id key, plaintext)          (IdHash::kBlake2b)
//          | HMAC-SHA-256(key = HMAC id key, plaintext)   (IdHash::kHmacSha256)
//            as the repository's config says (crypto/id_hash.h)
//   sealed = format(1) || nonce(24) || XChaCha20-Poly1305(key, nonce, payload,
//                                        AD = format || kind || id)
//   payload = zstd frame of plaintext, or plaintext itself when compression
//             does not make it smaller (format says which)
// `kind` selects the key (chunk key for data, manifest key for manifests) and
// is bound into the AD, so a data chunk can't be passed off as a manifest
// chunk, nor one chunk as another. Open() also recomputes the id of the
// plaintext and compares it. Byte layout and test vectors: docs/formats.md.
//
// Thread safety: all methods are const and safe to call concurrently.
#ifndef SPARETIME_IMAGING_CODEC_H_
#define SPARETIME_IMAGING_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/crypto/chunk_id.h"
#include "sparetime/crypto/id_hash.h"
#include "sparetime/imaging/keys.h"

namespace sparetime {

enum class BlobKind : uint8_t { kData = 1, kManifest = 2 };

struct CodecOptions {
  static constexpr int kDefaultZstdLevel = 3;
  int zstd_level = kDefaultZstdLevel;  // 1..19; 0 stores raw
  IdHash id_hash = IdHash::kBlake2b;   // the repository's, fixed at init
};

class Codec {
 public:
  static constexpr size_t kOverhead = 1 + 24 + 16;  // format + nonce + tag

  Codec(std::shared_ptr<const KeySet> keys, CodecOptions options);

  // The keyed id of plaintext (options().id_hash).
  ChunkId Id(std::span<const std::byte> plaintext) const;

  // Compresses (when it helps) and encrypts; random nonce.
  // REQUIRES: id == Id(plaintext).
  std::vector<std::byte> Seal(BlobKind kind, const ChunkId& id,
                              std::span<const std::byte> plaintext) const;

  // Same with a caller-chosen nonce: only for test vectors.
  std::vector<std::byte> SealWithNonce(BlobKind kind, const ChunkId& id,
                                       std::span<const std::byte> plaintext,
                                       std::span<const std::byte, 24> nonce) const;

  // Authenticates, decrypts, decompresses and checks the id. kCorruption when
  // the blob is malformed, fails authentication, expands beyond
  // `max_plaintext` bytes, or its plaintext does not hash to `id`.
  Result<std::vector<std::byte>> Open(BlobKind kind, const ChunkId& id,
                                      std::span<const std::byte> sealed,
                                      size_t max_plaintext) const;

  // Open into caller memory (the restore path: no allocation, no zero fill,
  // and an aligned `out` goes to O_DIRECT as is). out.size() is the largest
  // plaintext accepted; returns the plaintext's size, written to out's front.
  Result<size_t> OpenInto(BlobKind kind, const ChunkId& id, std::span<const std::byte> sealed,
                          std::span<std::byte> out) const;

  const CodecOptions& options() const { return options_; }

 private:
  Result<size_t> OpenWith(BlobKind kind, const ChunkId& id, std::span<const std::byte> sealed,
                          size_t max_plaintext,
                          const std::function<std::byte*(size_t)>& buffer) const;

  std::shared_ptr<const KeySet> keys_;
  CodecOptions options_;
  std::shared_ptr<const ChunkIdFunction> id_;
};

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_CODEC_H_
