// Key file version 2: slots, escrow seal, key id (see key_file.h; layout and
// vectors in docs/formats.md "Key file, version 2").
//
// Invariants: every slot and the seal open to the master key named by
// key_id (checked on each unlock); the last slot never goes while no seal
// exists; secrets only in SecretBuffer; the JSON is written in one fixed
// field order so equal files are equal bytes.
#include "sparetime/imaging/key_file.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "sparetime/base/bytes.h"

namespace sparetime {
namespace {

constexpr size_t kKeyIdBytes = 16;
constexpr std::string_view kKeyIdDomain = "sparetime key id v1";
constexpr size_t kSealedBytes = KeySet::kKeySize + crypto_box_SEALBYTES;  // 80

static_assert(kEscrowKeyBytes == crypto_box_PUBLICKEYBYTES);
static_assert(kEscrowKeyBytes == crypto_box_SECRETKEYBYTES);

std::span<const std::byte> Span(const std::array<std::byte, kEscrowKeyBytes>& a) {
  return {a.data(), a.size()};
}

Result<std::vector<std::byte>> Hex(const nlohmann::json& j, const char* where, const char* field,
                                   size_t size) {
  auto it = j.find(field);
  if (it == j.end()) return Corruption(std::string(where) + " has no \"" + field + "\" field");
  std::optional<std::vector<std::byte>> bytes;
  if (it->is_string()) bytes = FromHex(it->get_ref<const std::string&>());
  if (!bytes || bytes->size() != size) {
    return Corruption(std::string(where) + " field \"" + field + "\" is not " +
                      std::to_string(size) + " bytes of hex");
  }
  return std::move(*bytes);
}

Result<KeySlot> ParseSlot(const nlohmann::json& j, size_t index) {
  const std::string where = "key file slot #" + std::to_string(index + 1);
  if (!j.is_object()) return Corruption(where + " is not a JSON object");
  KeySlot s;
  auto id = j.find("id");
  if (id == j.end() || !id->is_number_unsigned() || id->get<uint64_t>() == 0 ||
      id->get<uint64_t>() > UINT32_MAX) {
    return Corruption(where + " field \"id\" is not an integer in 1..4294967295");
  }
  s.id = static_cast<uint32_t>(id->get<uint64_t>());
  auto label = j.find("label");
  if (label == j.end() || !label->is_string() ||
      label->get_ref<const std::string&>().size() > kMaxSlotLabelBytes) {
    return Corruption(where + " field \"label\" is not a string of at most 64 bytes");
  }
  s.label = label->get<std::string>();
  auto created = j.find("created");
  if (created == j.end() || !created->is_number_integer()) {
    return Corruption(where + " field \"created\" is not an integer");
  }
  s.created = created->get<int64_t>();
  // The wrapped key itself is a version-1 key file's fields.
  nlohmann::json wrapped = j;
  wrapped.erase("id");
  wrapped.erase("label");
  wrapped.erase("created");
  wrapped["version"] = 1;
  Result<WrappedKey> w = WrappedKey::FromJson(wrapped.dump());
  if (!w.ok()) return w.status().WithContext(where);
  s.wrapped = std::move(*w);
  return s;
}

uint32_t NextSlotId(const KeyFile& file) {
  uint32_t next = 1;
  for (const KeySlot& s : file.slots) next = std::max(next, s.id + 1);
  return next;
}

Status CheckKeyId(const KeyFile& file, const SecretBuffer& master, const std::string& what) {
  if (file.key_id.empty() || file.key_id == KeyIdOf(master)) return Status::Ok();
  return Corruption(what + " opens to a master key (id " + KeyIdOf(master) +
                    ") that is not this key file's (id " + file.key_id +
                    "): the key file was altered; use another copy (a peer's, or the paper kit)");
}

}  // namespace

std::string KeyIdOf(const SecretBuffer& master) {
  std::array<std::byte, kKeyIdBytes> id;
  crypto_generichash(reinterpret_cast<unsigned char*>(id.data()), id.size(),
                     reinterpret_cast<const unsigned char*>(kKeyIdDomain.data()),
                     kKeyIdDomain.size(), master.uchar(), master.size());
  return ToHex(id);
}

std::string KeyFile::ToJson() const {
  nlohmann::ordered_json j;
  j["version"] = kVersion;
  j["key_id"] = key_id;
  nlohmann::ordered_json slots_json = nlohmann::ordered_json::array();
  for (const KeySlot& s : slots) {
    nlohmann::ordered_json sj;
    sj["id"] = s.id;
    sj["label"] = s.label;
    sj["created"] = s.created;
    sj["kdf"] = "argon2id13";
    sj["opslimit"] = s.wrapped.opslimit;
    sj["memlimit"] = s.wrapped.memlimit;
    sj["salt"] = ToHex(s.wrapped.salt);
    sj["nonce"] = ToHex(s.wrapped.nonce);
    sj["ciphertext"] = ToHex(s.wrapped.ciphertext);
    slots_json.push_back(std::move(sj));
  }
  j["slots"] = std::move(slots_json);
  if (escrow) {
    nlohmann::ordered_json e;
    e["public_key"] = ToHex(Span(escrow->public_key));
    e["sealed"] = ToHex(escrow->sealed);
    j["escrow"] = std::move(e);
  } else {
    j["escrow"] = nullptr;
  }
  return j.dump(2) + "\n";
}

Result<KeyFile> KeyFile::FromJson(std::string_view json) {
  nlohmann::json j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded()) return Corruption("key file is not valid JSON");
  if (!j.is_object()) return Corruption("key file is not a JSON object");
  auto version = j.find("version");
  if (version != j.end() && version->is_number_unsigned() && version->get<uint64_t>() == 1) {
    ST_ASSIGN_OR_RETURN(WrappedKey w, WrappedKey::FromJson(json));
    KeyFile file;
    file.from_version_1 = true;
    file.slots.push_back(KeySlot{.id = 1, .label = "", .created = 0, .wrapped = std::move(w)});
    return file;
  }
  if (version == j.end() || !version->is_number_unsigned() ||
      version->get<uint64_t>() != static_cast<uint64_t>(kVersion)) {
    return Corruption("key file field \"version\" is not 1 or 2: this sparetime reads key files "
                      "of versions 1 and 2 (a newer sparetime wrote it?)");
  }
  KeyFile file;
  ST_ASSIGN_OR_RETURN(std::vector<std::byte> key_id, Hex(j, "key file", "key_id", kKeyIdBytes));
  file.key_id = ToHex(key_id);
  auto slots = j.find("slots");
  if (slots == j.end() || !slots->is_array() || slots->size() > kMaxKeySlots) {
    return Corruption("key file field \"slots\" is not an array of at most 8 slots");
  }
  for (size_t i = 0; i < slots->size(); ++i) {
    ST_ASSIGN_OR_RETURN(KeySlot s, ParseSlot((*slots)[i], i));
    for (const KeySlot& other : file.slots) {
      if (other.id == s.id) return Corruption("key file has two slots with id " + std::to_string(s.id));
    }
    file.slots.push_back(std::move(s));
  }
  auto escrow = j.find("escrow");
  if (escrow == j.end()) return Corruption("key file has no \"escrow\" field");
  if (!escrow->is_null()) {
    if (!escrow->is_object()) return Corruption("key file field \"escrow\" is not an object or null");
    EscrowSeal e;
    ST_ASSIGN_OR_RETURN(std::vector<std::byte> pk,
                        Hex(*escrow, "key file escrow", "public_key", kEscrowKeyBytes));
    std::memcpy(e.public_key.data(), pk.data(), pk.size());
    ST_ASSIGN_OR_RETURN(e.sealed, Hex(*escrow, "key file escrow", "sealed", kSealedBytes));
    file.escrow = std::move(e);
  }
  if (file.slots.empty() && !file.escrow) {
    return Corruption("key file has neither a passphrase slot nor an escrow seal");
  }
  return file;
}

