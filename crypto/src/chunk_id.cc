// ChunkId text form: 64 lower-case hex digits; FromHex accepts either case and
// rejects any other length or digit.
#include "sparetime/crypto/chunk_id.h"

#include "sparetime/base/bytes.h"

namespace sparetime {

std::string ChunkId::hex() const { return ToHex(bytes); }

std::optional<ChunkId> ChunkId::FromHex(std::string_view hex) {
  if (hex.size() != 2 * kSize) return std::nullopt;
  std::optional<std::vector<std::byte>> raw = sparetime::FromHex(hex);
  if (!raw) return std::nullopt;
  return FromBytes(std::span<const std::byte, kSize>(raw->data(), kSize));
}

}  // namespace sparetime
