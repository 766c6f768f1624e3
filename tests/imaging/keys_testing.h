// Test helpers for the key tests (keys_test, key_cache_test, key_file_test,
// paper_key_test): passphrases as SecretBuffers, hex of secrets, the vector
// master key and the key-file vector of docs/formats.md.
#ifndef SPARETIME_TESTS_IMAGING_KEYS_TESTING_H_
#define SPARETIME_TESTS_IMAGING_KEYS_TESTING_H_

#include <algorithm>
#include <string>
#include <string_view>

#include "sparetime/base/bytes.h"
#include "sparetime/crypto/secret.h"
#include "sparetime/imaging/keys.h"

namespace sparetime::testing {

inline SecretBuffer Secret(std::string_view s) {
  SecretBuffer b(s.size());
  std::copy(s.begin(), s.end(), reinterpret_cast<char*>(b.data()));
  return b;
}

inline std::string Hex(const SecretBuffer& b) { return ToHex(b.span()); }

// The test-vector master key: bytes 0x00..0x1f.
inline SecretBuffer VectorMaster() {
  SecretBuffer m(KeySet::kKeySize);
  for (size_t i = 0; i < m.size(); ++i) m.data()[i] = std::byte(i);
  return m;
}

// The wrapping vector: passphrase kVectorPassphrase, salt 0x60..0x6f, nonce
// 0x70..0x87, FastForTests limits, master 0x00..0x1f; byte for byte as
// WrappedKey::ToJson writes it.
constexpr std::string_view kVectorPassphrase = "correct horse battery staple";
constexpr std::string_view kVectorKeyFile = R"({
  "version": 1,
  "kdf": "argon2id13",
  "opslimit": 1,
  "memlimit": 8192,
  "salt": "606162636465666768696a6b6c6d6e6f",
  "nonce": "707172737475767778797a7b7c7d7e7f8081828384858687",
  "ciphertext": "e7d47a3ec58b9fc25fb2b3ae75c265c003256640f6f7b3d57fd6f325f2212502bfe4ade3fcca7f0d09cf99012c3c8899"
}
)";

}  // namespace sparetime::testing

#endif  // SPARETIME_TESTS_IMAGING_KEYS_TESTING_H_
