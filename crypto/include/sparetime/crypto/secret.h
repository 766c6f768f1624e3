// SecretBuffer: bytes that must never leak — keys and passphrases.
//
// Memory comes from sodium_malloc (guard pages, mlock'd, canary) and is
// zeroed and freed by sodium_free when the buffer dies. Move-only.
//
// REQUIRES: sodium_init() has succeeded (InitCrypto()) before the first use.
#ifndef SPARETIME_CRYPTO_SECRET_H_
#define SPARETIME_CRYPTO_SECRET_H_

#include <cstddef>
#include <span>

#include "sparetime/base/status.h"

namespace sparetime {

// Initialises libsodium once per process; safe to call many times.
[[nodiscard]] Status InitCrypto();

class SecretBuffer {
 public:
  SecretBuffer() = default;
  // Allocates `size` zeroed bytes. Aborts when sodium_malloc fails (out of
  // memory or locked-memory limit): there is no safe way to go on.
  explicit SecretBuffer(size_t size);
  SecretBuffer(SecretBuffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
  SecretBuffer& operator=(SecretBuffer&& o) noexcept;
  SecretBuffer(const SecretBuffer&) = delete;
  SecretBuffer& operator=(const SecretBuffer&) = delete;
  ~SecretBuffer();

  // A copy in fresh sodium memory.
  SecretBuffer Clone() const;

  std::byte* data() { return p_; }
  const std::byte* data() const { return p_; }
  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  std::span<std::byte> span() { return {p_, n_}; }
  std::span<const std::byte> span() const { return {p_, n_}; }
  const unsigned char* uchar() const { return reinterpret_cast<const unsigned char*>(p_); }
  unsigned char* uchar() { return reinterpret_cast<unsigned char*>(p_); }

 private:
  std::byte* p_ = nullptr;
  size_t n_ = 0;
};

}  // namespace sparetime

#endif  // SPARETIME_CRYPTO_SECRET_H_
