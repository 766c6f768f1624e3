// ChunkId: the 32-byte name of a chunk, a keyed BLAKE2b-256 of its plaintext
// (see codec.h). The all-zero id is reserved: in a manifest it marks a hole
// (an all-zero chunk that is never stored). A keyed hash producing 32 zero
// bytes is not a practical possibility.
#ifndef SPARETIME_CRYPTO_CHUNK_ID_H_
#define SPARETIME_CRYPTO_CHUNK_ID_H_

#include <array>
#include <compare>
#include <cstddef>
#include <cstring>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace sparetime {

struct ChunkId {
  static constexpr size_t kSize = 32;
  std::array<std::byte, kSize> bytes{};

  bool is_hole() const {
    for (std::byte b : bytes)
      if (b != std::byte{0}) return false;
    return true;
  }
  std::string hex() const;
  // First 8 hex digits, for messages.
  std::string short_hex() const { return hex().substr(0, 8); }
  static std::optional<ChunkId> FromHex(std::string_view hex);
  static ChunkId FromBytes(std::span<const std::byte, kSize> b) {
    ChunkId id;
    std::memcpy(id.bytes.data(), b.data(), kSize);
    return id;
  }

  auto operator<=>(const ChunkId&) const = default;
  bool operator==(const ChunkId&) const = default;
};

inline constexpr ChunkId kHoleId{};

struct ChunkIdHash {
  size_t operator()(const ChunkId& id) const {
    size_t h;  // the id is already a uniform hash
    std::memcpy(&h, id.bytes.data(), sizeof h);
    return h;
  }
};

}  // namespace sparetime

#endif  // SPARETIME_CRYPTO_CHUNK_ID_H_
