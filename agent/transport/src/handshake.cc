// The sparetime/1 handshake state machines (XX-shaped SIGMA-I; see
// handshake.h and docs/protocol.md, whose step numbers the comments follow).
// Invariants: every received message is checked for version, type and exact
// size before any field is used; ephemeral secrets, the chaining key and the
// session keys live in SecretBuffers; a failed state machine stays failed.
#include "sparetime/transport/handshake.h"

#include <sodium.h>

#include <cstring>
#include <optional>
#include <string>

#include "primitives.h"
#include "sparetime/transport/wire.h"

namespace sparetime::transport {
namespace {

using internal::AsSpan;
using internal::Hash;
using internal::kTagSize;
using internal::MixHash;

constexpr size_t kIdentityPayload = PublicKey::kSize + 64;  // key || signature
constexpr size_t kResponseHead = 2 + 32;                      // version, type, e_R
constexpr size_t kResponseSize = kResponseHead + kIdentityPayload + kTagSize;
constexpr size_t kFinishSize = 2 + kIdentityPayload + kTagSize;
constexpr size_t kAcceptSize = 2 + kTagSize;
constexpr size_t kRejectSize = 3;
constexpr char kHandshakeCtx[9] = "stp1hand";
constexpr char kSessionCtx[9] = "stp1sess";
constexpr std::string_view kResponderLabel = "sparetime/1 responder signature";
constexpr std::string_view kInitiatorLabel = "sparetime/1 initiator signature";
const internal::Nonce kZeroNonce{};

const unsigned char* U(const std::byte* p) { return reinterpret_cast<const unsigned char*>(p); }

std::string TypeName(uint8_t type) {
  switch (static_cast<HandshakeType>(type)) {
    case HandshakeType::kHello: return "HELLO (1)";
    case HandshakeType::kResponse: return "RESPONSE (2)";
    case HandshakeType::kFinish: return "FINISH (3)";
    case HandshakeType::kAccept: return "ACCEPT (4)";
    case HandshakeType::kReject: return "REJECT (127)";
  }
  return "unknown type " + std::to_string(type);
}

Status RejectStatus(uint8_t reason) {
  switch (static_cast<RejectReason>(reason)) {
    case RejectReason::kUnsupportedVersion:
      return FailedPrecondition(
          "peer refused the handshake: it does not speak sparetime/1 version 1 (upgrade the "
          "older agent)");
    case RejectReason::kNotAuthorized:
      return PermissionDenied(
          "peer refused the session: our key is not authorised there (is this agent registered "
          "in the directory with its current public key?)");
    case RejectReason::kHandshakeFailed:
      break;
  }
  return AuthFailed(
      "peer refused the handshake: it could not authenticate our messages (tampering on the "
      "path, or a peer that expected a different key)");
}

// Checks a received message's version, type and size; a REJECT becomes the
// Status it stands for. `size` is nullopt for a variable-size message.
Status CheckMessage(std::span<const std::byte> msg, HandshakeType want, std::optional<size_t> size,
                    bool* peer_rejected) {
  if (msg.size() < 2) {
    return Corruption("handshake message of " + std::to_string(msg.size()) +
                      " bytes is too short to be " + TypeName(uint8_t(want)));
  }
  auto version = static_cast<uint8_t>(msg[0]);
  auto type = static_cast<uint8_t>(msg[1]);
  if (type == uint8_t(HandshakeType::kReject)) {
    *peer_rejected = true;
    if (msg.size() != kRejectSize) return Corruption("malformed REJECT handshake message");
    return RejectStatus(static_cast<uint8_t>(msg[2]));
  }
  if (version != kProtocolVersion) {
    return FailedPrecondition("peer speaks sparetime handshake version " + std::to_string(version) +
                              "; this agent speaks version " + std::to_string(kProtocolVersion) +
                              " (upgrade the older agent)");
  }
  if (type != uint8_t(want)) {
    return Corruption("expected handshake message " + TypeName(uint8_t(want)) + ", got " +
                      TypeName(type));
  }
  if (size && msg.size() != *size) {
    return Corruption("handshake message " + TypeName(type) + " is " + std::to_string(msg.size()) +
                      " bytes, expected " + std::to_string(*size));
  }
  return Status::Ok();
}

std::vector<std::byte> Rejection(bool peer_rejected, const Status& error) {
  if (peer_rejected || error.ok()) return {};
  switch (error.code()) {
    case ErrorCode::kFailedPrecondition: return EncodeReject(RejectReason::kUnsupportedVersion);
    case ErrorCode::kPermissionDenied: return EncodeReject(RejectReason::kNotAuthorized);
    default: return EncodeReject(RejectReason::kHandshakeFailed);
  }
}

Result<SecretBuffer> DiffieHellman(const SecretBuffer& secret, std::span<const std::byte> peer) {
  SecretBuffer out(32);
  if (crypto_scalarmult(out.uchar(), secret.uchar(), U(peer.data())) != 0) {
    return AuthFailed("the peer's ephemeral key is a low-order point (a broken or hostile peer)");
  }
  return out;
}

// label || h: what each side signs.
std::vector<std::byte> SignedText(std::string_view label, const Hash& h) {
  std::vector<std::byte> text(AsSpan(label).begin(), AsSpan(label).end());
  text.insert(text.end(), h.begin(), h.end());
  return text;
}

// Appends AEAD(key, 0, s || Sign(label || h), AD = h).
void SealIdentity(std::vector<std::byte>& out, const Identity& me, const SecretBuffer& key,
                  std::string_view label, const Hash& h) {
  std::vector<std::byte> payload(me.public_key().bytes.begin(), me.public_key().bytes.end());
  Signature sig = me.Sign(SignedText(label, h));
  payload.insert(payload.end(), sig.begin(), sig.end());
  internal::Seal(out, key, kZeroNonce, payload, h);
}

Result<PublicKey> OpenIdentity(const SecretBuffer& key, std::span<const std::byte> sealed,
                               std::string_view label, const Hash& h, std::string_view what) {
  std::vector<std::byte> payload;
  if (!internal::Open(payload, key, kZeroNonce, sealed, h)) {
    return AuthFailed(std::string(what) +
                      " failed authentication: altered in transit, or not a sparetime/1 peer");
  }
  PublicKey key_of_peer =
      PublicKey::FromBytes(std::span<const std::byte, PublicKey::kSize>(payload.data(), 32));
  Signature sig;
  std::memcpy(sig.data(), payload.data() + 32, sig.size());
  if (!VerifySignature(key_of_peer, SignedText(label, h), sig)) {
    return AuthFailed(std::string(what) + " carries an invalid signature for key " +
                      key_of_peer.ToBase64());
  }
  return key_of_peer;
}

// Steps 8-9: ms = KeyedHash(ck, h4); i2r = Kdf(ms, 1), r2i = Kdf(ms, 2).
SessionKeys DeriveSessionKeys(const SecretBuffer& ck, const Hash& h4, bool initiator,
                              const PublicKey& peer) {
  SecretBuffer ms = internal::KeyedHash(ck.span(), h4);
  SecretBuffer i2r = internal::Kdf(ms, 1, kSessionCtx);
  SecretBuffer r2i = internal::Kdf(ms, 2, kSessionCtx);
  SessionKeys keys;
  keys.send_key = initiator ? std::move(i2r) : std::move(r2i);
  keys.recv_key = initiator ? std::move(r2i) : std::move(i2r);
  keys.peer = peer;
  keys.transcript_hash = h4;
  return keys;
}

std::vector<std::byte> Header(HandshakeType type) {
  return {std::byte{kProtocolVersion}, std::byte(type)};
}

enum class Step { kStart, kMiddle, kEnd, kDone, kFailed };

Status OutOfOrder() { return Internal("handshake step called out of order or after a failure"); }

}  // namespace

std::vector<std::byte> EncodeReject(RejectReason reason) {
  return {std::byte{kProtocolVersion}, std::byte(HandshakeType::kReject), std::byte(reason)};
}

EphemeralKey EphemeralKey::Generate() {
  SecretBuffer secret(32);
  randombytes_buf(secret.data(), secret.size());
  return FromSecret(std::span<const std::byte, 32>(secret.data(), 32));
}

EphemeralKey EphemeralKey::FromSecret(std::span<const std::byte, 32> secret) {
  EphemeralKey key;
  key.secret_key = SecretBuffer(32);
  std::memcpy(key.secret_key.data(), secret.data(), 32);
  crypto_scalarmult_base(reinterpret_cast<unsigned char*>(key.public_key.data()),
                         key.secret_key.uchar());
  return key;
}

// ---- initiator --------------------------------------------------------------

struct InitiatorHandshake::State {
  State(const Identity& i, const PublicKey& k, EphemeralKey eph)
      : me(&i), expected(k), e(std::move(eph)) {}
  const Identity* me;
  PublicKey expected;
  EphemeralKey e;
  Hash h{};
  SecretBuffer ck;
  PublicKey peer;
  Step step = Step::kStart;
  bool peer_rejected = false;
};

InitiatorHandshake::InitiatorHandshake(const Identity& me, const PublicKey& expected_responder,
                                       EphemeralKey ephemeral)
    : s_(std::make_unique<State>(me, expected_responder, std::move(ephemeral))) {}
InitiatorHandshake::~InitiatorHandshake() = default;
InitiatorHandshake::InitiatorHandshake(InitiatorHandshake&&) noexcept = default;
InitiatorHandshake& InitiatorHandshake::operator=(InitiatorHandshake&&) noexcept = default;

std::vector<std::byte> InitiatorHandshake::Hello() {
  // Step 1: msg1 = version || 1 || len || "sparetime/1" || e_I; h1 = MixHash(h0, msg1).
  Writer w;
  w.Fixed(Header(HandshakeType::kHello));
  w.Str8(kProtocolName);
  w.Fixed(s_->e.public_key);
  std::vector<std::byte> msg = std::move(w).Take();
  s_->h = MixHash(internal::H(AsSpan(kProtocolName)), msg);
  s_->step = Step::kMiddle;
  return msg;
}

Result<std::vector<std::byte>> InitiatorHandshake::OnResponse(std::span<const std::byte> msg) {
  if (s_->step != Step::kMiddle) return OutOfOrder();
  s_->step = Step::kFailed;
  ST_RETURN_IF_ERROR(CheckMessage(msg, HandshakeType::kResponse, kResponseSize, &s_->peer_rejected));
  // Steps 2-4 (as the responder did them): h2, ee, ck, k2; open s_R || sig_R.
  Hash h2 = MixHash(s_->h, msg.first(kResponseHead));
  ST_ASSIGN_OR_RETURN(SecretBuffer ee, DiffieHellman(s_->e.secret_key, msg.subspan(2, 32)));
  s_->ck = internal::KeyedHash(h2, ee.span());
  SecretBuffer k2 = internal::Kdf(s_->ck, 1, kHandshakeCtx);
  std::span<const std::byte> c2 = msg.subspan(kResponseHead);
  ST_ASSIGN_OR_RETURN(s_->peer, OpenIdentity(k2, c2, kResponderLabel, h2, "handshake RESPONSE"));
  if (s_->peer != s_->expected) {
    return AuthFailed("the peer presented key " + s_->peer.ToBase64() +
                      " but the key expected for it is " + s_->expected.ToBase64() +
                      "; refusing the session (an impostor, or the peer's key changed and the "
                      "directory entry is stale)");
  }
  // Steps 5-6: h3 = MixHash(h2, c2); msg3 = version || 3 || AEAD(k3, s_I || sig_I, AD = h3).
  Hash h3 = MixHash(h2, c2);
  std::vector<std::byte> out = Header(HandshakeType::kFinish);
  SealIdentity(out, *s_->me, internal::Kdf(s_->ck, 2, kHandshakeCtx), kInitiatorLabel, h3);
  s_->h = MixHash(h3, out);  // h4
  s_->step = Step::kEnd;
  return out;
}

Result<SessionKeys> InitiatorHandshake::OnAccept(std::span<const std::byte> msg) {
  if (s_->step != Step::kEnd) return OutOfOrder();
  s_->step = Step::kFailed;
  ST_RETURN_IF_ERROR(CheckMessage(msg, HandshakeType::kAccept, kAcceptSize, &s_->peer_rejected));
  std::vector<std::byte> empty;
  if (!internal::Open(empty, internal::Kdf(s_->ck, 3, kHandshakeCtx), kZeroNonce, msg.subspan(2),
                      s_->h)) {
    return AuthFailed("handshake ACCEPT failed authentication: altered in transit");
  }
  s_->step = Step::kDone;
  return DeriveSessionKeys(s_->ck, s_->h, /*initiator=*/true, s_->peer);
}

std::vector<std::byte> InitiatorHandshake::RejectionFor(const Status& error) const {
  return Rejection(s_->peer_rejected, error);
}

// ---- responder --------------------------------------------------------------

struct ResponderHandshake::State {
  State(const Identity& i, EphemeralKey eph) : me(&i), e(std::move(eph)) {}
  const Identity* me;
  EphemeralKey e;
  Hash h{};
  SecretBuffer ck;
  SessionKeys keys;
  Step step = Step::kStart;
  bool peer_rejected = false;
};

ResponderHandshake::ResponderHandshake(const Identity& me, EphemeralKey ephemeral)
    : s_(std::make_unique<State>(me, std::move(ephemeral))) {}
ResponderHandshake::~ResponderHandshake() = default;
ResponderHandshake::ResponderHandshake(ResponderHandshake&&) noexcept = default;
ResponderHandshake& ResponderHandshake::operator=(ResponderHandshake&&) noexcept = default;

Result<std::vector<std::byte>> ResponderHandshake::OnHello(std::span<const std::byte> msg) {
  if (s_->step != Step::kStart) return OutOfOrder();
  s_->step = Step::kFailed;
  ST_RETURN_IF_ERROR(CheckMessage(msg, HandshakeType::kHello, std::nullopt, &s_->peer_rejected));
  Reader r(msg.subspan(2), "handshake HELLO");
  std::string name = r.Str8();
  std::span<const std::byte> e_i = r.Fixed(32);
  if (r.ok() && name != kProtocolName) {
    for (char& c : name)
      if (c < 0x20 || c > 0x7e) c = '?';
    return FailedPrecondition("peer speaks protocol '" + name + "', not " +
                              std::string(kProtocolName));
  }
  ST_RETURN_IF_ERROR(r.Finish());
  // Step 1 (as the initiator did it), then steps 2-4.
  Hash h1 = MixHash(internal::H(AsSpan(kProtocolName)), msg);
  std::vector<std::byte> out = Header(HandshakeType::kResponse);
  out.insert(out.end(), s_->e.public_key.begin(), s_->e.public_key.end());
  Hash h2 = MixHash(h1, out);
  ST_ASSIGN_OR_RETURN(SecretBuffer ee, DiffieHellman(s_->e.secret_key, e_i));
  s_->ck = internal::KeyedHash(h2, ee.span());
  SealIdentity(out, *s_->me, internal::Kdf(s_->ck, 1, kHandshakeCtx), kResponderLabel, h2);
  s_->h = MixHash(h2, std::span<const std::byte>(out).subspan(kResponseHead));  // h3
  s_->step = Step::kMiddle;
  return out;
}

Result<std::vector<std::byte>> ResponderHandshake::OnFinish(std::span<const std::byte> msg,
                                                            const Authorizer& authorize) {
  if (s_->step != Step::kMiddle) return OutOfOrder();
  s_->step = Step::kFailed;
  ST_RETURN_IF_ERROR(CheckMessage(msg, HandshakeType::kFinish, kFinishSize, &s_->peer_rejected));
  SecretBuffer k3 = internal::Kdf(s_->ck, 2, kHandshakeCtx);
  ST_ASSIGN_OR_RETURN(PublicKey initiator,
                      OpenIdentity(k3, msg.subspan(2), kInitiatorLabel, s_->h, "handshake FINISH"));
  Hash h4 = MixHash(s_->h, msg);
  Status allowed = authorize ? authorize(initiator)  // fail closed without an authoriser
                            : PermissionDenied("this agent has no authoriser configured");
  if (!allowed.ok()) {
    return PermissionDenied("initiator key " + initiator.ToBase64() +
                            " is not authorised: " + allowed.ToString());
  }
  // Step 7: msg4 = version || 4 || AEAD(k4, "", AD = h4).
  std::vector<std::byte> out = Header(HandshakeType::kAccept);
  internal::Seal(out, internal::Kdf(s_->ck, 3, kHandshakeCtx), kZeroNonce, {}, h4);
  s_->keys = DeriveSessionKeys(s_->ck, h4, /*initiator=*/false, initiator);
  s_->step = Step::kDone;
  return out;
}

SessionKeys ResponderHandshake::TakeKeys() {
  if (s_->step != Step::kDone) std::abort();  // REQUIRES violated: a bug
  s_->step = Step::kFailed;                   // the keys leave exactly once
  return std::move(s_->keys);
}

std::vector<std::byte> ResponderHandshake::RejectionFor(const Status& error) const {
  return Rejection(s_->peer_rejected, error);
}

}  // namespace sparetime::transport
