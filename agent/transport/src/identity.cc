// Identity key pairs, their key file, and the base64 form of public keys.
// Invariant: the Ed25519 secret key only ever sits in SecretBuffers (the key
// file is read into and written from one).
#include "sparetime/transport/identity.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "sparetime/base/fd.h"

namespace sparetime::transport {
namespace {

constexpr char kMagic[8] = {'S', 'T', 'I', 'D', 'K', 'E', 'Y', '1'};

const unsigned char* U(const std::byte* p) { return reinterpret_cast<const unsigned char*>(p); }
unsigned char* U(std::byte* p) { return reinterpret_cast<unsigned char*>(p); }

std::string OctalMode(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

}  // namespace

std::string PublicKey::ToBase64() const {
  char out[sodium_base64_ENCODED_LEN(kSize, sodium_base64_VARIANT_ORIGINAL)];
  sodium_bin2base64(out, sizeof out, U(bytes.data()), kSize, sodium_base64_VARIANT_ORIGINAL);
  return out;
}

Result<PublicKey> PublicKey::FromBase64(std::string_view text) {
  auto bad = [&] {
    return InvalidArgument("'" + std::string(text.substr(0, 64)) +
                           "' is not an Ed25519 public key: expected 44 characters of standard "
                           "base64 (with '=' padding) encoding 32 bytes");
  };
  if (text.size() != kBase64Size) return bad();
  PublicKey key;
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(U(key.bytes.data()), kSize, text.data(), text.size(), nullptr, &len, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      len != kSize || end != text.data() + text.size()) {
    return bad();
  }
  // Only the canonical spelling: LDAP compares the text case- and bit-exactly.
  if (key.ToBase64() != text) return bad();
  return key;
}

PublicKey PublicKey::FromBytes(std::span<const std::byte, kSize> b) {
  PublicKey key;
  std::memcpy(key.bytes.data(), b.data(), kSize);
  return key;
}

Identity Identity::Generate() {
  SecretBuffer seed(kSeedSize);
  randombytes_buf(seed.data(), seed.size());
  return FromSeed(std::span<const std::byte, kSeedSize>(seed.data(), kSeedSize));
}

Identity Identity::FromSeed(std::span<const std::byte, kSeedSize> seed) {
  SecretBuffer sk(crypto_sign_SECRETKEYBYTES);
  PublicKey pk;
  crypto_sign_seed_keypair(U(pk.bytes.data()), sk.uchar(), U(seed.data()));
  return Identity(std::move(sk), pk);
}

Result<Identity> Identity::Load(const std::string& path) {
  ST_ASSIGN_OR_RETURN(Fd fd, OpenFile(path, O_RDONLY));
  struct stat sb;
  if (::fstat(fd.get(), &sb) != 0) return ErrnoStatus("stat " + path, errno);
  if ((sb.st_mode & 077) != 0) {
    return PermissionDenied("identity key file " + path + " has mode " + OctalMode(sb.st_mode) +
                            " and may be read by other users; run 'chmod 600 " + path +
                            "' (and consider the key compromised if others could read it)");
  }
  auto corrupt = [&](const std::string& why) {
    return Corruption("identity key file " + path + " " + why +
                      "; restore it from a backup, or remove it to make a new key and "
                      "publish the new public key in the directory");
  };
  if (static_cast<uint64_t>(sb.st_size) != kFileSize) {
    return corrupt("is " + std::to_string(sb.st_size) + " bytes, expected " +
                   std::to_string(kFileSize));
  }
  SecretBuffer file(kFileSize);
  ST_ASSIGN_OR_RETURN(size_t got, ReadFullAt(fd.get(), file.span(), 0));
  if (got != kFileSize) return corrupt("was truncated while reading");
  if (std::memcmp(file.data(), kMagic, sizeof kMagic) != 0) {
    return corrupt("does not start with the sparetime identity magic 'STIDKEY1'");
  }
  Identity id = FromSeed(std::span<const std::byte, kSeedSize>(file.data() + 8, kSeedSize));
  if (std::memcmp(id.public_key_.bytes.data(), file.data() + 8 + kSeedSize, PublicKey::kSize) != 0) {
    return corrupt("holds a public key that does not belong to its secret key");
  }
  return id;
}

Result<Identity> Identity::LoadOrCreate(const std::string& path) {
  Result<Identity> loaded = Load(path);
  if (loaded.ok() || loaded.error().code() != ErrorCode::kNotFound) return loaded;
  Identity id = Generate();
  ST_RETURN_IF_ERROR(id.Save(path));
  return id;
}

Status Identity::Save(const std::string& path) const {
  SecretBuffer file(kFileSize);
  std::memcpy(file.data(), kMagic, sizeof kMagic);
  std::memcpy(file.data() + 8, secret_key_.data(), kSeedSize);  // libsodium: sk = seed || pk
  std::memcpy(file.data() + 8 + kSeedSize, public_key_.bytes.data(), PublicKey::kSize);
  std::string_view contents(reinterpret_cast<const char*>(file.data()), file.size());
  return WriteFileAtomic(path, contents, 0600).WithContext("saving identity key");
}

Signature Identity::Sign(std::span<const std::byte> message) const {
  Signature sig;
  crypto_sign_detached(U(sig.data()), nullptr, U(message.data()), message.size(),
                       secret_key_.uchar());
  return sig;
}

bool VerifySignature(const PublicKey& key, std::span<const std::byte> message,
                     const Signature& signature) {
  return crypto_sign_verify_detached(U(signature.data()), U(message.data()), message.size(),
                                     U(key.bytes.data())) == 0;
}

}  // namespace sparetime::transport
