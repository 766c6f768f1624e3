// Frame sealing and opening with per-direction sequence-number nonces.
#include "sparetime/transport/frame.h"

#include <array>
#include <string>

#include "primitives.h"
#include "sparetime/base/bytes.h"

namespace sparetime::transport {
namespace {

internal::Nonce SequenceNonce(uint64_t sequence) {
  internal::Nonce nonce{};
  PutLe64(nonce.data(), sequence);
  return nonce;
}

}  // namespace

Result<std::vector<std::byte>> FrameSealer::Seal(FrameKind kind,
                                                 std::span<const std::byte> payload) {
  if (payload.size() > kMaxMessageSize) {
    return InvalidArgument("message of " + std::to_string(payload.size()) +
                           " bytes exceeds the frame limit of " + std::to_string(kMaxMessageSize));
  }
  if (kind == FrameKind::kEnd && !payload.empty()) {
    return InvalidArgument("an end-of-session frame carries no payload");
  }
  if (sequence_ == UINT64_MAX) return FailedPrecondition("frame sequence exhausted; reconnect");
  std::array<std::byte, kFrameHeaderSize> header;
  PutLe32(header.data(), static_cast<uint32_t>(payload.size() + kFrameTagSize));
  header[4] = std::byte(kind);
  std::vector<std::byte> frame(header.begin(), header.end());
  frame.reserve(kFrameHeaderSize + payload.size() + kFrameTagSize);
  internal::Seal(frame, key_, SequenceNonce(sequence_), payload, header);
  ++sequence_;
  return frame;
}

Result<size_t> ParseFrameHeader(std::span<const std::byte, kFrameHeaderSize> header) {
  uint32_t length = GetLe32(header.data());
  if (length < kFrameTagSize || length > kMaxFrameBody) {
    return Corruption("frame length " + std::to_string(length) + " is outside 16.." +
                      std::to_string(kMaxFrameBody) +
                      " bytes: garbage on the connection or a peer that ignores the limits");
  }
  auto kind = static_cast<uint8_t>(header[4]);
  if (kind > uint8_t(FrameKind::kEnd)) {
    return Corruption("unknown frame kind " + std::to_string(kind));
  }
  if (kind == uint8_t(FrameKind::kEnd) && length != kFrameTagSize) {
    return Corruption("end-of-session frame with a payload");
  }
  return size_t{length};
}

Result<Frame> FrameOpener::Open(std::span<const std::byte, kFrameHeaderSize> header,
                                std::span<const std::byte> body) {
  ST_ASSIGN_OR_RETURN(size_t length, ParseFrameHeader(header));
  if (body.size() != length) {
    return Corruption("frame body is " + std::to_string(body.size()) + " bytes, header says " +
                      std::to_string(length));
  }
  Frame frame;
  frame.kind = static_cast<FrameKind>(header[4]);
  if (!internal::Open(frame.payload, key_, SequenceNonce(sequence_), body, header)) {
    return Corruption("frame " + std::to_string(sequence_) +
                      " failed authentication: altered, replayed, reordered or injected in "
                      "transit; the session is closed");
  }
  ++sequence_;
  return frame;
}

}  // namespace sparetime::transport
