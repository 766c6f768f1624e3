// ops::Backups: the backups of this box, opened once for a use case — a
// local repository directory, this agent's backups on its peers (agent
// config + directory), or another host's backups on the peers (bare metal,
// read only). The application layer (agent/ops) is the one place where
// "open this box's backups and do X" lives: the CLI (agent/cli) and
// sparetimed (agent/daemon) both call it, and neither assembles pipelines.
//
// Layering: ops may include config, directory, scheduler, replication,
// migration, peer, transport and imaging; nothing below it includes ops.
// ops prints nothing and knows no exit codes: its results are Status and
// typed reports; the CLI renders them as text or JSON, the daemon logs them.
//
// Invariants:
//   - Open/Init take plain option structs (no CLI types); a failed Open
//     leaves nothing open and its Status says what to do.
//   - Every operator-facing warning is a typed Warning (kind + data);
//     WarningText() is its one rendering.
//   - Backups of another host (`AgentPeers::host`) are read only: Commit,
//     Prune and Repair fail with kFailedPrecondition there.
//   - Backups::Repair re-replicates between peers; a local repository is
//     repaired by ops::Repair (maintenance.h) from a source device instead.
//   - Damage verify finds is recorded where the store can record it
//     (RecordDamaged: a local repository's index; DropDamagedReplicas: the
//     location records of damaged replicas on peers), so the next backup
//     that meets the same content stores it again.
//   - The chunk size of existing backups never changes (dedup depends on
//     it); the policy's differing chunk size is a kPolicyDiffers warning.
//     New chunks on peers use the policy's compression level.
//
// Thread safety: a Backups object is used by one use case at a time.
#ifndef SPARETIME_OPS_BACKUPS_H_
#define SPARETIME_OPS_BACKUPS_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/config/config.h"
#include "sparetime/crypto/secret.h"
#include "sparetime/directory/policy.h"
#include "sparetime/directory/records.h"
#include "sparetime/imaging/catalog.h"
#include "sparetime/imaging/chunk_store.h"
#include "sparetime/imaging/codec.h"
#include "sparetime/imaging/key_cache.h"
#include "sparetime/imaging/keys.h"
#include "sparetime/imaging/pack_store.h"
#include "sparetime/imaging/prune.h"
#include "sparetime/imaging/repository_config.h"
#include "sparetime/transport/identity.h"

namespace sparetime::ops {

// Something an operator should know at the end of (or during) a run.
struct Warning {
  enum class Kind {
    kPeerSkipped,      // `peer` was given up for this run
    kUnderReplicated,  // `count` chunks are on fewer peers than the policy's replica count
    kBadReplicas,      // `count` missing or damaged replicas were skipped for another copy
    kPeerEvent,        // `detail`: what the peer set reported while it ran
    kNoInputWatcher,   // `detail`: why user input is seen only at the periodic checks
    kPolicyDiffers,    // `detail`: a repository setting the policy asks to change (see init)
  };
  Kind kind = Kind::kPeerEvent;
  std::string peer;
  uint64_t count = 0;
  std::string detail;

