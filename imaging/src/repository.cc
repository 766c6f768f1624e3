// Repository: creates and opens a local repository directory (layout in
// repository.h). config.json is written last by Init, so its presence marks a
// complete repository; the passphrase is checked before the store or catalog
// is opened.
#include "sparetime/imaging/repository.h"

#include <dirent.h>
#include <sys/stat.h>

#include <ctime>

#include <nlohmann/json.hpp>

#include "sparetime/base/fd.h"
#include "sparetime/imaging/chunker.h"
#include "sparetime/imaging/key_file.h"

namespace sparetime {
namespace {

constexpr char kFormatName[] = "sparetime-repository";

std::string ConfigPath(const std::string& dir) { return dir + "/config.json"; }
std::string KeyPath(const std::string& dir) { return dir + "/key"; }
std::string StorePath(const std::string& dir) { return dir + "/store"; }
std::string CatalogPath(const std::string& dir) { return dir + "/catalog.db"; }

// OK when `dir` is missing or an empty directory.
Status CheckInitTarget(const std::string& dir) {
  struct stat sb;
  if (::stat(dir.c_str(), &sb) != 0) return Status::Ok();
  if (!S_ISDIR(sb.st_mode)) return AlreadyExists(dir + " exists and is not a directory");
  if (::stat(ConfigPath(dir).c_str(), &sb) == 0) {
    return AlreadyExists(dir + " already holds a sparetime repository");
  }
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return ErrnoStatus("open " + dir, errno);
  bool empty = true;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") empty = false;
  }
  ::closedir(d);
  if (!empty) return AlreadyExists(dir + " is not empty; choose a new or empty directory");
  return Status::Ok();
}

Result<RepositoryConfig> ParseConfig(const std::string& path, const std::string& text) {
  return RepositoryConfigFromJson(text, kFormatName, path);
}

}  // namespace

Status Repository::Init(const std::string& dir, const SecretBuffer& passphrase,
                        const RepositoryConfig& requested, KdfLimits limits,
                        const KeyCache* key_cache, Env* env) {
  if (env == nullptr) env = Env::Default();
  ST_RETURN_IF_ERROR(InitCrypto());
  ST_ASSIGN_OR_RETURN(RepositoryConfig config, ConfigForInit(requested));
  ST_RETURN_IF_ERROR(CheckInitTarget(dir));
  ST_RETURN_IF_ERROR(MakeDirs(*env, dir, 0700));

  SecretBuffer master = NewMasterKey();
  ST_ASSIGN_OR_RETURN(KeyFile key_file,
                      NewKeyFile(master, passphrase, limits, "init", ::time(nullptr)));
  ST_RETURN_IF_ERROR(WriteFileAtomic(*env, KeyPath(dir), key_file.ToJson(), 0600));
  KeepUnlockedKey(key_file.slots[0].wrapped, passphrase, master, key_cache);
  ST_ASSIGN_OR_RETURN(auto store, PackStore::Create(StorePath(dir), {.env = env}));
  ST_ASSIGN_OR_RETURN(auto catalog, Catalog::Open(CatalogPath(dir), CatalogOptions{.env = env}));

  // The config is written last: a repository without one is not a repository
  // (Open says to init), so a crash before this line leaves nothing usable.
  return WriteFileAtomic(*env, ConfigPath(dir), RepositoryConfigToJson(config, kFormatName),
                         0600);
}

