// Keys: one random 32-byte master key per owner, wrapped with a key derived
// from the owner's passphrase by Argon2id (crypto_pwhash), and the subkeys
// derived from it with crypto_kdf. The exact composition is in docs/formats.md.
//
//   master key (random)  --crypto_kdf "sprtime1"-->  id key       (subkey 1)
//                                                    chunk key    (subkey 2)
//                                                    manifest key (subkey 3)
//                                                    HMAC id key  (subkey 4)
//   passphrase --Argon2id(salt, ops, mem)--> wrapping key
//   WrappedKey = XChaCha20-Poly1305(wrapping key, nonce, master key, AD = header)
//
// Invariants: master key, wrapping key, subkeys and passphrases live only in
// SecretBuffers. A wrong passphrase is ErrorCode::kAuthFailed; a damaged key
// file is kCorruption (it does not parse) or kAuthFailed (it parses but the
// tag fails — indistinguishable from a wrong passphrase, and said so).
#ifndef SPARETIME_IMAGING_KEYS_H_
#define SPARETIME_IMAGING_KEYS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/imaging/key_cache.h"
#include "sparetime/crypto/secret.h"

namespace sparetime {

// Argon2id cost. kModerate is libsodium's MODERATE (3 passes, 256 MiB);
// tests use kFastForTests so they finish quickly.
struct KdfLimits {
  uint64_t opslimit;
  uint64_t memlimit;
  static KdfLimits Moderate();
  static KdfLimits Interactive();
  static KdfLimits FastForTests();  // the minimum libsodium allows
};

// The stored form of a master key. Serialises to a small JSON document
// (key file "key" in a repository; also what peers keep for an owner).
struct WrappedKey {
  int version = 1;
  uint64_t opslimit = 0;
  uint64_t memlimit = 0;
  std::vector<std::byte> salt;        // crypto_pwhash_SALTBYTES
  std::vector<std::byte> nonce;       // crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
  std::vector<std::byte> ciphertext;  // 32-byte key + 16-byte tag

  std::string ToJson() const;
  // kCorruption with a message naming the bad field when `json` is not a key file.
  static Result<WrappedKey> FromJson(std::string_view json);
};

// Makes a new random master key.
SecretBuffer NewMasterKey();

// Wraps `master` (32 bytes) under `passphrase` with fresh random salt and nonce.
Result<WrappedKey> WrapMasterKey(const SecretBuffer& master, const SecretBuffer& passphrase,
                                 KdfLimits limits);

// Unwraps; kAuthFailed when the passphrase is wrong (or the file was altered).
Result<SecretBuffer> UnwrapMasterKey(const WrappedKey& wrapped, const SecretBuffer& passphrase);

// Unwraps like UnwrapMasterKey, but first asks `cache` (may be null) for the
// key this passphrase unlocked before; after an Argon2id unlock the key is
// kept there. A cached entry counts only when its tag proves the same
// passphrase; a miss, another passphrase or a damaged entry runs Argon2id, so
// a wrong passphrase is still kAuthFailed (and still costs Argon2id).
Result<SecretBuffer> UnlockMasterKey(const WrappedKey& wrapped, const SecretBuffer& passphrase,
                                     const KeyCache* cache);

// Keeps `master`, unlocked from `wrapped` by `passphrase`, in `cache` (may be
// null): what init does, so the commands after it start warm.
void KeepUnlockedKey(const WrappedKey& wrapped, const SecretBuffer& passphrase,
                     const SecretBuffer& master, const KeyCache* cache);

// The subkeys used by the codec. Immutable after Derive; safe to share.
class KeySet {
 public:
  static constexpr size_t kKeySize = 32;
  // Derives all subkeys from a 32-byte master key.
  static std::shared_ptr<const KeySet> Derive(const SecretBuffer& master);

  const SecretBuffer& id_key() const { return id_key_; }
  const SecretBuffer& chunk_key() const { return chunk_key_; }
  const SecretBuffer& manifest_key() const { return manifest_key_; }
  // Keys HMAC-SHA-256 chunk ids (IdHash::kHmacSha256); id_key() keys BLAKE2b
  // ids. Distinct, so the two functions never share a key.
  const SecretBuffer& hmac_id_key() const { return hmac_id_key_; }

 private:
  KeySet() = default;
  SecretBuffer id_key_, chunk_key_, manifest_key_, hmac_id_key_;
};

// Reads the passphrase: from `passphrase_file` when given (the file must not
// be readable by group or others; one trailing newline is dropped), else from
// the SPARETIME_PASSPHRASE environment variable. kInvalidArgument with what to
// do when neither is set or the passphrase is empty.
Result<SecretBuffer> ReadPassphrase(const std::optional<std::string>& passphrase_file);

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_KEYS_H_
