// The key use cases (issue 22): passphrase slots (add, list, remove,
// passwd), escrow (keygen, recover), the paper recovery kit (export,
// import). They work on the key file alone (imaging/key_file.h) — a local
// repository's DIR/key, or this agent's key file on its peers (local copy
// plus every live peer's) — and never touch the data: `passwd` rewraps 32
// bytes, nothing is re-encrypted.
//
// Invariants:
//   - Every change is one atomic replacement of the key file (temp file,
//     fsync, rename), so a kill -9 leaves the old file or the new one: the
//     old passphrase or the new one opens it, never neither.
//   - A change needs a way in (a passphrase that opens a slot, the paper
//     kit, or the escrow secret key); `list` needs none (the file is not
//     secret: it shows costs, labels and the escrow public key).
//   - Another host's key (`AgentPeers::host`) is read only here: peers take
//     a key file from its owner only, so recovery of another host yields a
//     paper kit that the owner's box imports.
//   - ops prints nothing; the CLI renders the typed results.
#ifndef SPARETIME_OPS_KEYS_H_
#define SPARETIME_OPS_KEYS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/crypto/secret.h"
#include "sparetime/imaging/key_file.h"
#include "sparetime/imaging/keys.h"
#include "sparetime/ops/backups.h"

namespace sparetime::ops {

struct KeySlotInfo {
  uint32_t id = 0;
  std::string label;
  int64_t created = 0;
  uint64_t opslimit = 0;
  uint64_t memlimit = 0;
};

struct KeyListing {
  std::string host;
  std::string key_id;  // empty for a version-1 file not yet migrated
  int version = 2;     // the file's version as stored
  std::vector<KeySlotInfo> slots;
  std::optional<std::string> escrow_public_key;  // standard base64, the directory's spelling
};

// What the key file says (no passphrase needed).
Result<KeyListing> ListKeys(const OpenOptions& where);

// A new slot for `new_passphrase`, unlocked by `passphrase`; returns its id.
Result<uint32_t> AddKey(const OpenOptions& where, const SecretBuffer& passphrase,
                        const SecretBuffer& new_passphrase, KdfLimits limits, std::string label);

// Removes slot `slot` (`passphrase` must open some slot). The last slot is
// refused while no escrow seal exists (kFailedPrecondition).
Status RemoveKey(const OpenOptions& where, const SecretBuffer& passphrase, uint32_t slot);

// Replaces the slot `passphrase` opens by one for `new_passphrase` (same
// label, new salt, nonce and `limits`), in one atomic write; returns the new
// slot's id.
Result<uint32_t> ChangePassphrase(const OpenOptions& where, const SecretBuffer& passphrase,
                                  const SecretBuffer& new_passphrase, KdfLimits limits);

// The paper kit text (paper_key.h) for the master key `passphrase` opens.
Result<SecretBuffer> ExportPaperKit(const OpenOptions& where, const SecretBuffer& passphrase);

// Adds a slot for `new_passphrase` with the master key from a paper kit;
// kInvalidArgument when the kit is not this key file's key (another key id).
Result<uint32_t> ImportPaperKit(const OpenOptions& where, std::string_view kit,
                                const SecretBuffer& new_passphrase, KdfLimits limits);

struct EscrowRecovery {
  std::string host;
  std::string key_id;
  std::optional<uint32_t> slot;  // the new passphrase slot (own backups)
  SecretBuffer paper_kit;        // another host's: give this to its owner
};

// Opens the key file with the escrow secret key. For this box's own backups
// with `new_passphrase` set: adds a slot for it. For another host's backups:
// returns its paper kit (that host imports it with `sparetime key import`).
// kAuthFailed naming both public keys for a wrong (or another domain's) key.
Result<EscrowRecovery> RecoverWithEscrow(const OpenOptions& where,
                                         const SecretBuffer& escrow_secret_key,
                                         const SecretBuffer* new_passphrase, KdfLimits limits);

// Makes the admin's escrow key pair: the secret key is written to
// `secret_file` (new file, mode 0600, one line of base64); returns the
// public key in the directory's spelling (standard base64, 44 characters).
Result<std::string> EscrowKeygen(const std::string& secret_file);

// Reads an escrow secret key file written by EscrowKeygen (must not be
// readable by group or others).
Result<SecretBuffer> ReadEscrowSecretKey(const std::string& secret_file);

}  // namespace sparetime::ops

#endif  // SPARETIME_OPS_KEYS_H_