Result<std::unique_ptr<Repository>> Repository::Open(const std::string& dir,
                                                     const SecretBuffer& passphrase,
                                                     const KeyCache* key_cache, Env* env) {
  if (env == nullptr) env = Env::Default();
  ST_RETURN_IF_ERROR(InitCrypto());
  struct stat sb;
  if (::stat(dir.c_str(), &sb) != 0) {
    return NotFound("repository " + dir + " does not exist; create it with `sparetime --repo " +
                    dir + " init`");
  }
  if (!S_ISDIR(sb.st_mode)) {
    return NotFound("repository " + dir + " is a file, not a repository directory: pass --repo "
                    "the directory `sparetime init` created (or a new path, and run init)");
  }
  Result<std::string> config_text = ReadFileToString(*env, ConfigPath(dir));
  if (!config_text.ok()) {
    if (config_text.status().code() == ErrorCode::kNotFound) {
      return NotFound(dir + " is not a sparetime repository (no config.json); create one with "
                      "`sparetime --repo DIR init`");
    }
    return config_text.status();
  }
  ST_ASSIGN_OR_RETURN(RepositoryConfig config, ParseConfig(ConfigPath(dir), *config_text));

  ST_ASSIGN_OR_RETURN(std::string key_text, ReadFileToString(*env, KeyPath(dir)));
  ST_ASSIGN_OR_RETURN(KeyFile key_file, KeyFile::FromJson(key_text));
  Result<UnlockedKey> unlocked = UnlockKeyFile(key_file, passphrase, key_cache);
  if (!unlocked.ok()) {
    if (unlocked.status().code() == ErrorCode::kAuthFailed) {
      return AuthFailed("wrong passphrase for repository " + dir +
                        " (or its key file was altered)");
    }
    return unlocked.status();
  }
  const SecretBuffer* master = &unlocked->master;
  if (key_file.from_version_1) {
    // Migration: the version-1 key becomes slot 1 of a version-2 file (the
    // same bytes, so the passphrase and cached unlocks keep working).
    key_file.key_id = KeyIdOf(*master);
    ST_RETURN_IF_ERROR(WriteFileAtomic(*env, KeyPath(dir), key_file.ToJson(), 0600)
                           .WithContext("migrating key file " + KeyPath(dir) + " to version 2"));
  }

  std::unique_ptr<Repository> repo(new Repository());
  repo->dir_ = dir;
  repo->config_ = config;
  repo->codec_ = std::make_unique<Codec>(KeySet::Derive(*master),
                                         CodecOptions{.zstd_level = config.zstd_level,
                                                      .id_hash = config.id_hash});
  Result<RepoLock> lock = RepoLock::Acquire(dir, RepoLock::Mode::kShared, kOpenLockWait);
  if (!lock.ok() && lock.status().code() == ErrorCode::kUnavailable) {
    return Unavailable("repository " + dir + " is being pruned (" + lock.status().message() +
                       "); try again when the prune has finished");
  }
  if (!lock.ok()) return lock.status();
  repo->lock_.emplace(std::move(*lock));
  // Every blob read here is opened by the codec, whose AEAD tag covers each
  // byte: the unkeyed record hash would check the same bytes twice.
  ST_ASSIGN_OR_RETURN(repo->store_,
                      PackStore::Open(StorePath(dir), {.hash_check_on_get = false, .env = env}));
  ST_ASSIGN_OR_RETURN(repo->catalog_, Catalog::Open(CatalogPath(dir), CatalogOptions{.env = env}));
  return repo;
}

Result<PruneReport> Repository::Prune(const RetentionPolicy& policy,
                                      const PruneOptions& options) {
  Status exclusive = lock_->Convert(RepoLock::Mode::kExclusive, options.lock_wait);
  if (!exclusive.ok()) {
    if (exclusive.code() != ErrorCode::kUnavailable) return exclusive;
    return Unavailable("another sparetime process has repository " + dir_ +
                       " open (a backup, restore, verify or mount is running): prune later");
  }
  PruneEnv env{*catalog_, *codec_, *store_, *store_, {}};
  Result<PruneReport> report = sparetime::Prune(env, policy, options);
  if (report.ok() && !options.dry_run) {
    Result<RepackReport> repack = store_->Repack();
    if (repack.ok()) {
      if (repack->packs_rewritten + repack->packs_deleted > 0 || !repack->stopped.ok()) {
        report->notes.push_back(repack->ToString());
      }
      if (!repack->stopped.ok()) {
        report->stopped = NoSpace(
            "the disk filled up while prune repacked " + dir_ + "/store (" +
            repack->stopped.message() + "); what it freed is kept (" + repack->ToString() +
            "). Free some space on that filesystem and run `sparetime prune` again: it "
            "continues with the packs left");
      }
    } else {
      report = repack.status().WithContext("prune removed the unreferenced chunks, but the "
                                           "repack that frees their space failed");
    }
  }
  lock_->Convert(RepoLock::Mode::kShared, options.lock_wait).IgnoreError();
  return report;
}

}  // namespace sparetime
