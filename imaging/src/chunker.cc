// Fixed-size chunking arithmetic and the zero test.
#include "sparetime/imaging/chunker.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace sparetime {

Status ValidateChunkSize(uint64_t chunk_size) {
  bool pow2 = chunk_size != 0 && (chunk_size & (chunk_size - 1)) == 0;
  if (!pow2 || chunk_size < kMinChunkSize || chunk_size > kMaxChunkSize) {
    return InvalidArgument("chunk size " + std::to_string(chunk_size) +
                           " is not allowed: use a power of two from 65536 (64 KiB) to "
                           "4194304 (4 MiB)");
  }
  return Status::Ok();
}

FixedChunker::FixedChunker(uint64_t image_size, uint32_t chunk_size)
    : size_(image_size),
      chunk_size_(chunk_size),
      count_((image_size + chunk_size - 1) / chunk_size) {}

ChunkExtent FixedChunker::At(uint64_t index) const {
  uint64_t offset = index * chunk_size_;
  uint64_t len = std::min<uint64_t>(chunk_size_, size_ - offset);
  return {index, offset, static_cast<uint32_t>(len)};
}

bool IsAllZero(std::span<const std::byte> data) {
  // The first 16 bytes are zero and the buffer equals itself shifted by 16,
  // so every byte is zero. glibc's vectorised memcmp makes this memory-speed.
  static constexpr size_t kHead = 16;
  const std::byte* p = data.data();
  size_t n = data.size();
  size_t head = n < kHead ? n : kHead;
  for (size_t i = 0; i < head; ++i) {
    if (p[i] != std::byte{0}) return false;
  }
  return n <= kHead || std::memcmp(p, p + kHead, n - kHead) == 0;
}

}  // namespace sparetime
