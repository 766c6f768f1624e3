// Key file, version 2: the master key behind several passphrase slots
// (restic's model) and, optionally, sealed to the organisation's escrow key
// (libsodium sealed box to sparetimeEscrowPublicKey). Layout, composition
// and test vectors: docs/formats.md ("Key file, version 2").
//
//   slots[i]  = a version-1 WrappedKey (keys.h): its own salt, nonce and
//               Argon2id cost, its own passphrase; all wrap the same master key
//   escrow    = crypto_box_seal(master, escrow public key)
//   key_id    = BLAKE2b-128(key = master, "sparetime key id v1"): names the
//               master key without revealing it; every unlock checks it
//
// Invariants:
//   - Every slot and the escrow seal open to the same master key, whose
//     key_id is recorded; a slot or seal that opens to another key is
//     refused (kCorruption), so an edited file cannot swap the key.
//   - A key file always keeps a way in: the last slot cannot be removed
//     while no escrow seal exists (kFailedPrecondition); with a seal, zero
//     slots is allowed (only the escrow holder can then open it).
//   - A version-1 file reads as a version-2 file with one slot (id 1) and no
//     key_id yet (`from_version_1`); its slot is the same bytes, so the
//     passphrase and cached unlocks keep working. Writers always write 2.
//   - Secrets (master, escrow secret key, passphrases) only in SecretBuffer.
#ifndef SPARETIME_IMAGING_KEY_FILE_H_
#define SPARETIME_IMAGING_KEY_FILE_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/crypto/secret.h"
#include "sparetime/imaging/key_cache.h"
#include "sparetime/imaging/keys.h"

namespace sparetime {

inline constexpr size_t kEscrowKeyBytes = 32;  // X25519 (crypto_box) keys
inline constexpr size_t kMaxKeySlots = 8;      // keeps the file under the 4 KiB peers hold
inline constexpr size_t kMaxSlotLabelBytes = 64;

struct KeySlot {
  uint32_t id = 0;     // unique in the file, never reused while the file lives
  std::string label;   // free text (who or what this passphrase is for), ≤ 64 bytes
  int64_t created = 0; // Unix seconds
  WrappedKey wrapped;
};

struct EscrowSeal {
  std::array<std::byte, kEscrowKeyBytes> public_key{};
  std::vector<std::byte> sealed;  // crypto_box_seal(master): 32 + 48 bytes
};

struct KeyFile {
  static constexpr int kVersion = 2;
  std::string key_id;  // hex, 16 bytes; empty only when read from version 1
  std::vector<KeySlot> slots;
  std::optional<EscrowSeal> escrow;
  bool from_version_1 = false;

  std::string ToJson() const;
  // Reads version 2, or version 1 (one slot, id 1). kCorruption naming the
  // field when it is neither.
  static Result<KeyFile> FromJson(std::string_view json);
};

// The public name of a master key (hex BLAKE2b-128, keyed by the master key).
std::string KeyIdOf(const SecretBuffer& master);

// A new key file: one slot (id 1) wrapping `master` under `passphrase`.
Result<KeyFile> NewKeyFile(const SecretBuffer& master, const SecretBuffer& passphrase,
                           KdfLimits limits, std::string label, int64_t now);

struct UnlockedKey {
  SecretBuffer master;
  uint32_t slot = 0;  // the slot the passphrase opened
};

// Tries each slot with `passphrase` (asking `cache` first, see keys.h
// UnlockMasterKey). kAuthFailed when no slot opens; kCorruption when a slot
// opens to a key whose id is not the file's.
Result<UnlockedKey> UnlockKeyFile(const KeyFile& file, const SecretBuffer& passphrase,
                                  const KeyCache* cache);

// Adds a slot for `passphrase` (fresh salt and nonce, `limits` recorded in
// it); returns its id. kNoSpace past kMaxKeySlots.
Result<uint32_t> AddKeySlot(KeyFile& file, const SecretBuffer& master,
                            const SecretBuffer& passphrase, KdfLimits limits, std::string label,
                            int64_t now);

// Replaces slot `id` by a new slot for `passphrase` (fresh salt and nonce,
// `limits`, the old label, a new id: max + 1) in the same place: what
// `passwd` writes, so even a full file can change a passphrase. Returns the
// new id; kNotFound for an unknown `id`.
Result<uint32_t> ReplaceKeySlot(KeyFile& file, uint32_t id, const SecretBuffer& master,
                                const SecretBuffer& passphrase, KdfLimits limits, int64_t now);

// Removes slot `id`. kNotFound for an unknown id; kFailedPrecondition for
// the last slot while no escrow seal exists.
Status RemoveKeySlot(KeyFile& file, uint32_t id);

// Seals `master` to `public_key` (replacing any older seal).
Status SealToEscrow(KeyFile& file, const SecretBuffer& master,
                    const std::array<std::byte, kEscrowKeyBytes>& public_key);

// A new escrow key pair: secret (32) in a SecretBuffer, public key beside it.
struct EscrowKeyPair {
  SecretBuffer secret_key;
  std::array<std::byte, kEscrowKeyBytes> public_key{};
};
EscrowKeyPair NewEscrowKeyPair();
// The public key of an escrow secret key (crypto_scalarmult_base).
std::array<std::byte, kEscrowKeyBytes> EscrowPublicKeyOf(const SecretBuffer& secret_key);

// Opens the escrow seal with the admin's secret key. kNotFound when the file
// has no seal; kAuthFailed naming both public keys when `secret_key` is not
// the one the file is sealed to (another key, or another domain's);
// kCorruption when the seal does not open or opens to another key id.
Result<SecretBuffer> OpenEscrow(const KeyFile& file, const SecretBuffer& secret_key);

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_KEY_FILE_H_
