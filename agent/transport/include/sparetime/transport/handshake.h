// The sparetime/1 handshake as two pure state machines (no I/O), so that the
// socket driver (session.h), the test vectors and the fuzzer share one code
// path. Pattern: "XX-shaped SIGMA-I" — the Noise XX message flow
//
//   HELLO    I -> R : e_I
//   RESPONSE R -> I : e_R, ee, AEAD(s_R, sig_R(transcript))
//   FINISH   I -> R : AEAD(s_I, sig_I(transcript))
//   ACCEPT   R -> I : AEAD tag over the whole transcript (key confirmation)
//
// with the static keys authenticated by Ed25519 signatures over the BLAKE2b
// transcript hash instead of Noise's es/se DH. Forward secrecy comes from the
// ephemeral X25519 exchange: session keys depend only on ee and the
// transcript. Either side may answer a message with REJECT (reason code) and
// hang up. Every byte, hash input and key-derivation label is specified in
// docs/protocol.md, with test vectors.
//
// Errors: kFailedPrecondition for a protocol name/version this agent does not
// speak; kAuthFailed when a message fails authentication or the responder's
// key is not the expected one; kPermissionDenied when the authoriser refuses
// the initiator (or the peer rejected us as not authorised); kCorruption for
// malformed messages. After an error a state machine is dead.
//
// Thread safety: each state machine is used by one thread.
#ifndef SPARETIME_TRANSPORT_HANDSHAKE_H_
#define SPARETIME_TRANSPORT_HANDSHAKE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/crypto/secret.h"
#include "sparetime/transport/identity.h"

namespace sparetime::transport {

inline constexpr std::string_view kProtocolName = "sparetime/1";
inline constexpr uint8_t kProtocolVersion = 1;
// Every handshake message is far smaller; anything longer is not a peer.
inline constexpr size_t kMaxHandshakeMessage = 256;

enum class HandshakeType : uint8_t {
  kHello = 1,
  kResponse = 2,
  kFinish = 3,
  kAccept = 4,
  kReject = 0x7f,
};

enum class RejectReason : uint8_t {
  kUnsupportedVersion = 1,
  kHandshakeFailed = 2,
  kNotAuthorized = 3,
};

// An ephemeral X25519 key pair: fresh for every handshake.
struct EphemeralKey {
  std::array<std::byte, 32> public_key{};
  SecretBuffer secret_key;  // 32 bytes

  static EphemeralKey Generate();
  // The pair for a fixed secret (crypto_scalarmult_base): test vectors only.
  static EphemeralKey FromSecret(std::span<const std::byte, 32> secret);
};

// Test seam: where a handshake gets its ephemeral key. Production uses
// EphemeralKey::Generate.
using EphemeralKeySource = std::function<EphemeralKey()>;

// The outcome of a handshake.
struct SessionKeys {
  SecretBuffer send_key;  // 32 bytes, XChaCha20-Poly1305
  SecretBuffer recv_key;  // 32 bytes
  PublicKey peer;         // the peer's authenticated long-term key
  std::array<std::byte, 32> transcript_hash{};  // h4: unique per session
};

// Decides whether an authenticated initiator may have a session. In
// production it looks the key up in the directory. A non-OK Status refuses
// the session; its message is kept in the responder's error.
using Authorizer = std::function<Status(const PublicKey&)>;

class InitiatorHandshake {
 public:
  InitiatorHandshake(const Identity& me, const PublicKey& expected_responder,
                     EphemeralKey ephemeral);
  ~InitiatorHandshake();
  InitiatorHandshake(InitiatorHandshake&&) noexcept;
  InitiatorHandshake& operator=(InitiatorHandshake&&) noexcept;

  // Message 1 (HELLO).
  std::vector<std::byte> Hello();
  // Consumes message 2 (RESPONSE, or a REJECT); returns message 3 (FINISH).
  Result<std::vector<std::byte>> OnResponse(std::span<const std::byte> message);
  // Consumes message 4 (ACCEPT, or a REJECT); returns the session keys.
  Result<SessionKeys> OnAccept(std::span<const std::byte> message);
  // The REJECT to send after a step failed with `error`; empty when the peer
  // itself rejected us (nothing to tell it).
  std::vector<std::byte> RejectionFor(const Status& error) const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

class ResponderHandshake {
 public:
  ResponderHandshake(const Identity& me, EphemeralKey ephemeral);
  ~ResponderHandshake();
  ResponderHandshake(ResponderHandshake&&) noexcept;
  ResponderHandshake& operator=(ResponderHandshake&&) noexcept;

  // Consumes message 1 (HELLO); returns message 2 (RESPONSE).
  Result<std::vector<std::byte>> OnHello(std::span<const std::byte> message);
  // Consumes message 3 (FINISH, or a REJECT), authenticates the initiator and
  // asks `authorize`; returns message 4 (ACCEPT). keys() is then valid.
  Result<std::vector<std::byte>> OnFinish(std::span<const std::byte> message,
                                          const Authorizer& authorize);
  // REQUIRES: OnFinish succeeded. Moves the keys out (once).
  SessionKeys TakeKeys();
  std::vector<std::byte> RejectionFor(const Status& error) const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// A REJECT message: version || 0x7f || reason.
std::vector<std::byte> EncodeReject(RejectReason reason);

}  // namespace sparetime::transport

#endif  // SPARETIME_TRANSPORT_HANDSHAKE_H_
