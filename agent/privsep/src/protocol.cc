// Encoding and decoding of privsep messages (see protocol.h for the format
// and its invariants).
#include "sparetime/privsep/protocol.h"

#include <cstring>

namespace sparetime::privsep {

namespace {

void PutU32(std::vector<std::byte>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::byte>((v >> (8 * i)) & 0xff));
}
void PutU16(std::vector<std::byte>& out, uint16_t v) {
  out.push_back(static_cast<std::byte>(v & 0xff));
  out.push_back(static_cast<std::byte>(v >> 8));
}
uint32_t GetU32(std::span<const std::byte> b) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint32_t>(b[i]);
  return v;
}
uint16_t GetU16(std::span<const std::byte> b) {
  return static_cast<uint16_t>(static_cast<uint16_t>(b[0]) | (static_cast<uint16_t>(b[1]) << 8));
}

// u32 length | u8 version | u8 a | u8 b | u16 n | n bytes
std::vector<std::byte> Encode(uint8_t a, uint8_t b, std::string_view s) {
  std::vector<std::byte> out;
  out.reserve(kHeaderSize + 5 + s.size());
  PutU32(out, static_cast<uint32_t>(5 + s.size()));
  out.push_back(static_cast<std::byte>(kProtocolVersion));
  out.push_back(static_cast<std::byte>(a));
  out.push_back(static_cast<std::byte>(b));
  PutU16(out, static_cast<uint16_t>(s.size()));
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  out.insert(out.end(), p, p + s.size());
  return out;
}

struct Frame {
  uint8_t a = 0;
  uint8_t b = 0;
  std::string s;
};

Result<Frame> Decode(std::span<const std::byte> bytes, size_t max_string, std::string_view what) {
  const std::string where = "privsep " + std::string(what) + ": ";
  if (bytes.size() < kHeaderSize + 5) {
    return InvalidArgument(where + std::to_string(bytes.size()) + " bytes, shorter than a header");
  }
  if (bytes.size() > kMaxMessage) {
    return InvalidArgument(where + std::to_string(bytes.size()) + " bytes, more than the " +
                           std::to_string(kMaxMessage) + " allowed");
  }
  const uint32_t body = GetU32(bytes);
  if (body != bytes.size() - kHeaderSize) {
    return InvalidArgument(where + "length field says " + std::to_string(body) + " but " +
                           std::to_string(bytes.size() - kHeaderSize) + " bytes follow");
  }
  if (static_cast<uint8_t>(bytes[4]) != kProtocolVersion) {
    return InvalidArgument(where + "version " + std::to_string(static_cast<int>(bytes[4])) +
                           ", expected " + std::to_string(kProtocolVersion) +
                           " (sparetimed and its helper are from different builds: restart it)");
  }
  Frame f;
  f.a = static_cast<uint8_t>(bytes[5]);
  f.b = static_cast<uint8_t>(bytes[6]);
  const uint16_t n = GetU16(bytes.subspan(7));
  if (n != bytes.size() - kHeaderSize - 5) {
    return InvalidArgument(where + "string length " + std::to_string(n) + " but " +
                           std::to_string(bytes.size() - kHeaderSize - 5) + " bytes follow");
  }
  if (n > max_string) {
    return InvalidArgument(where + "string of " + std::to_string(n) + " bytes, at most " +
                           std::to_string(max_string) + " allowed");
  }
  f.s.assign(reinterpret_cast<const char*>(bytes.data()) + kHeaderSize + 5, n);
  return f;
}

}  // namespace

std::string_view CommandName(Command c) {
  switch (c) {
    case Command::kOpenDeviceRo: return "OPEN_DEVICE_RO";
    case Command::kSnapshotCreate: return "SNAPSHOT_CREATE";
    case Command::kSnapshotRemove: return "SNAPSHOT_REMOVE";
    case Command::kFreeze: return "FREEZE";
    case Command::kThaw: return "THAW";
    case Command::kRestoreProcess: return "RESTORE_PROCESS";
  }
  return "UNKNOWN";
}

std::vector<std::byte> EncodeRequest(const Request& r) {
  return Encode(static_cast<uint8_t>(r.command), r.flags, r.arg);
}

std::vector<std::byte> EncodeReply(const Reply& r) {
  return Encode(static_cast<uint8_t>(r.code), r.fd_count, r.text);
}

Result<Request> DecodeRequest(std::span<const std::byte> bytes) {
  ST_ASSIGN_OR_RETURN(Frame f, Decode(bytes, kMaxArg, "request"));
  if (f.a < static_cast<uint8_t>(Command::kOpenDeviceRo) ||
      f.a > static_cast<uint8_t>(Command::kRestoreProcess)) {
    return InvalidArgument("privsep request: unknown command " + std::to_string(f.a));
  }
  Request r;
  r.command = static_cast<Command>(f.a);
  const uint8_t allowed = r.command == Command::kOpenDeviceRo ? kFlagDirect : 0;
  if ((f.b & ~allowed) != 0) {
    return InvalidArgument("privsep request: flags " + std::to_string(f.b) + " not defined for " +
                           std::string(CommandName(r.command)));
  }
  r.flags = f.b;
  if (f.s.find('\0') != std::string::npos) {
    return InvalidArgument("privsep request: the argument holds a NUL byte");
  }
  r.arg = std::move(f.s);
  return r;
}

Result<Reply> DecodeReply(std::span<const std::byte> bytes) {
  ST_ASSIGN_OR_RETURN(Frame f, Decode(bytes, kMaxText, "reply"));
  if (f.a > static_cast<uint8_t>(ErrorCode::kInternal)) {
    return InvalidArgument("privsep reply: unknown code " + std::to_string(f.a));
  }
  Reply r;
  r.code = static_cast<ErrorCode>(f.a);
  if (f.b > kMaxFds || (r.code != ErrorCode::kOk && f.b != 0)) {
    return InvalidArgument("privsep reply: " + std::to_string(f.b) + " descriptors with code " +
                           std::string(ErrorCodeName(r.code)));
  }
  r.fd_count = f.b;
  r.text = std::move(f.s);
  return r;
}

}  // namespace sparetime::privsep
