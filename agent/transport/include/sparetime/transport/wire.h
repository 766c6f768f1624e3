// Wire encoding primitives shared by the handshake and the message codec.
//
// Writer appends little-endian integers, fixed byte strings and
// length-prefixed byte strings to a vector. Reader walks a std::span and is
// strict: reading past the end, a length or count above its limit, a count
// that cannot fit in the bytes left, and (in Finish) trailing bytes are all
// errors. The first error sticks: later reads return zeros/empty and do not
// advance, so decoders read a whole structure and check once with Finish().
// A Reader never allocates more than the input it was given.
//
// Thread safety: values used by one thread.
#ifndef SPARETIME_TRANSPORT_WIRE_H_
#define SPARETIME_TRANSPORT_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sparetime/base/status.h"

namespace sparetime::transport {

class Writer {
 public:
  void U8(uint8_t v) { out_.push_back(std::byte{v}); }
  void U16(uint16_t v);
  void U32(uint32_t v);
  void U64(uint64_t v);
  void Fixed(std::span<const std::byte> b) { out_.insert(out_.end(), b.begin(), b.end()); }
  // LE32 length || bytes.
  void Bytes32(std::span<const std::byte> b);
  // u8 length || UTF-8 text. REQUIRES: s.size() <= 255.
  void Str8(std::string_view s);
  // LE16 length || text. REQUIRES: s.size() <= 65535.
  void Str16(std::string_view s);

  size_t size() const { return out_.size(); }
  std::vector<std::byte> Take() && { return std::move(out_); }

 private:
  std::vector<std::byte> out_;
};

class Reader {
 public:
  // `what` names the structure being decoded, for error messages.
  Reader(std::span<const std::byte> in, std::string_view what) : in_(in), what_(what) {}

  uint8_t U8();
  uint16_t U16();
  uint32_t U32();
  uint64_t U64();
  // The next n bytes (a view into the input).
  std::span<const std::byte> Fixed(size_t n);
  // LE32 length (<= max_len) || bytes.
  std::span<const std::byte> Bytes32(size_t max_len);
  std::string Str8();
  std::string Str16(size_t max_len);
  // An LE32 element count, checked against `max_count` and against the bytes
  // left (each element takes at least `min_element_size` bytes), so a forged
  // count can never make the caller reserve more than the input justifies.
  uint32_t Count(uint32_t max_count, size_t min_element_size);

  // Records an error found by the caller (a bad enum value, say).
  void Fail(std::string why);
  bool ok() const { return error_.empty(); }
  size_t remaining() const { return in_.size() - pos_; }
  size_t position() const { return pos_; }
  // OK when every read succeeded and no byte is left over; otherwise
  // kCorruption naming the structure, the offset and the problem.
  Status Finish() const;

 private:
  bool Need(size_t n, std::string_view field);

  std::span<const std::byte> in_;
  std::string_view what_;
  size_t pos_ = 0;
  std::string error_;
};

}  // namespace sparetime::transport

#endif  // SPARETIME_TRANSPORT_WIRE_H_
