// Keys: master key generation, passphrase wrapping (Argon2id + XChaCha20-
// Poly1305), the key-file JSON, subkey derivation (crypto_kdf) and reading the
// passphrase. Layouts and test vectors: docs/formats.md ("Keys").
//
// Invariants: every secret — master key, wrapping key, subkeys, passphrase,
// and any buffer that ever holds one — is a SecretBuffer (sodium memory,
// zeroed on free); none is copied into std::string or std::vector. The
// key-file header (version, opslimit, memlimit, salt) is the AEAD's associated
// data, so altering a cost parameter fails authentication. Cost parameters
// are bounded before Argon2id runs, so a crafted key file cannot make unlock
// exhaust memory or run for hours.
#include "sparetime/imaging/keys.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

#include "sparetime/base/bytes.h"
#include "sparetime/base/fd.h"

namespace sparetime {
namespace {

constexpr int kKeyFileVersion = 1;
constexpr std::string_view kKdfName = "argon2id13";
constexpr size_t kSaltBytes = crypto_pwhash_SALTBYTES;                        // 16
constexpr size_t kNonceBytes = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;  // 24
constexpr size_t kTagBytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;       // 16
constexpr size_t kWrappedBytes = KeySet::kKeySize + kTagBytes;                // 48
// AD = version (LE32) || opslimit (LE64) || memlimit (LE64) || salt.
constexpr size_t kHeaderAdBytes = 4 + 8 + 8 + kSaltBytes;

// Bounds on the cost a key file may ask for: a little above libsodium's
// SENSITIVE setting (4 passes, 1 GiB), far below what would take hours.
constexpr uint64_t kMaxOpslimit = 16;
constexpr uint64_t kMaxMemlimit = uint64_t{4} << 30;  // 4 GiB

constexpr char kKdfContext[crypto_kdf_CONTEXTBYTES + 1] = "sprtime1";
constexpr uint64_t kIdKeyId = 1, kChunkKeyId = 2, kManifestKeyId = 3, kHmacIdKeyId = 4;

// Key cache entries (docs/formats.md "Key cache").
constexpr size_t kCacheNameBytes = 16;
constexpr size_t kCacheTagBytes = 32;
constexpr std::string_view kCacheTagDomain{"sparetime key cache v1\0", 23};

constexpr size_t kMaxPassphraseFileBytes = 4096;
constexpr const char* kPassphraseEnv = "SPARETIME_PASSPHRASE";

static_assert(KeySet::kKeySize == crypto_kdf_KEYBYTES);
static_assert(KeySet::kKeySize == crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
static_assert(KeySet::kKeySize == crypto_generichash_KEYBYTES);

// OK when Argon2id may run with these costs; otherwise `code` naming them.
Status CheckLimits(uint64_t opslimit, uint64_t memlimit, ErrorCode code) {
  if (opslimit < crypto_pwhash_argon2id_OPSLIMIT_MIN || opslimit > kMaxOpslimit) {
    return Status(code, "Argon2id opslimit " + std::to_string(opslimit) +
                            " is outside the allowed " +
                            std::to_string(crypto_pwhash_argon2id_OPSLIMIT_MIN) + ".." +
                            std::to_string(kMaxOpslimit));
  }
  if (memlimit < crypto_pwhash_argon2id_MEMLIMIT_MIN || memlimit > kMaxMemlimit) {
    return Status(code, "Argon2id memlimit " + std::to_string(memlimit) +
                            " bytes is outside the allowed " +
                            std::to_string(crypto_pwhash_argon2id_MEMLIMIT_MIN) + ".." +
                            std::to_string(kMaxMemlimit));
  }
  return Status::Ok();
}

// The associated data binding the key-file header to the ciphertext.
std::array<unsigned char, kHeaderAdBytes> HeaderAd(const WrappedKey& w) {
  std::array<unsigned char, kHeaderAdBytes> ad{};
  auto* p = reinterpret_cast<std::byte*>(ad.data());
  PutLe32(p, static_cast<uint32_t>(w.version));
  PutLe64(p + 4, w.opslimit);
  PutLe64(p + 12, w.memlimit);
  std::memcpy(p + 20, w.salt.data(), kSaltBytes);
  return ad;
}

// Argon2id(passphrase, salt, ops, mem) -> 32-byte wrapping key.
Result<SecretBuffer> DeriveWrappingKey(const SecretBuffer& passphrase, const WrappedKey& w) {
  SecretBuffer key(KeySet::kKeySize);
  if (crypto_pwhash(key.uchar(), key.size(), reinterpret_cast<const char*>(passphrase.data()),
                    passphrase.size(), reinterpret_cast<const unsigned char*>(w.salt.data()),
                    w.opslimit, static_cast<size_t>(w.memlimit),
                    crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return Internal("Argon2id failed (out of memory?) with memlimit " + std::to_string(w.memlimit) +
                    " bytes: free some memory and retry");
  }
  return key;
}

const unsigned char* Uchar(const std::vector<std::byte>& v) {
  return reinterpret_cast<const unsigned char*>(v.data());
}

// Reads a JSON field that must be an unsigned integer.
Result<uint64_t> GetUint(const nlohmann::json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end()) return Corruption(std::string("key file has no \"") + field + "\" field");
  if (!it->is_number_unsigned()) {
    return Corruption(std::string("key file field \"") + field + "\" is not an unsigned integer");
  }
  return it->get<uint64_t>();
}

// Reads a JSON field that must be a hex string of exactly `size` bytes.
Result<std::vector<std::byte>> GetHex(const nlohmann::json& j, const char* field, size_t size) {
  auto it = j.find(field);
  if (it == j.end()) return Corruption(std::string("key file has no \"") + field + "\" field");
  std::optional<std::vector<std::byte>> bytes;
  if (it->is_string()) bytes = FromHex(it->get_ref<const std::string&>());
  if (!bytes) {
    return Corruption(std::string("key file field \"") + field + "\" is not a hex string");
  }
  if (bytes->size() != size) {
    return Corruption(std::string("key file field \"") + field + "\" has " +
                      std::to_string(bytes->size()) + " bytes, expected " + std::to_string(size));
  }
  return std::move(*bytes);
}

Status CheckShape(const WrappedKey& w) {
  if (w.version != kKeyFileVersion) {
    return Corruption("key file version " + std::to_string(w.version) +
                      " is not supported (this sparetime reads version " +
                      std::to_string(kKeyFileVersion) + ")");
  }
  if (w.salt.size() != kSaltBytes || w.nonce.size() != kNonceBytes ||
      w.ciphertext.size() != kWrappedBytes) {
    return Corruption("key file has a salt, nonce or ciphertext of the wrong size");
  }
  return CheckLimits(w.opslimit, w.memlimit, ErrorCode::kCorruption).WithContext("key file");
}

// Reads at most kMaxPassphraseFileBytes of the passphrase file into sodium
// memory and drops one trailing "\n" or "\r\n".
Result<SecretBuffer> ReadPassphraseFile(const std::string& path) {
  Result<Fd> opened = OpenFile(path, O_RDONLY);
  if (!opened.ok()) return opened.error().WithContext("reading the passphrase");
  Fd fd = std::move(opened).value();
  struct stat sb;
  if (::fstat(fd.get(), &sb) != 0) return ErrnoStatus("stat passphrase file " + path, errno);
  if ((sb.st_mode & (S_IRGRP | S_IROTH)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(sb.st_mode & 07777));
    return PermissionDenied("passphrase file " + path + " is readable by group or others (mode " +
                            mode + "): run `chmod 600 " + path + "` and retry");
  }
  // One byte more than allowed, to tell "exactly the limit" from "too long".
  SecretBuffer buf(kMaxPassphraseFileBytes + 1);
  size_t len = 0;
  while (len < buf.size()) {
    ssize_t n = ::read(fd.get(), buf.data() + len, buf.size() - len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("read passphrase file " + path, errno);
    }
    if (n == 0) break;
    len += static_cast<size_t>(n);
  }
  if (len > kMaxPassphraseFileBytes) {
    return InvalidArgument("passphrase file " + path + " is longer than " +
                           std::to_string(kMaxPassphraseFileBytes) +
                           " bytes: it must hold only the passphrase");
  }
  const auto* p = buf.uchar();
  if (len >= 1 && p[len - 1] == '\n') {
    --len;
    if (len >= 1 && p[len - 1] == '\r') --len;
  }
  if (len == 0) {
    return InvalidArgument("passphrase file " + path +
                           " is empty: write the passphrase into it, or set " + kPassphraseEnv);
  }
  SecretBuffer out(len);
  std::memcpy(out.data(), buf.data(), len);
  return out;
}

// The cache entry's name: hex BLAKE2b-128 of everything the key file
// authenticates (header, nonce, ciphertext) — public, and unique per key file.
std::string CacheName(const WrappedKey& w) {
  auto ad = HeaderAd(w);
  crypto_generichash_state state;
  std::array<std::byte, kCacheNameBytes> digest;
  crypto_generichash_init(&state, nullptr, 0, digest.size());
  crypto_generichash_update(&state, ad.data(), ad.size());
  crypto_generichash_update(&state, Uchar(w.nonce), w.nonce.size());
  crypto_generichash_update(&state, Uchar(w.ciphertext), w.ciphertext.size());
  crypto_generichash_final(&state, reinterpret_cast<unsigned char*>(digest.data()), digest.size());
  return ToHex(digest);
}

// Proof that `passphrase` unlocked `master`: keyed BLAKE2b-256 with the
// master key over domain || name || passphrase.
SecretBuffer CacheTag(const SecretBuffer& master, const std::string& name,
                      const SecretBuffer& passphrase) {
  SecretBuffer message(kCacheTagDomain.size() + name.size() + passphrase.size());
  std::byte* p = message.data();
  std::memcpy(p, kCacheTagDomain.data(), kCacheTagDomain.size());
  std::memcpy(p + kCacheTagDomain.size(), name.data(), name.size());
  std::memcpy(p + kCacheTagDomain.size() + name.size(), passphrase.data(), passphrase.size());
  SecretBuffer tag(kCacheTagBytes);
  crypto_generichash(tag.uchar(), tag.size(), message.uchar(), message.size(), master.uchar(),
                     master.size());
  return tag;
}

}  // namespace

KdfLimits KdfLimits::Moderate() {
  return {crypto_pwhash_argon2id_OPSLIMIT_MODERATE, crypto_pwhash_argon2id_MEMLIMIT_MODERATE};
}
KdfLimits KdfLimits::Interactive() {
  return {crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE, crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE};
}
KdfLimits KdfLimits::FastForTests() {
  return {crypto_pwhash_argon2id_OPSLIMIT_MIN, crypto_pwhash_argon2id_MEMLIMIT_MIN};
}

std::string WrappedKey::ToJson() const {
  nlohmann::ordered_json j;
  j["version"] = version;
  j["kdf"] = kKdfName;
  j["opslimit"] = opslimit;
  j["memlimit"] = memlimit;
  j["salt"] = ToHex(salt);
  j["nonce"] = ToHex(nonce);
  j["ciphertext"] = ToHex(ciphertext);
  return j.dump(2) + "\n";
}

Result<WrappedKey> WrappedKey::FromJson(std::string_view json) {
  nlohmann::json j = nlohmann::json::parse(json, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Corruption("key file is not valid JSON");
  if (!j.is_object()) return Corruption("key file is not a JSON object");
  WrappedKey w;
  ST_ASSIGN_OR_RETURN(uint64_t version, GetUint(j, "version"));
  if (version != kKeyFileVersion) {
    return Corruption("key file field \"version\" is " + std::to_string(version) +
                      ": this sparetime reads only version " + std::to_string(kKeyFileVersion));
  }
  w.version = kKeyFileVersion;
  auto kdf = j.find("kdf");
  if (kdf == j.end()) return Corruption("key file has no \"kdf\" field");
  if (!kdf->is_string() || kdf->get_ref<const std::string&>() != kKdfName) {
    return Corruption("key file field \"kdf\" is not \"" + std::string(kKdfName) + "\"");
  }
  ST_ASSIGN_OR_RETURN(w.opslimit, GetUint(j, "opslimit"));
  ST_ASSIGN_OR_RETURN(w.memlimit, GetUint(j, "memlimit"));
  ST_ASSIGN_OR_RETURN(w.salt, GetHex(j, "salt", kSaltBytes));
  ST_ASSIGN_OR_RETURN(w.nonce, GetHex(j, "nonce", kNonceBytes));
  ST_ASSIGN_OR_RETURN(w.ciphertext, GetHex(j, "ciphertext", kWrappedBytes));
  ST_RETURN_IF_ERROR(CheckShape(w));  // the cost bounds
  return w;
}

SecretBuffer NewMasterKey() {
  SecretBuffer key(KeySet::kKeySize);
  randombytes_buf(key.data(), key.size());
  return key;
}

Result<WrappedKey> WrapMasterKey(const SecretBuffer& master, const SecretBuffer& passphrase,
                                 KdfLimits limits) {
  if (master.size() != KeySet::kKeySize) {
    return InvalidArgument("master key must be " + std::to_string(KeySet::kKeySize) +
                           " bytes, not " + std::to_string(master.size()));
  }
  if (passphrase.empty())
    return InvalidArgument("refusing to wrap the master key under an empty passphrase");
  ST_RETURN_IF_ERROR(CheckLimits(limits.opslimit, limits.memlimit, ErrorCode::kInvalidArgument));
  WrappedKey w;
  w.opslimit = limits.opslimit;
  w.memlimit = limits.memlimit;
  w.salt.resize(kSaltBytes);
  w.nonce.resize(kNonceBytes);
  w.ciphertext.resize(kWrappedBytes);
  randombytes_buf(w.salt.data(), w.salt.size());
  randombytes_buf(w.nonce.data(), w.nonce.size());
  ST_ASSIGN_OR_RETURN(SecretBuffer wrapping_key, DeriveWrappingKey(passphrase, w));
  auto ad = HeaderAd(w);
  crypto_aead_xchacha20poly1305_ietf_encrypt(
      reinterpret_cast<unsigned char*>(w.ciphertext.data()), nullptr, master.uchar(), master.size(),
      ad.data(), ad.size(), nullptr, Uchar(w.nonce), wrapping_key.uchar());
  return w;
}

Result<SecretBuffer> UnwrapMasterKey(const WrappedKey& wrapped, const SecretBuffer& passphrase) {
  ST_RETURN_IF_ERROR(CheckShape(wrapped));
  ST_ASSIGN_OR_RETURN(SecretBuffer wrapping_key, DeriveWrappingKey(passphrase, wrapped));
  auto ad = HeaderAd(wrapped);
  SecretBuffer master(KeySet::kKeySize);
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          master.uchar(), nullptr, nullptr, Uchar(wrapped.ciphertext), wrapped.ciphertext.size(),
          ad.data(), ad.size(), Uchar(wrapped.nonce), wrapping_key.uchar()) != 0) {
    return AuthFailed(
        "cannot unlock the master key: wrong passphrase, or the key file was altered "
        "(the two cannot be told apart)");
  }
  return master;
}

Result<SecretBuffer> UnlockMasterKey(const WrappedKey& wrapped, const SecretBuffer& passphrase,
                                     const KeyCache* cache) {
  if (cache == nullptr) return UnwrapMasterKey(wrapped, passphrase);
  ST_RETURN_IF_ERROR(CheckShape(wrapped));
  const std::string name = CacheName(wrapped);
  std::optional<SecretBuffer> entry = cache->Find(name);
  if (entry && entry->size() == KeySet::kKeySize + kCacheTagBytes) {
    SecretBuffer master(KeySet::kKeySize);
    std::memcpy(master.data(), entry->data(), master.size());
    SecretBuffer tag = CacheTag(master, name, passphrase);
    if (sodium_memcmp(tag.data(), entry->data() + KeySet::kKeySize, tag.size()) == 0) return master;
  }
  ST_ASSIGN_OR_RETURN(SecretBuffer master, UnwrapMasterKey(wrapped, passphrase));
  KeepUnlockedKey(wrapped, passphrase, master, cache);
  return master;
}

void KeepUnlockedKey(const WrappedKey& wrapped, const SecretBuffer& passphrase,
                     const SecretBuffer& master, const KeyCache* cache) {
  if (cache == nullptr || master.size() != KeySet::kKeySize || !CheckShape(wrapped).ok()) return;
  const std::string name = CacheName(wrapped);
  SecretBuffer tag = CacheTag(master, name, passphrase);
  SecretBuffer entry(master.size() + tag.size());
  std::memcpy(entry.data(), master.data(), master.size());
  std::memcpy(entry.data() + master.size(), tag.data(), tag.size());
  cache->Keep(name, entry);
}

std::shared_ptr<const KeySet> KeySet::Derive(const SecretBuffer& master) {
  // REQUIRES: a 32-byte master key. Anything else is a programming error, and
  // reading past a short key would be worse than stopping.
  if (master.size() != kKeySize) std::abort();
  std::shared_ptr<KeySet> keys(new KeySet());
  const std::pair<SecretBuffer*, uint64_t> subkeys[] = {{&keys->id_key_, kIdKeyId},
                                                        {&keys->chunk_key_, kChunkKeyId},
                                                        {&keys->manifest_key_, kManifestKeyId},
                                                        {&keys->hmac_id_key_, kHmacIdKeyId}};
  for (const auto& [key, subkey_id] : subkeys) {
    *key = SecretBuffer(kKeySize);
    crypto_kdf_derive_from_key(key->uchar(), key->size(), subkey_id, kKdfContext, master.uchar());
  }
  return keys;
}

Result<SecretBuffer> ReadPassphrase(const std::optional<std::string>& passphrase_file) {
  if (passphrase_file) return ReadPassphraseFile(*passphrase_file);
  const char* env = std::getenv(kPassphraseEnv);
  size_t len = env == nullptr ? 0 : std::strlen(env);
  if (len == 0) {
    return InvalidArgument(std::string("no passphrase given: set ") + kPassphraseEnv +
                           " or pass --passphrase-file FILE (a file only you can read)");
  }
  SecretBuffer out(len);
  std::memcpy(out.data(), env, len);
  return out;
}

}  // namespace sparetime