  static Warning About(Kind kind, std::string detail) {
    Warning w;
    w.kind = kind;
    w.detail = std::move(detail);
    return w;
  }
  static Warning Count(Kind kind, uint64_t count) {
    Warning w;
    w.kind = kind;
    w.count = count;
    return w;
  }
  static Warning PeerSkipped(std::string peer) {
    Warning w;
    w.kind = Kind::kPeerSkipped;
    w.peer = std::move(peer);
    return w;
  }
  bool operator==(const Warning&) const = default;
};

// The one text of a warning ("peer skipped for this run: beta", ...).
std::string WarningText(const Warning& w);
// True when the warnings leave work for `repair` (a peer given up, chunks
// under-replicated, damaged replicas skipped).
bool NeedsRepair(const std::vector<Warning>& warnings);

// A replica on a peer found damaged (its copy failed the hash or AEAD
// check) or missing (the peer said it lacks it).
struct DamagedReplica {
  ChunkId id;
  std::string peer;
  bool damaged = false;  // false: missing
  std::string error;
};

// The typed result of Backups::Repair.
// Where a lost chunk was used: a range of one snapshot's image.
struct LostRange {
  std::string snapshot;
  uint64_t offset = 0;
  uint64_t length = 0;
};

struct RepairReport {
  bool local = false;    // a local repository (ops::Repair from a source device)
  uint64_t chunks = 0;   // chunk records checked (local: distinct chunks verified)
  uint64_t copied = 0;   // new replicas made (local: damaged chunks stored again from the source)
  uint64_t dropped = 0;  // stale location records dropped
  uint64_t lost = 0;     // chunks no live peer has a good copy of (local: damaged, not stored again)
  uint64_t learned = 0;  // holders found that locations.db did not list (a caretaker's copies)
  std::vector<LostRange> lost_at;  // local: every snapshot range a lost chunk leaves unreadable
};
// "N chunks checked: N new replicas made, N stale records dropped, N chunks
// lost (no live peer has a good copy)" — the CLI and the daemon both print it.
std::string RepairText(const RepairReport& r);
// OK, or kCorruption saying how many chunks are lost and what brings them back.
Status RepairVerdict(const RepairReport& r);

class Backups {
 public:
  virtual ~Backups() = default;
  virtual const RepositoryConfig& config() const = 0;
  virtual const Codec& codec() const = 0;
  virtual ChunkSink& sink() = 0;
  virtual ChunkSource& source() = 0;
  virtual Catalog& catalog() = 0;
  // Where they are, for messages: the repository directory, or
  // "the peers of HOST".
  virtual std::string where() const = 0;
  // The snapshot list changed (backup, forget): peers get the new roots.
  virtual Status Commit() { return Status::Ok(); }
  // Before reading these chunks: peers are asked where unrecorded ones are.
  virtual Status Prepare(std::span<const ChunkId>) { return Status::Ok(); }
  // What an operator should know at the end of a run.
  virtual std::vector<Warning> Warnings() const { return {}; }
  // Forgets what `policy` drops and frees the chunks nothing references.
  virtual Result<PruneReport> Prune(const RetentionPolicy& policy,
                                    const PruneOptions& options) = 0;
  // Re-replicates chunks whose holders are gone (backups on peers only;
  // a local repository is repaired by ops::Repair, maintenance.h).
  virtual Result<RepairReport> Repair() {
    return FailedPrecondition("Backups::Repair re-replicates chunks between peers");
  }
  // A local repository (RecordDamaged records, repair re-stores from a device).
  virtual bool local() const { return false; }
  // Checks the databases the backups rely on (SQLite quick_check, or
  // integrity_check when `full`). OK where there are none to check.
  virtual Status CheckIntegrity(bool /*full*/) { return Status::Ok(); }
  // Records chunks verify found damaged, so a later Put of the same id
  // stores it again (PackStore::MarkDamaged). A no-op where the store keeps
  // its own account (peers: repair replaces bad replicas).
  virtual Status RecordDamaged(std::span<const DamagedChunk>) { return Status::Ok(); }
  // A read hold on `snapshot` for `seconds` (0: drop it), so the owner's
  // prune cannot free its chunks meanwhile (docs/peers.md "Read holds").
  // Needed only for another host's backups on the peers: one result per
  // peer asked. Empty where the repository lock already keeps prune away
  // (a local repository, this agent's own backups).
  virtual std::vector<std::pair<std::string, Status>> HoldSnapshot(const std::string& /*snapshot*/,
                                                                   uint32_t /*seconds*/) {
    return {};
  }
  // Verify on peers: read and check every replica of a chunk, not only
  // until a good one. No-op elsewhere.
  virtual void CheckEveryReplica(bool) {}
  // The replicas found damaged or missing since the last call; their
  // location records are dropped and their holders told to drop the copy
  // (own backups), so the next backup or repair stores the chunk again.
  // Empty for a local repository.
  virtual Result<std::vector<DamagedReplica>> DropDamagedReplicas() {
    return std::vector<DamagedReplica>{};
  }
};

// A local repository directory (imaging/repository.h).
struct LocalRepository {
  std::string dir;
};
// Backups kept by this agent's peers: its sparetime.conf and the directory
// as read now (or its cached copy).
struct AgentPeers {
  config::AgentConfig config;
  directory::DirectoryView view;
  // This agent's key pair; null: loaded from <state_dir>/identity.key (and
  // kept by the opened Backups). When given, it must outlive them.
  const transport::Identity* identity = nullptr;
  // Another host's backups (bare-metal restore, read only); "": this agent's.
  std::string host;
};

struct OpenOptions {
  std::variant<LocalRepository, AgentPeers> where;
  // Where the unlocked key is looked for and kept (may be null).
  const KeyCache* key_cache = nullptr;
  // Now, for which peers count as live (default: the system clock).
  std::chrono::system_clock::time_point now{};
  // Warnings raised while the run goes on (a peer given up mid-run); the
  // end-of-run summary is Backups::Warnings(). May be empty.
  std::function<void(const Warning&)> on_warning;
};

// Opens existing backups. kNotFound says to run init; kAuthFailed is a
// wrong passphrase; kInvalidArgument for `host` with a local repository.
Result<std::unique_ptr<Backups>> Open(const OpenOptions& options, const SecretBuffer& passphrase);

// What init is asked for; what is not set comes from the policy (backups on
// peers: sparetimeChunkSize, sparetimeCompressionLevel) or the built-in
// defaults (a local repository).
struct InitSettings {
  std::optional<uint32_t> chunk_size;
  std::optional<int> zstd_level;
  std::optional<IdHash> id_hash = std::nullopt;  // nullopt: `auto` (AutoIdHash(): HMAC-SHA-256 with SHA extensions)
};
// The config init writes: `settings` over `policy` (null: built-in defaults).
RepositoryConfig InitConfig(const InitSettings& settings,
                            const directory::EffectivePolicy* policy);
// A kPolicyDiffers warning when the policy's chunk size is not the one the
// backups keep (they keep theirs: a new chunk size would dedup against
// nothing stored), saying what to do. Compression follows the policy for
// new chunks and is never a warning.
std::vector<Warning> PolicyWarnings(const directory::EffectivePolicy& policy,
                                    const RepositoryConfig& config);

// Creates a new local repository, or this agent's backups on its peers.
// kAlreadyExists when they exist.
Status Init(const OpenOptions& options, const SecretBuffer& passphrase,
            const InitSettings& settings, KdfLimits limits);

}  // namespace sparetime::ops

#endif  // SPARETIME_OPS_BACKUPS_H_
