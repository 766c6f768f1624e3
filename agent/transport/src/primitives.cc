// Thin wrappers over libsodium (see primitives.h for the naming).
#include "primitives.h"

#include <sodium.h>

#include <cstdlib>

namespace sparetime::transport::internal {
namespace {

const unsigned char* U(const std::byte* p) { return reinterpret_cast<const unsigned char*>(p); }
unsigned char* U(std::byte* p) { return reinterpret_cast<unsigned char*>(p); }

}  // namespace

Hash H(std::span<const std::byte> data) {
  Hash out;
  crypto_generichash(U(out.data()), out.size(), U(data.data()), data.size(), nullptr, 0);
  return out;
}

Hash MixHash(const Hash& h, std::span<const std::byte> data) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, 32);
  crypto_generichash_update(&st, U(h.data()), h.size());
  crypto_generichash_update(&st, U(data.data()), data.size());
  Hash out;
  crypto_generichash_final(&st, U(out.data()), out.size());
  return out;
}

SecretBuffer KeyedHash(std::span<const std::byte> key, std::span<const std::byte> data) {
  SecretBuffer out(32);
  crypto_generichash(out.uchar(), out.size(), U(data.data()), data.size(), U(key.data()),
                     key.size());
  return out;
}

SecretBuffer Kdf(const SecretBuffer& key, uint64_t id, const char (&ctx)[9]) {
  if (key.size() != crypto_kdf_KEYBYTES) std::abort();  // a bug, not an input error
  SecretBuffer out(32);
  crypto_kdf_derive_from_key(out.uchar(), out.size(), id, ctx, key.uchar());
  return out;
}

void Seal(std::vector<std::byte>& out, const SecretBuffer& key, const Nonce& nonce,
          std::span<const std::byte> plaintext, std::span<const std::byte> ad) {
  size_t at = out.size();
  out.resize(at + plaintext.size() + kTagSize);
  unsigned long long len = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(U(out.data() + at), &len, U(plaintext.data()),
                                             plaintext.size(), U(ad.data()), ad.size(), nullptr,
                                             U(nonce.data()), key.uchar());
}

bool Open(std::vector<std::byte>& out, const SecretBuffer& key, const Nonce& nonce,
          std::span<const std::byte> sealed, std::span<const std::byte> ad) {
  if (sealed.size() < kTagSize) return false;
  out.resize(sealed.size() - kTagSize);
  unsigned long long len = 0;
  return crypto_aead_xchacha20poly1305_ietf_decrypt(U(out.data()), &len, nullptr, U(sealed.data()),
                                                    sealed.size(), U(ad.data()), ad.size(),
                                                    U(nonce.data()), key.uchar()) == 0;
}

}  // namespace sparetime::transport::internal