Result<KeyFile> NewKeyFile(const SecretBuffer& master, const SecretBuffer& passphrase,
                           KdfLimits limits, std::string label, int64_t now) {
  KeyFile file;
  file.key_id = KeyIdOf(master);
  ST_RETURN_IF_ERROR(AddKeySlot(file, master, passphrase, limits, std::move(label), now).status());
  return file;
}

Result<UnlockedKey> UnlockKeyFile(const KeyFile& file, const SecretBuffer& passphrase,
                                  const KeyCache* cache) {
  for (const KeySlot& s : file.slots) {
    Result<SecretBuffer> master = UnlockMasterKey(s.wrapped, passphrase, cache);
    if (master.ok()) {
      ST_RETURN_IF_ERROR(CheckKeyId(file, *master, "slot " + std::to_string(s.id)));
      return UnlockedKey{std::move(*master), s.id};
    }
    if (master.status().code() != ErrorCode::kAuthFailed) return master.status();
  }
  return AuthFailed("cannot unlock the master key: the passphrase opens none of the key file's " +
                    std::to_string(file.slots.size()) +
                    " slot(s) (wrong passphrase, or the key file was altered)");
}

Result<uint32_t> AddKeySlot(KeyFile& file, const SecretBuffer& master,
                            const SecretBuffer& passphrase, KdfLimits limits, std::string label,
                            int64_t now) {
  if (file.slots.size() >= kMaxKeySlots) {
    return NoSpace("the key file already has " + std::to_string(kMaxKeySlots) +
                   " passphrase slots: remove one with `sparetime key remove ID` first");
  }
  if (label.size() > kMaxSlotLabelBytes) {
    return InvalidArgument("a slot label is at most 64 bytes; this one has " +
                           std::to_string(label.size()));
  }
  ST_RETURN_IF_ERROR(CheckKeyId(file, master, "the key being added"));
  ST_ASSIGN_OR_RETURN(WrappedKey w, WrapMasterKey(master, passphrase, limits));
  const uint32_t id = NextSlotId(file);
  file.slots.push_back(KeySlot{.id = id, .label = std::move(label), .created = now,
                               .wrapped = std::move(w)});
  if (file.key_id.empty()) file.key_id = KeyIdOf(master);
  return id;
}

