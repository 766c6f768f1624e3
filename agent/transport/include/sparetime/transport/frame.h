// Sealed frames: the unit the session layer sends after the handshake.
//
//   frame  = LE32 length || kind (1) || AEAD ciphertext (length bytes, tag included)
//   AEAD   = XChaCha20-Poly1305-IETF(key of this direction,
//                                    nonce = LE64 sequence || 16 zero bytes,
//                                    plaintext = payload, AD = LE32 length || kind)
//
// Each direction has its own key and a sequence number that starts at 0 and
// goes up by one per frame; the receiver opens frame n only with nonce n, so a
// replayed, reordered, dropped or cross-session frame fails authentication.
// A clean end of session is an authenticated kEnd frame; a stream that stops
// without one was truncated. Limits are checked on the 5-byte header before a
// body buffer is allocated.
//
// Thread safety: a sealer or an opener is used by one thread.
#ifndef SPARETIME_TRANSPORT_FRAME_H_
#define SPARETIME_TRANSPORT_FRAME_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/crypto/secret.h"

namespace sparetime::transport {

// The largest message payload: one maximal sealed chunk (4 MiB of plaintext,
// zstd's worst-case expansion and the codec's overhead) plus message headers.
inline constexpr size_t kMaxMessageSize = (4u << 20) + (64u << 10);
inline constexpr size_t kFrameHeaderSize = 5;
inline constexpr size_t kFrameTagSize = 16;
inline constexpr size_t kMaxFrameBody = kMaxMessageSize + kFrameTagSize;

enum class FrameKind : uint8_t { kMessage = 0, kEnd = 1 };

struct Frame {
  FrameKind kind = FrameKind::kMessage;
  std::vector<std::byte> payload;
};

class FrameSealer {
 public:
  // REQUIRES: key.size() == 32.
  explicit FrameSealer(SecretBuffer key) : key_(std::move(key)) {}
  // The whole frame (header and sealed body) for the next sequence number.
  // kInvalidArgument when payload exceeds kMaxMessageSize, or a kEnd frame
  // has a payload.
  Result<std::vector<std::byte>> Seal(FrameKind kind, std::span<const std::byte> payload);
  uint64_t next_sequence() const { return sequence_; }

 private:
  SecretBuffer key_;
  uint64_t sequence_ = 0;
};

// The body length announced by a header: kCorruption when it is below the
// tag size or above kMaxFrameBody, or the kind is unknown.
Result<size_t> ParseFrameHeader(std::span<const std::byte, kFrameHeaderSize> header);

class FrameOpener {
 public:
  explicit FrameOpener(SecretBuffer key) : key_(std::move(key)) {}
  // Authenticates and decrypts the next frame. kCorruption when the header is
  // out of bounds, the body length does not match it, or it does not
  // authenticate as frame number next_sequence() (tampered, replayed,
  // reordered or injected). The sequence advances only on success.
  Result<Frame> Open(std::span<const std::byte, kFrameHeaderSize> header,
                     std::span<const std::byte> body);
  uint64_t next_sequence() const { return sequence_; }

 private:
  SecretBuffer key_;
  uint64_t sequence_ = 0;
};

}  // namespace sparetime::transport

#endif  // SPARETIME_TRANSPORT_FRAME_H_
