// Keyed chunk-id functions (see id_hash.h): keyed BLAKE2b-256 (libsodium)
// and HMAC-SHA-256 (OpenSSL libcrypto, EVP_MAC).
//
// Invariants: the HMAC key is handed to OpenSSL once, from the caller's
// SecretBuffer, to key the template `keyed_`; each hashing thread works on a
// duplicate (EVP_MAC_CTX_dup: copies OpenSSL's key copy and the ipad/opad
// SHA-256 states, no key schedule) taken from `idle_` and returned after
// use, re-initialised with EVP_MAC_init(ctx, NULL, 0, NULL), which restarts
// from the stored ipad state without touching the key. What OpenSSL 3.0
// keeps per context (providers/implementations/macs/hmac_prov.c): the key
// (OPENSSL_secure_malloc'd) and an HMAC_CTX with three SHA-256 states; all of
// it is cleansed on EVP_MAC_CTX_free (OPENSSL_secure_clear_free of the key,
// HMAC_CTX_free -> EVP_MD_CTX_free -> OPENSSL_clear_free of each SHA state).
#include "sparetime/crypto/id_hash.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sodium.h>

#include <cstdio>
#include <cstdlib>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#elif defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace sparetime {
namespace {

static_assert(ChunkId::kSize == crypto_generichash_BYTES);
constexpr size_t kSha256Bytes = 32;
static_assert(ChunkId::kSize == kSha256Bytes);

[[noreturn]] void Die(const char* what) {
  unsigned long e = ERR_get_error();
  char reason[256] = "no OpenSSL error queued";
  if (e != 0) ERR_error_string_n(e, reason, sizeof reason);
  std::fprintf(stderr, "sparetime: HMAC-SHA-256 chunk ids: %s failed (%s)\n", what, reason);
  std::abort();
}

// A keyed HMAC-SHA-256 context. The key is read from `key` in place.
EVP_MAC_CTX* NewKeyedHmac(const SecretBuffer& key) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, OSSL_MAC_NAME_HMAC, nullptr);
  if (mac == nullptr) Die("EVP_MAC_fetch(HMAC)");
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
  EVP_MAC_free(mac);  // the context holds its own reference
  if (ctx == nullptr) Die("EVP_MAC_CTX_new");
  char digest[] = "SHA2-256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_END};
  if (EVP_MAC_init(ctx, key.uchar(), key.size(), params) != 1) Die("EVP_MAC_init(key)");
  return ctx;
}

}  // namespace

std::string_view IdHashName(IdHash h) {
  return h == IdHash::kHmacSha256 ? "hmac-sha256" : "blake2b";
}

std::optional<IdHash> ParseIdHash(std::string_view name) {
  if (name == "blake2b") return IdHash::kBlake2b;
  if (name == "hmac-sha256") return IdHash::kHmacSha256;
  return std::nullopt;
}

bool CpuHasShaExtensions() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;  // no leaf 7
  return (ebx >> 29) & 1;
#elif defined(__aarch64__)
  return (getauxval(AT_HWCAP) & HWCAP_SHA2) != 0;
#else
  return false;
#endif
}

IdHash AutoIdHash() { return CpuHasShaExtensions() ? IdHash::kHmacSha256 : IdHash::kBlake2b; }

ChunkIdFunction::ChunkIdFunction(IdHash hash, const SecretBuffer& key) : hash_(hash) {
  if (hash_ == IdHash::kHmacSha256) {
    if (key.empty()) std::abort();
    keyed_ = NewKeyedHmac(key);
  } else {
    if (key.size() < crypto_generichash_KEYBYTES_MIN || key.size() > crypto_generichash_KEYBYTES_MAX)
      std::abort();
    key_ = key.Clone();
  }
}

ChunkIdFunction::~ChunkIdFunction() {
  MutexLock l(mu_);
  for (EVP_MAC_CTX* ctx : idle_) EVP_MAC_CTX_free(ctx);
  idle_.clear();
  EVP_MAC_CTX_free(keyed_);  // NULL is fine
}

EVP_MAC_CTX* ChunkIdFunction::Take() const {
  {
    MutexLock l(mu_);
    if (!idle_.empty()) {
      EVP_MAC_CTX* ctx = idle_.back();
      idle_.pop_back();
      return ctx;
    }
  }
  // First use on this many threads at once: copy the keyed template (the
  // template itself is never hashed with, so dup runs on a quiet context).
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_dup(keyed_);
  if (ctx == nullptr) Die("EVP_MAC_CTX_dup");
  return ctx;
}

void ChunkIdFunction::Give(EVP_MAC_CTX* ctx) const {
  MutexLock l(mu_);
  idle_.push_back(ctx);
}

ChunkId ChunkIdFunction::Compute(std::span<const std::byte> data) const {
  ChunkId id;
  auto* out = reinterpret_cast<unsigned char*>(id.bytes.data());
  const auto* in = reinterpret_cast<const unsigned char*>(data.data());
  if (hash_ == IdHash::kBlake2b) {
    crypto_generichash(out, id.bytes.size(), in, data.size(), key_.uchar(), key_.size());
    return id;
  }
  EVP_MAC_CTX* ctx = Take();
  size_t written = 0;
  // A fresh dup is ready to take data; a reused one restarts from its stored
  // key state (EVP_MAC_init with no key: no key schedule, no allocation).
  if (EVP_MAC_init(ctx, nullptr, 0, nullptr) != 1) Die("EVP_MAC_init(reuse)");
  if (EVP_MAC_update(ctx, in, data.size()) != 1) Die("EVP_MAC_update");
  if (EVP_MAC_final(ctx, out, &written, id.bytes.size()) != 1 || written != kSha256Bytes) {
    Die("EVP_MAC_final");
  }
  Give(ctx);
  return id;
}

}  // namespace sparetime
