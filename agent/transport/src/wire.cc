// Writer/Reader: little-endian, bounds-checked, sticky-error wire encoding.
#include "sparetime/transport/wire.h"

#include "sparetime/base/bytes.h"

namespace sparetime::transport {

void Writer::U16(uint16_t v) {
  out_.push_back(std::byte(v & 0xff));
  out_.push_back(std::byte(v >> 8));
}
void Writer::U32(uint32_t v) { AppendLe32(out_, v); }
void Writer::U64(uint64_t v) { AppendLe64(out_, v); }

void Writer::Bytes32(std::span<const std::byte> b) {
  U32(static_cast<uint32_t>(b.size()));
  Fixed(b);
}

void Writer::Str8(std::string_view s) {
  U8(static_cast<uint8_t>(s.size()));
  Fixed({reinterpret_cast<const std::byte*>(s.data()), s.size()});
}

void Writer::Str16(std::string_view s) {
  U16(static_cast<uint16_t>(s.size()));
  Fixed({reinterpret_cast<const std::byte*>(s.data()), s.size()});
}

bool Reader::Need(size_t n, std::string_view field) {
  if (!ok()) return false;
  if (remaining() < n) {
    Fail("truncated " + std::string(field) + ": needs " + std::to_string(n) + " bytes, " +
         std::to_string(remaining()) + " left");
    return false;
  }
  return true;
}

uint8_t Reader::U8() {
  if (!Need(1, "u8")) return 0;
  return static_cast<uint8_t>(in_[pos_++]);
}

uint16_t Reader::U16() {
  if (!Need(2, "u16")) return 0;
  uint16_t v = static_cast<uint16_t>(uint16_t(in_[pos_]) | uint16_t(in_[pos_ + 1]) << 8);
  pos_ += 2;
  return v;
}

uint32_t Reader::U32() {
  if (!Need(4, "u32")) return 0;
  uint32_t v = GetLe32(in_.data() + pos_);
  pos_ += 4;
  return v;
}

uint64_t Reader::U64() {
  if (!Need(8, "u64")) return 0;
  uint64_t v = GetLe64(in_.data() + pos_);
  pos_ += 8;
  return v;
}

std::span<const std::byte> Reader::Fixed(size_t n) {
  if (!Need(n, "byte string")) return {};
  auto s = in_.subspan(pos_, n);
  pos_ += n;
  return s;
}

std::span<const std::byte> Reader::Bytes32(size_t max_len) {
  uint32_t len = U32();
  if (ok() && len > max_len) {
    Fail("byte string of " + std::to_string(len) + " bytes exceeds the limit of " +
         std::to_string(max_len));
  }
  return Fixed(len);
}

std::string Reader::Str8() {
  auto b = Fixed(U8());
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

std::string Reader::Str16(size_t max_len) {
  uint16_t len = U16();
  if (ok() && len > max_len) {
    Fail("text of " + std::to_string(len) + " bytes exceeds the limit of " +
         std::to_string(max_len));
  }
  auto b = Fixed(len);
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

uint32_t Reader::Count(uint32_t max_count, size_t min_element_size) {
  uint32_t n = U32();
  if (!ok()) return 0;
  if (n > max_count) {
    Fail("count " + std::to_string(n) + " exceeds the limit of " + std::to_string(max_count));
    return 0;
  }
  if (min_element_size > 0 && n > remaining() / min_element_size) {
    Fail("count " + std::to_string(n) + " cannot fit in the " + std::to_string(remaining()) +
         " bytes left");
    return 0;
  }
  return n;
}

void Reader::Fail(std::string why) {
  if (!ok()) return;
  error_ = std::move(why) + " at offset " + std::to_string(pos_);
  pos_ = in_.size();  // nothing more is read
}

Status Reader::Finish() const {
  if (!ok()) return Corruption("malformed " + std::string(what_) + ": " + error_);
  if (remaining() != 0) {
    return Corruption("malformed " + std::string(what_) + ": " + std::to_string(remaining()) +
                      " unexpected trailing bytes at offset " + std::to_string(pos_));
  }
  return Status::Ok();
}

}  // namespace sparetime::transport
