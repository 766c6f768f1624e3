// The libsodium primitives the handshake and the frame layer are built from,
// each named the way docs/protocol.md names it. Internal to the transport.
//
//   H(x)              BLAKE2b-256(x)                     crypto_generichash
//   MixHash(h, x)     H(h || x)
//   KeyedHash(k, x)   BLAKE2b-256(key = k, message = x)  crypto_generichash
//   Kdf(k, id, ctx)   crypto_kdf_derive_from_key(32, id, ctx, k)
//   Seal/Open         XChaCha20-Poly1305-IETF             crypto_aead_xchacha20poly1305_ietf_*
#ifndef SPARETIME_TRANSPORT_PRIMITIVES_H_
#define SPARETIME_TRANSPORT_PRIMITIVES_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "sparetime/crypto/secret.h"

namespace sparetime::transport::internal {

using Hash = std::array<std::byte, 32>;
using Nonce = std::array<std::byte, 24>;
inline constexpr size_t kTagSize = 16;

Hash H(std::span<const std::byte> data);
Hash MixHash(const Hash& h, std::span<const std::byte> data);
// Secret output: used for chaining and session master keys.
SecretBuffer KeyedHash(std::span<const std::byte> key, std::span<const std::byte> data);
// REQUIRES: key.size() == 32 and ctx is exactly 8 characters.
SecretBuffer Kdf(const SecretBuffer& key, uint64_t id, const char (&ctx)[9]);

// Appends ciphertext || tag to `out`.
void Seal(std::vector<std::byte>& out, const SecretBuffer& key, const Nonce& nonce,
          std::span<const std::byte> plaintext, std::span<const std::byte> ad);
// Decrypts ciphertext || tag into `out` (resized); false when it does not
// authenticate.
bool Open(std::vector<std::byte>& out, const SecretBuffer& key, const Nonce& nonce,
          std::span<const std::byte> sealed, std::span<const std::byte> ad);

inline std::span<const std::byte> AsSpan(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace sparetime::transport::internal

#endif  // SPARETIME_TRANSPORT_PRIMITIVES_H_
