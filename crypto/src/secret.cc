// SecretBuffer over sodium_malloc / sodium_free (which zeroes on free).
#include "sparetime/crypto/secret.h"

#include <sodium.h>

#include <cstdlib>
#include <cstring>

namespace sparetime {

Status InitCrypto() {
  if (sodium_init() < 0) return Internal("libsodium failed to initialise");
  return Status::Ok();
}

SecretBuffer::SecretBuffer(size_t size) : n_(size) {
  if (sodium_init() < 0) std::abort();
  p_ = static_cast<std::byte*>(sodium_malloc(size == 0 ? 1 : size));
  if (p_ == nullptr) std::abort();  // out of (lockable) memory: nothing safe to do
  sodium_memzero(p_, size);
}

SecretBuffer& SecretBuffer::operator=(SecretBuffer&& o) noexcept {
  if (this != &o) {
    if (p_ != nullptr) sodium_free(p_);
    p_ = o.p_;
    n_ = o.n_;
    o.p_ = nullptr;
    o.n_ = 0;
  }
  return *this;
}

SecretBuffer::~SecretBuffer() {
  if (p_ != nullptr) sodium_free(p_);
}

SecretBuffer SecretBuffer::Clone() const {
  SecretBuffer copy(n_);
  if (n_ > 0) std::memcpy(copy.p_, p_, n_);
  return copy;
}

}  // namespace sparetime
