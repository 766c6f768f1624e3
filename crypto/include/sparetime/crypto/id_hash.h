// IdHash and ChunkIdFunction: the keyed function that names chunks, chosen
// per repository at `init` and never changed afterwards.
//
//   kBlake2b     id = BLAKE2b-256(key = id key, plaintext)     libsodium
//                (crypto_generichash; every repository made before issue 20)
//   kHmacSha256  id = HMAC-SHA-256(key = HMAC id key, plaintext)  OpenSSL
//                libcrypto EVP_MAC "HMAC" with digest SHA2-256 — runs on the
//                CPU's SHA extensions (SHA-NI, ARMv8 SHA2), 2-3x BLAKE2b
//
// Both give 32 bytes (ChunkId::kSize). The keys are distinct subkeys of the
// master key (imaging/keys.h, docs/formats.md "Master key and subkeys").
//
// Invariants: the key lives in a SecretBuffer (BLAKE2b) or only inside
// OpenSSL's keyed contexts (HMAC: one keyed template plus a pool of copies,
// at most one per thread that hashes at the same time); every context is
// freed with EVP_MAC_CTX_free, which zeroes OpenSSL's key copy and its
// SHA-256 ipad/opad states, when the ChunkIdFunction dies. Compute() never
// allocates after a thread's first call (a context is taken from the pool
// and put back). Thread safety: Compute() is safe to call concurrently.
#ifndef SPARETIME_CRYPTO_ID_HASH_H_
#define SPARETIME_CRYPTO_ID_HASH_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "sparetime/base/mutex.h"
#include "sparetime/crypto/chunk_id.h"
#include "sparetime/crypto/secret.h"

struct evp_mac_ctx_st;  // OpenSSL's EVP_MAC_CTX, kept out of this header

namespace sparetime {

enum class IdHash : uint8_t { kBlake2b = 1, kHmacSha256 = 2 };

// "blake2b" / "hmac-sha256": the names in configs, roots and the CLI.
std::string_view IdHashName(IdHash h);
// The inverse of IdHashName; nullopt for anything else (including "auto").
std::optional<IdHash> ParseIdHash(std::string_view name);

// True when the CPU has SHA-256 instructions: x86-64 CPUID leaf 7 subleaf 0
// EBX bit 29 (SHA-NI); arm64 getauxval(AT_HWCAP) & HWCAP_SHA2.
bool CpuHasShaExtensions();
// `init --id-hash auto`: kHmacSha256 when CpuHasShaExtensions(), else kBlake2b.
IdHash AutoIdHash();

class ChunkIdFunction {
 public:
  // `key`: the 32-byte id key of a KeySet (any non-empty key for HMAC, 16..64
  // bytes for BLAKE2b: the RFC 4231 vectors use other sizes; anything else
  // aborts, a programming error). For HMAC
  // the key goes straight from `key` into OpenSSL's template context; aborts
  // with a message when libcrypto cannot make an HMAC-SHA-256 context (out of
  // memory, or a provider configuration without HMAC): nothing can be named.
  ChunkIdFunction(IdHash hash, const SecretBuffer& key);
  ~ChunkIdFunction();
  ChunkIdFunction(const ChunkIdFunction&) = delete;
  ChunkIdFunction& operator=(const ChunkIdFunction&) = delete;

  ChunkId Compute(std::span<const std::byte> data) const;
  IdHash hash() const { return hash_; }

 private:
  evp_mac_ctx_st* Take() const EXCLUDES(mu_);
  void Give(evp_mac_ctx_st* ctx) const EXCLUDES(mu_);

  const IdHash hash_;
  SecretBuffer key_;                   // kBlake2b only
  evp_mac_ctx_st* keyed_ = nullptr;    // kHmacSha256: the keyed template
  mutable Mutex mu_;
  mutable std::vector<evp_mac_ctx_st*> idle_ GUARDED_BY(mu_);  // dups of keyed_
};

}  // namespace sparetime

#endif  // SPARETIME_CRYPTO_ID_HASH_H_
