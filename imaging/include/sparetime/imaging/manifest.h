// Manifest: what a snapshot is — the device identity, its size, the chunk
// size, and the ordered chunk ids (kHoleId for an all-zero chunk).
//
// Stored as chunks itself (BlobKind::kManifest): the id list is cut at fixed
// entry boundaries into pieces of kEntriesPerPiece ids, each a chunk, so an
// unchanged device reuses every piece and costs one small root chunk. The
// root holds the header (identity, sizes) and the piece ids; its id is what
// the catalog records. Byte layout: docs/formats.md.
#ifndef SPARETIME_IMAGING_MANIFEST_H_
#define SPARETIME_IMAGING_MANIFEST_H_

#include <cstdint>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/crypto/chunk_id.h"
#include "sparetime/imaging/chunk_store.h"
#include "sparetime/imaging/codec.h"
#include "sparetime/imaging/device.h"

namespace sparetime {

struct Manifest {
  static constexpr size_t kEntriesPerPiece = 2048;  // 64 KiB of ids per piece

  DeviceIdentity device;
  uint64_t size = 0;        // image size in bytes
  uint32_t chunk_size = 0;  // power of two, 64 KiB .. 4 MiB
  std::vector<ChunkId> chunks;  // ceil(size / chunk_size) entries

  uint64_t chunk_count() const { return chunks.size(); }
  // Byte length of chunk i (the last one may be short).
  uint64_t ChunkLength(uint64_t i) const;
};

// Seals and stores the manifest's pieces and root; returns the root id.
Result<ChunkId> StoreManifest(const Manifest& manifest, const Codec& codec, ChunkSink& sink);

// Fetches, opens and validates a manifest. kCorruption when any piece fails
// or the structure is inconsistent (entry count vs size, chunk size range).
Result<Manifest> LoadManifest(const ChunkId& root, const Codec& codec, ChunkSource& source);

// The ids of the manifest's own chunks (root and pieces), for verify and GC.
Result<std::vector<ChunkId>> ManifestChunkIds(const ChunkId& root, const Codec& codec,
                                              ChunkSource& source);

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_MANIFEST_H_
