// Byte helpers shared by the formats: hex text and fixed-width little-endian
// integers (every on-disk and on-wire integer in sparetime is little-endian).
#ifndef SPARETIME_BASE_BYTES_H_
#define SPARETIME_BASE_BYTES_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sparetime {

// Lower-case hex of `data`.
std::string ToHex(std::span<const std::byte> data);
// Parses lower- or upper-case hex; nullopt on odd length or a non-hex digit.
std::optional<std::vector<std::byte>> FromHex(std::string_view hex);

inline void PutLe32(std::byte* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = std::byte(v >> (8 * i));
}
inline void PutLe64(std::byte* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = std::byte(v >> (8 * i));
}
inline uint32_t GetLe32(const std::byte* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(p[i]) << (8 * i);
  return v;
}
inline uint64_t GetLe64(const std::byte* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t(p[i]) << (8 * i);
  return v;
}

// Appends to a byte vector (for building headers).
inline void AppendLe32(std::vector<std::byte>& out, uint32_t v) {
  out.resize(out.size() + 4);
  PutLe32(out.data() + out.size() - 4, v);
}
inline void AppendLe64(std::vector<std::byte>& out, uint64_t v) {
  out.resize(out.size() + 8);
  PutLe64(out.data() + out.size() - 8, v);
}
inline void AppendBytes(std::vector<std::byte>& out, std::span<const std::byte> b) {
  out.insert(out.end(), b.begin(), b.end());
}

}  // namespace sparetime

#endif  // SPARETIME_BASE_BYTES_H_
