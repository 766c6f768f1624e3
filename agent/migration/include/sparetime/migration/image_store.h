// Image storage: the page store of a ProcessImage as chunks of the imaging
// Codec (keyed BLAKE2b-256 id, zstd, XChaCha20-Poly1305 seal), put into a
// ChunkSink. A chunk is a run of up to kChunkPages contiguous non-zero pages
// of one mapping, cut on a grid of kChunkPages pages counted from the
// mapping's start: the same contents at the same place of a mapping give the
// same chunks, so identical data — within one image and across checkpoints
// of similar processes (the same input data, the same libraries' data) — is
// stored or sent once. All-zero pages are holes (kHoleId), never stored.
//
// ImageWriter is the PageSink a dump streams into: it cuts chunks as pages
// arrive and, per batch of kWriteBatchBytes, digests them on all cores, asks
// the destination which it holds (one HeldQuery per batch), then seals and
// puts the missing ones on all cores. Memory: one batch, whatever the size
// of the process.
//
// What remains of an image is a StoredImage: the manifest (EncodeManifest),
// the chunk table (id and page count of each chunk, in page-store order), and
// a key check (the id of a fixed text under the same key) so that a restore
// with another key says so up front. Its encoded form is the image file of
// `sparetime checkpoint --to FILE`; a migration sends the same bytes as index
// chunks (BlobKind::kManifest, at most kIndexChunkBytes each). Layout:
// docs/migration.md, "Image format".
//
// MigrationKey: the per-host key that seals these chunks: 32 random bytes in
// a file of mode 0600, created on first use. It stays the same across
// checkpoints so that ids repeat (dedup); a migration hands it to the target
// agent inside the authenticated session, and the target uses it for that
// restore only, never storing it.
//
// Thread safety: MigrationKey is immutable; the functions are reentrant; an
// ImageWriter is used from one thread (it runs its own helpers), and the
// ChunkSink/ChunkSource given to it or to LoadImage must be safe for
// concurrent use (chunk_store.h's contract).
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
#include "sparetime/crypto/chunk_id.h"
#include "sparetime/imaging/chunk_store.h"
#include "sparetime/imaging/codec.h"
#include "sparetime/crypto/secret.h"
#include "sparetime/migration/image.h"

namespace sparetime::migration {

inline constexpr size_t kIndexChunkBytes = 1u << 20;
inline constexpr size_t kChunkPages = 16;               // the chunk grid: 64 KiB
inline constexpr size_t kWriteBatchBytes = 8u << 20;    // plaintext per writer batch

class MigrationKey {
 public:
  static constexpr size_t kSize = 32;
  // Reads the key file, or creates it (mode 0600, durable) when missing.
  static Result<MigrationKey> LoadOrCreate(const std::string& path);
  // A key received from a peer. kInvalidArgument unless kSize bytes.
  static Result<MigrationKey> FromSecret(SecretBuffer master);

  // A copy of the key (sodium memory), to hand to a target agent.
  SecretBuffer Secret() const { return master_.Clone(); }
  const Codec& codec() const { return *codec_; }
  // Codec::Id of a fixed text: equal for equal keys, reveals nothing.
  ChunkId Check() const;

 private:
  explicit MigrationKey(SecretBuffer master);
  SecretBuffer master_;
  std::unique_ptr<Codec> codec_;
};

// `pages` consecutive pages of the page store: a sealed chunk of that many
// pages, or (kHoleId) that many all-zero pages.
struct ChunkRef {
  ChunkId id;
  uint32_t pages = 0;
  bool operator==(const ChunkRef&) const = default;
};

struct StoredImage {
  std::string manifest;         // EncodeManifest() of the image
  ChunkId key_check;            // MigrationKey::Check() of the sealing key
  std::vector<ChunkRef> chunks; // the page store in order

  uint64_t page_count() const;
};

struct StoreStats {
  uint64_t pages = 0;          // in the image's page store
  uint64_t zero_pages = 0;     // all-zero: not stored
  uint64_t chunks = 0;         // non-zero chunks in the table
  uint64_t unique_chunks = 0;  // distinct ones
  uint64_t new_chunks = 0;     // the sink did not hold them: sealed and put
  uint64_t new_bytes = 0;      // sealed bytes put
};

// Which of `ids` the destination holds already, parallel to `ids`. One call
// may carry many ids (a peer answers a batch per round trip).
using HeldQuery = std::function<Result<std::vector<bool>>(std::span<const ChunkId>)>;

// The PageSink of a streamed dump: seals every distinct non-zero chunk the
// destination does not hold and puts it into `sink`. `held` empty:
// sink.Contains for each id. After an error every call returns it.
class ImageWriter final : public PageSink {
 public:
  ImageWriter(const MigrationKey& key, ChunkSink& sink, HeldQuery held = {}, unsigned threads = 0);
  ~ImageWriter() override;
  ImageWriter(const ImageWriter&) = delete;
  ImageWriter& operator=(const ImageWriter&) = delete;

  Status Append(uint64_t mapping_start, uint64_t addr, std::span<const std::byte> data) override;
  // After the dump: puts what is left, flushes the sink, and returns the
  // StoredImage of `image` (whose page store must be what was appended).
  Result<StoredImage> Finish(const ProcessImage& image, StoreStats* stats = nullptr);

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// ImageWriter fed from an image whose page store is in memory (`pages`);
// kInvalidArgument when its page runs do not cover the page store in order.
Result<StoredImage> StoreImage(const ProcessImage& image, const MigrationKey& key, ChunkSink& sink,
                               const HeldQuery& held = {}, StoreStats* stats = nullptr);

// The ProcessImage back, its page store in memory, chunks fetched from
// `source` and opened on all cores. kFailedPrecondition when the image was
// sealed with another key; kNotFound/kCorruption name the chunk and pages.
Result<ProcessImage> LoadImage(const StoredImage& stored, const MigrationKey& key,
                               ChunkSource& source);

// The image file bytes (magic "SPTMIGR3") and back; `what` names the source
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
