// Repository: a local sparetime repository directory — the façade the CLI
// opens. It owns the key file, the pack store and the catalog, and hands out
// the narrow roles (Codec, ChunkSink/Source, BackupJournal) to the pipelines.
//
//   DIR/config.json   format version, defaults (chunk size, zstd level)
//   DIR/key           KeyFile JSON, version 2 (key_file.h; mode 0600); a
//                     version-1 file is migrated by the first Open
//   DIR/catalog.db    Catalog
//   DIR/store/        PackStore
//   DIR/lock          RepoLock: held shared while a Repository is open,
//                     exclusive while it prunes
//
// Open() checks the passphrase before anything else is touched: a wrong one
// is kAuthFailed. A directory that is not a repository is kNotFound with a
// message that says to run `sparetime init`. Open waits up to kOpenLockWait
// while a prune holds the lock, then fails with kUnavailable.
#ifndef SPARETIME_IMAGING_REPOSITORY_H_
#define SPARETIME_IMAGING_REPOSITORY_H_

#include <cstdint>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "sparetime/base/env.h"
#include "sparetime/base/status.h"
#include "sparetime/imaging/catalog.h"
#include "sparetime/imaging/codec.h"
#include "sparetime/imaging/keys.h"
#include "sparetime/imaging/pack_store.h"
#include "sparetime/imaging/prune.h"
#include "sparetime/imaging/repo_lock.h"
#include "sparetime/imaging/repository_config.h"

namespace sparetime {

class Repository {
 public:
  static constexpr std::chrono::milliseconds kOpenLockWait{10'000};

  // Creates a new repository in `dir` (missing or empty). kAlreadyExists when
  // `dir` already holds one. `key_cache` (may be null, see key_cache.h) is
  // where the unlocked key is looked for and kept, here and in Open. `env`
  // (null: Env::Default()) carries every durable write of the key, config,
  // pack store and catalog (base/env.h; the crash tests pass a FaultEnv).
  static Status Init(const std::string& dir, const SecretBuffer& passphrase,
                     const RepositoryConfig& config, KdfLimits limits,
                     const KeyCache* key_cache = nullptr, Env* env = nullptr);
  static Result<std::unique_ptr<Repository>> Open(const std::string& dir,
                                                  const SecretBuffer& passphrase,
                                                  const KeyCache* key_cache = nullptr,
                                                  Env* env = nullptr);

  // DIR/key: what the key use cases (agent/ops keys.h) read and replace.
  static std::string KeyFilePath(const std::string& dir) { return dir + "/key"; }
  const std::string& dir() const { return dir_; }
  const RepositoryConfig& config() const { return config_; }
  const Codec& codec() const { return *codec_; }
  PackStore& store() { return *store_; }
  Catalog& catalog() { return *catalog_; }

  // Forgets the snapshots `policy` drops and removes the chunks nothing
  // references any more (prune.h), then repacks packs that became mostly
  // dead. Takes the repository lock exclusively for the duration, waiting
  // up to options.lock_wait for other users (backups, restores, verifies in
  // other processes or other Repository objects) to close it; kUnavailable
  // "... prune later" when they do not. REQUIRES: no other thread uses this
  // object meanwhile.
  Result<PruneReport> Prune(const RetentionPolicy& policy, const PruneOptions& options);
  Result<PruneReport> Prune(const RetentionPolicy& policy, bool dry_run) {
    PruneOptions options;
    options.dry_run = dry_run;
    return Prune(policy, options);
  }

 private:
  Repository() = default;
  std::string dir_;
  RepositoryConfig config_;
  std::unique_ptr<Codec> codec_;
  std::unique_ptr<PackStore> store_;
  std::unique_ptr<Catalog> catalog_;
  std::optional<RepoLock> lock_;
};

}  // namespace sparetime

#endif  // SPARETIME_IMAGING_REPOSITORY_H_
