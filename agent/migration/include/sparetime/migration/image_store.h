// Image storage: the page store of a ProcessImage as chunks of the imaging
// Codec, one chunk per 4 KiB page (keyed BLAKE2b-256 id, zstd, XChaCha20-
// Poly1305 seal), put into a ChunkSink. Identical pages — within one image and
// across checkpoints of similar processes (the same input data, the same
// libraries' data) — get the same id and are stored or sent once. An all-zero
// page is kHoleId and never stored.
//
// What remains of an image is a StoredImage: the manifest (EncodeManifest),
// one ChunkId per page, and a key check (the id of a fixed text under the
// same key) so that a restore with another key says so up front. Its encoded
// form is the image file of `sparetime checkpoint --to FILE`; a migration
// sends the same bytes as index chunks (BlobKind::kManifest, at most
// kIndexChunkBytes each). Layout: docs/migration.md, "Image format".
//
// MigrationKey: the per-host key that seals these chunks: 32 random bytes in
// a file of mode 0600, created on first use. It stays the same across
// checkpoints so that ids repeat (dedup); a migration hands it to the target
// agent inside the authenticated session, and the target uses it for that
// restore only, never storing it.
//
// Thread safety: MigrationKey is immutable; the functions are reentrant.
#ifndef SPARETIME_MIGRATION_IMAGE_STORE_H_
#define SPARETIME_MIGRATION_IMAGE_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/imaging/chunk_id.h"
#include "sparetime/imaging/chunk_store.h"
#include "sparetime/imaging/codec.h"
#include "sparetime/imaging/secret.h"
#include "sparetime/migration/image.h"

namespace sparetime::migration {

inline constexpr size_t kIndexChunkBytes = 1u << 20;

class MigrationKey {
 public:
  static constexpr size_t kSize = 32;
  // Reads the key file, or creates it (mode 0600, durable) when missing.
  static Result<MigrationKey> LoadOrCreate(const std::string& path);
  // A key received from a peer. kInvalidArgument unless kSize bytes.
  static Result<MigrationKey> FromBytes(std::span<const std::byte> bytes);

  std::span<const std::byte> bytes() const { return master_.span(); }
  const Codec& codec() const { return *codec_; }
  // Codec::Id of a fixed text: equal for equal keys, reveals nothing.
  ChunkId Check() const;

 private:
  explicit MigrationKey(SecretBuffer master);
  SecretBuffer master_;
  std::unique_ptr<Codec> codec_;
};

struct StoredImage {
  std::string manifest;        // EncodeManifest() of the image
  ChunkId key_check;           // MigrationKey::Check() of the sealing key
  std::vector<ChunkId> pages;  // page i of the page store; kHoleId: all zero
};

struct StoreStats {
  uint64_t pages = 0;          // in the image's page store
  uint64_t zero_pages = 0;     // all-zero: not stored
  uint64_t unique_chunks = 0;  // distinct non-zero pages
  uint64_t new_chunks = 0;     // the sink did not hold them: sealed and put
  uint64_t new_bytes = 0;      // sealed bytes put
};

// Which of `ids` the destination holds already, parallel to `ids`. One call
// may carry many ids (a peer answers a batch per round trip).
using HeldQuery = std::function<Result<std::vector<bool>>(std::span<const ChunkId>)>;

// Seals every distinct non-zero page the destination does not hold and puts
// it into `sink` (then Flush). `held` empty: sink.Contains for each id.
Result<StoredImage> StoreImage(const ProcessImage& image, const MigrationKey& key, ChunkSink& sink,
                               const HeldQuery& held = {}, StoreStats* stats = nullptr);

// The ProcessImage back, pages fetched from `source` and opened. kFailedPrecondition
// when the image was sealed with another key; kNotFound/kCorruption name the page.
Result<ProcessImage> LoadImage(const StoredImage& stored, const MigrationKey& key,
                               ChunkSource& source);

// The image file bytes (magic "SPTMIGR2") and back; `what` names the source
// in errors (a path, or "migration index").
std::string EncodeStoredImage(const StoredImage& stored);
Result<StoredImage> DecodeStoredImage(std::string_view bytes, const std::string& what);

// Durable write (temp + fsync + rename + fsync(dir), mode 0600) and read.
Status WriteImageFile(const StoredImage& stored, const std::string& path);
Result<StoredImage> ReadImageFile(const std::string& path);

// The encoded StoredImage as index chunks (BlobKind::kManifest) put into
// `sink` (then Flush); returns their ids in order. LoadIndex reverses it.
Result<std::vector<ChunkId>> StoreIndex(const StoredImage& stored, const MigrationKey& key,
                                        ChunkSink& sink);
Result<StoredImage> LoadIndex(std::span<const ChunkId> index, const MigrationKey& key,
                              ChunkSource& source);

}  // namespace sparetime::migration

#endif  // SPARETIME_MIGRATION_IMAGE_STORE_H_
