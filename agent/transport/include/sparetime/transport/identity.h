// Identity: an agent's long-term Ed25519 key pair, the key every session is
// authenticated with and the one the agent publishes in the directory as
// sparetimePublicKey (32 bytes, standard base64 with padding: 44 characters).
//
// Key file (in the state directory, mode 0600, written with WriteFileAtomic):
//   "STIDKEY1" (8 bytes) || Ed25519 seed (32) || Ed25519 public key (32)
// The secret half lives only in sodium_malloc'd memory (SecretBuffer); the file
// is read straight into one. Load() refuses a file readable by group or
// others, one of the wrong size or magic, and one whose public key does not
// match its seed. Layout and rationale: docs/protocol.md.
//
// Thread safety: an Identity is immutable after construction; Sign() and the
// accessors are safe to call from several threads.
#ifndef SPARETIME_TRANSPORT_IDENTITY_H_
#define SPARETIME_TRANSPORT_IDENTITY_H_

#include <array>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "sparetime/base/status.h"
#include "sparetime/crypto/secret.h"

namespace sparetime::transport {

// An Ed25519 public key.
struct PublicKey {
  static constexpr size_t kSize = 32;
  static constexpr size_t kBase64Size = 44;
  std::array<std::byte, kSize> bytes{};

  // Standard base64 with padding, exactly as stored in LDAP.
  std::string ToBase64() const;
  // kInvalidArgument unless `text` is 44 characters of standard base64
  // decoding to 32 bytes (surrounding whitespace is not accepted).
  static Result<PublicKey> FromBase64(std::string_view text);
  static PublicKey FromBytes(std::span<const std::byte, kSize> b);

  bool operator==(const PublicKey&) const = default;
};

using Signature = std::array<std::byte, 64>;

class Identity {
 public:
  static constexpr size_t kSeedSize = 32;
  static constexpr size_t kFileSize = 8 + 32 + 32;

  // A fresh random key pair.
  static Identity Generate();
  // The key pair for a 32-byte seed (crypto_sign_seed_keypair): test vectors.
  static Identity FromSeed(std::span<const std::byte, kSeedSize> seed);

  // Reads a key file (see above). kNotFound when it does not exist,
  // kPermissionDenied when group/other may read it, kCorruption when it is
  // not a sparetime identity key file.
  static Result<Identity> Load(const std::string& path);
  // Load(), or when the file does not exist, Generate() and Save() to it.
  static Result<Identity> LoadOrCreate(const std::string& path);
  // Writes the key file durably with mode 0600.
  Status Save(const std::string& path) const;

  const PublicKey& public_key() const { return public_key_; }
  // Ed25519 detached signature of `message`.
  Signature Sign(std::span<const std::byte> message) const;

  Identity(Identity&&) noexcept = default;
  Identity& operator=(Identity&&) noexcept = default;

 private:
  Identity(SecretBuffer secret_key, PublicKey public_key)
      : secret_key_(std::move(secret_key)), public_key_(public_key) {}

  SecretBuffer secret_key_;  // libsodium's 64-byte form: seed || public key
  PublicKey public_key_;
};

// Ed25519 verification of a detached signature.
bool VerifySignature(const PublicKey& key, std::span<const std::byte> message,
                     const Signature& signature);

}  // namespace sparetime::transport

#endif  // SPARETIME_TRANSPORT_IDENTITY_H_
