// Chunker: fixed-size, aligned chunking of a device image. Pure: no I/O.
//
// Chunk i covers [i * chunk_size, min((i+1) * chunk_size, size)). Chunk sizes
// are powers of two from 64 KiB to 4 MiB; kDefaultChunkSize is chosen from
// the benchmark in docs/performance.md (dedup between corpus versions,
// throughput and index size).
#ifndef SPARETIME_IMAGING_CHUNKER_H_
#define SPARETIME_IMAGING_CHUNKER_H_

#include <cstddef>
#include <cstdint>
#include <span>

#include "sparetime/base/status.h"

namespace sparetime {

inline constexpr uint32_t kMinChunkSize = 64u << 10;
inline constexpr uint32_t kMaxChunkSize = 4u << 20;
inline constexpr uint32_t kDefaultChunkSize = 1u << 20;

// OK for a power of two in [kMinChunkSize, kMaxChunkSize]; otherwise
// kInvalidArgument saying which sizes are allowed.
Status ValidateChunkSize(uint64_t chunk_size);

struct ChunkExtent {
  uint64_t index;
  uint64_t offset;
  uint32_t length;
};

class FixedChunker {
 public:
  // REQUIRES: ValidateChunkSize(chunk_size).ok()
  FixedChunker(uint64_t image_size, uint32_t chunk_size);
  uint64_t count() const { return count_; }
  uint32_t chunk_size() const { return chunk_size_; }
  // REQUIRES: index < count()
  ChunkExtent At(uint64_t index) const;

 private:
  uint64_t size_;
  uint32_t chunk_size_;
  uint64_t count_;
};

// True when every byte of `data` is zero (fast, word at a time).
bool IsAllZero(std::span<const std::byte> data);

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_CHUNKER_H_