Result<uint32_t> ReplaceKeySlot(KeyFile& file, uint32_t id, const SecretBuffer& master,
                                const SecretBuffer& passphrase, KdfLimits limits, int64_t now) {
  auto it = std::find_if(file.slots.begin(), file.slots.end(),
                         [&](const KeySlot& s) { return s.id == id; });
  if (it == file.slots.end()) {
    return NotFound("the key file has no slot " + std::to_string(id));
  }
  ST_RETURN_IF_ERROR(CheckKeyId(file, master, "the key being rewrapped"));
  ST_ASSIGN_OR_RETURN(WrappedKey w, WrapMasterKey(master, passphrase, limits));
  const uint32_t new_id = NextSlotId(file);
  *it = KeySlot{.id = new_id, .label = it->label, .created = now, .wrapped = std::move(w)};
  if (file.key_id.empty()) file.key_id = KeyIdOf(master);
  return new_id;
}

Status RemoveKeySlot(KeyFile& file, uint32_t id) {
  auto it = std::find_if(file.slots.begin(), file.slots.end(),
                         [&](const KeySlot& s) { return s.id == id; });
  if (it == file.slots.end()) {
    return NotFound("the key file has no slot " + std::to_string(id) +
                    ": list the slots with `sparetime key list`");
  }
  if (file.slots.size() == 1 && !file.escrow) {
    return FailedPrecondition("slot " + std::to_string(id) +
                              " is the last way into these backups and no escrow seal exists: "
                              "add another passphrase first (`sparetime key add`)");
  }
  file.slots.erase(it);
  return Status::Ok();
}

Status SealToEscrow(KeyFile& file, const SecretBuffer& master,
                    const std::array<std::byte, kEscrowKeyBytes>& public_key) {
  ST_RETURN_IF_ERROR(CheckKeyId(file, master, "the key being sealed"));
  EscrowSeal e;
  e.public_key = public_key;
  e.sealed.resize(kSealedBytes);
  if (crypto_box_seal(reinterpret_cast<unsigned char*>(e.sealed.data()), master.uchar(),
                      master.size(), reinterpret_cast<const unsigned char*>(public_key.data())) != 0) {
    return InvalidArgument("the escrow public key " + ToHex(Span(public_key)) +
                           " is not a usable X25519 key");
  }
  if (file.key_id.empty()) file.key_id = KeyIdOf(master);
  file.escrow = std::move(e);
  return Status::Ok();
}

EscrowKeyPair NewEscrowKeyPair() {
  EscrowKeyPair pair{SecretBuffer(kEscrowKeyBytes), {}};
  crypto_box_keypair(reinterpret_cast<unsigned char*>(pair.public_key.data()),
                     pair.secret_key.uchar());
  return pair;
}

std::array<std::byte, kEscrowKeyBytes> EscrowPublicKeyOf(const SecretBuffer& secret_key) {
  std::array<std::byte, kEscrowKeyBytes> pk{};
  if (secret_key.size() == kEscrowKeyBytes) {
    crypto_scalarmult_base(reinterpret_cast<unsigned char*>(pk.data()), secret_key.uchar());
  }
  return pk;
}

Result<SecretBuffer> OpenEscrow(const KeyFile& file, const SecretBuffer& secret_key) {
  if (!file.escrow) {
    return NotFound("this key file has no escrow seal (the policy had no "
                    "sparetimeEscrowPublicKey when it was last written)");
  }
  if (secret_key.size() != kEscrowKeyBytes) {
    return InvalidArgument("an escrow secret key is 32 bytes, not " +
                           std::to_string(secret_key.size()));
  }
  const auto pk = EscrowPublicKeyOf(secret_key);
  if (sodium_memcmp(pk.data(), file.escrow->public_key.data(), pk.size()) != 0) {
    return AuthFailed("this escrow key (public key " + ToHex(Span(pk)) +
                      ") is not the one the backups are sealed to (public key " +
                      ToHex(Span(file.escrow->public_key)) +
                      "): use the secret key of the domain whose policy names that public key");
  }
  SecretBuffer master(KeySet::kKeySize);
  if (crypto_box_seal_open(master.uchar(),
                           reinterpret_cast<const unsigned char*>(file.escrow->sealed.data()),
                           file.escrow->sealed.size(),
                           reinterpret_cast<const unsigned char*>(pk.data()),
                           secret_key.uchar()) != 0) {
    return Corruption("the escrow seal does not open with the right escrow key: the key file "
                      "was altered; try a peer's copy");
  }
  ST_RETURN_IF_ERROR(CheckKeyId(file, master, "the escrow seal"));
  return master;
}

}  // namespace sparetime
