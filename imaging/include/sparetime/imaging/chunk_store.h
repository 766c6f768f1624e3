// ChunkSink and ChunkSource: the narrow storage roles the pipelines depend on
// (restic's BlobSaver/BlobLoader, PBS's ReadChunk). They move sealed blobs
// (see codec.h) by id and never see plaintext or keys, so a peer can hold
// chunks it cannot read, and sealed chunks can be copied between stores
// without decryption. The local PackStore implements both; the transport
// later adds a PeerSet that does too.
//
// Contract: Put is idempotent — putting an id that is already held succeeds
// and reports `true` (already existed) without storing a second copy. Data is
// durable only after Flush() returns OK.
//
// Thread safety: implementations are safe for concurrent use.
#ifndef SPARETIME_IMAGING_CHUNK_STORE_H_
#define SPARETIME_IMAGING_CHUNK_STORE_H_

#include <array>
#include <cstddef>
#include <span>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/crypto/chunk_id.h"

namespace sparetime {

// The stored-ciphertext hash: unkeyed BLAKE2b-256 of a sealed blob. Stores
// and peers check a blob's integrity with it without holding any key.
using BlobHash = std::array<std::byte, 32>;
BlobHash HashBlob(std::span<const std::byte> blob);

class ChunkSink {
 public:
  virtual ~ChunkSink() = default;
  // True when the store already holds `id` (including not yet flushed puts).
  virtual Result<bool> Contains(const ChunkId& id) = 0;
  // Stores a sealed blob; returns true when `id` was already held.
  virtual Result<bool> Put(const ChunkId& id, std::span<const std::byte> sealed) = 0;
  // Makes every successful Put so far durable.
  virtual Status Flush() = 0;
};

class ChunkSource {
 public:
  virtual ~ChunkSource() = default;
  // The sealed blob for `id`; kNotFound when not held, kCorruption when the
  // stored bytes fail the store's own integrity check.
  virtual Result<std::vector<std::byte>> Get(const ChunkId& id) = 0;
};

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_CHUNK_STORE_H_
