// PeerRepository: an owner's backups kept by its peers — the counterpart of
// the local Repository for `sparetime --config FILE ...`. It holds the same
// roles (Codec, ChunkSink/ChunkSource = PeerSet, Catalog) so the imager,
// restorer and verifier run unchanged.
//
// What lives where:
//   peers        sealed chunks (R replicas each), the owner's wrapped master
//                key, and its roots: the sealed snapshot list (roots.h)
//   state_dir/backup/          this host's own backups: key (copy of the
//                              wrapped key), config.json, catalog.db,
//                              locations.db (where every chunk lives)
//   state_dir/hosts/<HOST>/    catalog + locations rebuilt from the peers when
//                              reading another host's backups (read only)
//
// So the passphrase and the directory alone recover everything: Open finds
// the wrapped key and the newest roots on the live peers when the local copy
// is gone (a wiped state directory, or a fresh box restoring `--host OLD`).
// Init and every change to the snapshot list (PublishRoots) push key and
// roots to every live peer. The key file is version 2 (key_file.h): Open
// migrates a version-1 copy and re-seals to the policy's escrow key.
//
// Locking: an open repository of this host's own backups holds
// state_dir/backup/lock shared (imaging/repo_lock.h); Prune takes it
// exclusively, so a backup in another process never takes a chunk for
// "already on the peers" while prune releases it.
#ifndef SPARETIME_REPLICATION_PEER_REPOSITORY_H_
#define SPARETIME_REPLICATION_PEER_REPOSITORY_H_

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sparetime/base/status.h"
#include "sparetime/imaging/catalog.h"
#include "sparetime/imaging/codec.h"
#include "sparetime/imaging/key_file.h"
#include "sparetime/imaging/keys.h"
#include "sparetime/imaging/prune.h"
#include "sparetime/imaging/repo_lock.h"
#include "sparetime/imaging/repository.h"
#include "sparetime/replication/chunk_locations.h"
#include "sparetime/replication/peer_set.h"

namespace sparetime::replication {

struct PeerRepositoryOptions {
  std::string state_dir;
  std::string self_name;  // this agent
  std::string host;       // whose backups; empty = self_name
  const transport::Identity* identity = nullptr;  // this agent's; must outlive
  std::vector<PeerSetPeer> peers;                 // live peers from the directory
  PeerSetOptions set;                             // replicas, limits, timeouts, report
  // The zstd level of chunks written from now on (the policy's
  // sparetimeCompressionLevel, 0..19); none: the one the backups were
  // created with. Safe to change: chunk ids are over the plaintext and a
  // zstd frame opens whatever level made it, so dedup and reads are the
  // same. The chunk size is never taken from here (it would break dedup).
  std::optional<int> zstd_level;
  // The policy's sparetimeEscrowPublicKey: Init seals the master key to it,
  // and Open of this host's own backups re-seals (and pushes the key file to
  // every live peer) when the key file's seal is to another key or missing.
  std::optional<std::array<std::byte, kEscrowKeyBytes>> escrow_public_key;
};

// The owner's key file (imaging/key_file.h) where the peer repository keeps
// it: state_dir/backup/key for this host, else (or when missing) the copies
// the live peers hold for `options.host`, one per distinct text.
Result<std::vector<std::string>> ReadKeyFiles(const PeerRepositoryOptions& options);
// Replaces this host's key file: state_dir/backup/key (atomically) and on
// every live peer. OK when the local copy is written and at least one peer
// took it (or there are no live peers); the peers that did not are named
// in the error otherwise.
Status WriteKeyFile(const PeerRepositoryOptions& options, const std::string& json);

class PeerRepository {
 public:
  // Creates this host's backup key and settings and gives the wrapped key and
  // an empty snapshot list to every live peer. kAlreadyExists when this host
  // already has backups (locally or on a peer).
  // `key_cache` (may be null, see key_cache.h): where the unlocked key is
  // looked for and kept, here and in Open.
  static Status Init(PeerRepositoryOptions options, const SecretBuffer& passphrase,
                     const RepositoryConfig& config, KdfLimits limits,
                     const KeyCache* key_cache = nullptr);
  // kNotFound (says to run init) when no key exists locally or on any live
  // peer; kAuthFailed for a wrong passphrase.
  static Result<std::unique_ptr<PeerRepository>> Open(PeerRepositoryOptions options,
                                                      const SecretBuffer& passphrase,
                                                      const KeyCache* key_cache = nullptr);
  ~PeerRepository();

  const std::string& host() const { return host_; }
  bool read_only() const { return read_only_; }
  const RepositoryConfig& config() const { return config_; }
  const Codec& codec() const { return *codec_; }
  PeerSet& store() { return *store_; }
  Catalog& catalog() { return *catalog_; }

  // Seals the catalog's snapshot list as the next generation of roots and
  // gives it (and the wrapped key) to every live peer. OK when at least one
  // peer took it.
  Status PublishRoots();

  // Forgets the snapshots `policy` drops, publishes the new snapshot list,
  // then releases the chunks nothing references any more on every recorded
  // holder and drops their location rows (imaging/prune.h). Holders that
  // are away keep theirs until the next prune (report.notes says so). Waits
  // up to options.lock_wait for other users of this host's backups, then
  // kUnavailable "... prune later". kFailedPrecondition when read only.
  // REQUIRES: no other thread uses this object meanwhile.
  Result<PruneReport> Prune(const RetentionPolicy& policy, const PruneOptions& options);
  Result<PruneReport> Prune(const RetentionPolicy& policy, bool dry_run) {
    PruneOptions options;
    options.dry_run = dry_run;
    return Prune(policy, options);
  }

 private:
  PeerRepository() = default;
  // options_.zstd_level when set and valid, else config_.zstd_level.
  int WriteLevel() const {
    const std::optional<int>& l = options_.zstd_level;
    return l && *l >= 0 && *l <= 19 ? *l : config_.zstd_level;
  }
  std::string host_;
  bool read_only_ = false;
  std::string dir_;
  PeerRepositoryOptions options_;
  RepositoryConfig config_;
  std::string wrapped_key_json_;
  uint64_t generation_ = 0;  // highest roots generation seen
  // Rebuilds codec_ (config_'s id function and WriteLevel()) and
  // roots_codec_ from `keys`.
  void MakeCodecs(const std::shared_ptr<const KeySet>& keys);
  std::unique_ptr<Codec> codec_;
  // Seals and opens the roots: always BLAKE2b ids (roots.h), so a host that
  // has only its passphrase opens them before it knows the id function.
  std::unique_ptr<Codec> roots_codec_;
  std::unique_ptr<ChunkLocations> locations_;
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<PeerSet> store_;
  std::optional<RepoLock> lock_;  // own backups only
};

}  // namespace sparetime::replication

#endif  // SPARETIME_REPLICATION_PEER_REPOSITORY_H_
