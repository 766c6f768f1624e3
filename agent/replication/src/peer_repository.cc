// PeerRepository: key and roots from the local copy or the peers, the local
// catalog and locations, and publishing roots (see peer_repository.h).
#include "sparetime/replication/peer_repository.h"

#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <nlohmann/json.hpp>
#include <thread>

#include "roots.h"
#include "sparetime/base/fd.h"
#include "sparetime/base/mutex.h"
#include "sparetime/imaging/chunker.h"

namespace sparetime::replication {
namespace {

constexpr char kConfigFormat[] = "sparetime-peer-backup";
// Largest plaintext a data or manifest chunk may open to (4 MiB chunks).
constexpr size_t kMaxChunkPlaintext = 4u << 20;

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// What one peer holds for an owner: its wrapped key and roots, if any.
struct PeerHoldings {
  std::string peer;
  Status status;  // the session or the first request failed
  std::optional<std::string> wrapped_key;
  std::optional<transport::RootsReply> roots;
};

// Runs `call` on a fresh session to every peer, in parallel; one Status each.
std::vector<Status> OnEveryPeer(const PeerRepositoryOptions& options,
                                const std::function<Status(peer::PeerClient&)>& call) {
  std::vector<Status> results(options.peers.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < options.peers.size(); ++i) {
    threads.emplace_back([&, i] {
      Result<std::unique_ptr<peer::PeerClient>> client =
          peer::PeerClient::Connect(options.peers[i].endpoint, *options.identity, options.set.client);
      results[i] = client.ok() ? call(**client) : client.status();
      if (client.ok()) (*client)->Close().IgnoreError();
    });
  }
  for (auto& t : threads) t.join();
  return results;
}

std::vector<PeerHoldings> AskPeers(const PeerRepositoryOptions& options, const std::string& owner) {
  std::vector<PeerHoldings> out(options.peers.size());
  Mutex mu;  // guards `out` and `next` while the peers answer
  size_t next = 0;
  std::vector<Status> results = OnEveryPeer(options, [&](peer::PeerClient& c) -> Status {
    PeerHoldings h;
    h.peer = c.peer().name;
    Result<std::vector<std::byte>> key = c.GetWrappedKey(owner);
    if (key.ok()) h.wrapped_key = std::string(reinterpret_cast<const char*>(key->data()), key->size());
    else if (key.status().code() != ErrorCode::kNotFound) return key.status();
    Result<transport::RootsReply> roots = c.GetRoots(owner);
    if (roots.ok()) h.roots = std::move(*roots);
    else if (roots.status().code() != ErrorCode::kNotFound) return roots.status();
    MutexLock lock(mu);
    out[next++] = std::move(h);
    return Status::Ok();
  });
  out.resize(next);
  for (size_t i = 0; i < results.size(); ++i) {
    if (!results[i].ok()) out.push_back({options.peers[i].endpoint.name, results[i], {}, {}});
  }
  return out;
}

std::string Unreached(const std::vector<PeerHoldings>& holdings) {
  std::string out;
  for (const PeerHoldings& h : holdings) {
    out += (out.empty() ? "" : "; ") + h.peer + (h.status.ok() ? ": none" : ": " + h.status.message());
  }
  return out.empty() ? "no live peers in the directory" : out;
}

Status WriteLocalConfig(const std::string& dir, const RepositoryConfig& config) {
  return WriteFileAtomic(dir + "/config.json", RepositoryConfigToJson(config, kConfigFormat),
                         0600);
}

// The same serialiser and checks as a local repository's config
// (imaging/repository_config.h): format version, chunk size, zstd level.
Result<RepositoryConfig> ReadLocalConfig(const std::string& dir) {
  const std::string path = dir + "/config.json";
  ST_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return RepositoryConfigFromJson(text, kConfigFormat, path);
}

std::string BackupDir(const PeerRepositoryOptions& o) { return o.state_dir + "/backup"; }

}  // namespace

PeerRepository::~PeerRepository() = default;

Status PeerRepository::Init(PeerRepositoryOptions options, const SecretBuffer& passphrase,
                            const RepositoryConfig& requested, KdfLimits limits,
                            const KeyCache* key_cache) {
  ST_RETURN_IF_ERROR(InitCrypto());
  ST_ASSIGN_OR_RETURN(RepositoryConfig config, ConfigForInit(requested));
  const std::string dir = BackupDir(options);
  if (Exists(dir + "/key")) {
    return AlreadyExists("this host already has backups (" + dir +
                         "); list them with `sparetime snapshots`");
  }
  for (const PeerHoldings& h : AskPeers(options, "")) {
    if (h.wrapped_key) {
      return AlreadyExists("peer " + h.peer + " already holds a key for " + options.self_name +
                           ": this host has backups; open them with its passphrase (e.g. "
                           "`sparetime snapshots`) instead of creating new ones");
    }
  }
  SecretBuffer master = NewMasterKey();
  ST_ASSIGN_OR_RETURN(KeyFile key_file,
                      NewKeyFile(master, passphrase, limits, "init", ::time(nullptr)));
  if (options.escrow_public_key) {
    ST_RETURN_IF_ERROR(SealToEscrow(key_file, master, *options.escrow_public_key));
  }
  std::unique_ptr<PeerRepository> repo(new PeerRepository());
  repo->host_ = options.self_name;
  repo->options_ = options;
  repo->config_ = config;
  repo->wrapped_key_json_ = key_file.ToJson();
  repo->MakeCodecs(KeySet::Derive(master));
  ST_RETURN_IF_ERROR(MakeDirs(dir, 0700));
  ST_ASSIGN_OR_RETURN(repo->catalog_, Catalog::Open(dir + "/catalog.db"));
  ST_RETURN_IF_ERROR(repo->PublishRoots());
  ST_RETURN_IF_ERROR(WriteLocalConfig(dir, config));
  ST_RETURN_IF_ERROR(WriteFileAtomic(dir + "/key", repo->wrapped_key_json_, 0600));
  KeepUnlockedKey(key_file.slots[0].wrapped, passphrase, master, key_cache);
  return Status::Ok();
}

Result<std::unique_ptr<PeerRepository>> PeerRepository::Open(PeerRepositoryOptions options,
                                                              const SecretBuffer& passphrase,
                                                              const KeyCache* key_cache) {
  ST_RETURN_IF_ERROR(InitCrypto());
  std::unique_ptr<PeerRepository> repo(new PeerRepository());
  repo->host_ = options.host.empty() ? options.self_name : options.host;
  repo->read_only_ = repo->host_ != options.self_name;
  repo->dir_ = repo->read_only_ ? options.state_dir + "/hosts/" + repo->host_ : BackupDir(options);
  repo->options_.zstd_level = options.zstd_level;  // WriteLevel() below
  const std::string& dir = repo->dir_;
  const std::string owner = repo->read_only_ ? repo->host_ : "";
  auto report = [&](const std::string& line) {
    if (options.set.report) options.set.report(line);
  };

  // The wrapped key: the local copy, else whatever the peers hold.
  std::vector<PeerHoldings> holdings = AskPeers(options, owner);
  std::vector<std::string> key_candidates;
  if (!repo->read_only_ && Exists(dir + "/key")) {
    ST_ASSIGN_OR_RETURN(std::string text, ReadFileToString(dir + "/key"));
    key_candidates.push_back(text);
  }
  for (const PeerHoldings& h : holdings) {
    if (h.wrapped_key && std::find(key_candidates.begin(), key_candidates.end(), *h.wrapped_key) ==
                             key_candidates.end()) {
      key_candidates.push_back(*h.wrapped_key);
    }
  }
  if (key_candidates.empty()) {
    if (repo->read_only_) {
      return NotFound("no live peer holds backups of " + repo->host_ + " (" + Unreached(holdings) +
                      "); check the name with `sparetime peers`");
    }
    return NotFound("this host (" + options.self_name + ") has no backups, here or on any live peer (" +
                    Unreached(holdings) + "); create them with `sparetime init`");
  }
  std::optional<SecretBuffer> master;
  std::optional<KeyFile> key_file;
  for (const std::string& candidate : key_candidates) {
    Result<KeyFile> parsed = KeyFile::FromJson(candidate);
    if (!parsed.ok()) continue;
    Result<UnlockedKey> unlocked = UnlockKeyFile(*parsed, passphrase, key_cache);
    if (unlocked.ok()) {
      master = std::move(unlocked->master);
      key_file = std::move(*parsed);
      repo->wrapped_key_json_ = candidate;
      break;
    }
  }
  if (!master) {
    return AuthFailed("wrong passphrase for the backups of " + repo->host_ +
                      " (no copy of its key opens with it)");
  }
  // Settings: local, else from the newest roots (needs the codec first; the
  // zstd level only matters for writing).
  Result<RepositoryConfig> local_config = ReadLocalConfig(dir);
  if (!local_config.ok() && local_config.status().code() != ErrorCode::kNotFound) {
    // Refused like a local repository's config (never rewritten from the
    // roots: a newer format must not be downgraded).
    return local_config.status();
  }
  repo->config_ = local_config.ok() ? *local_config : RepositoryConfig{};
  const std::shared_ptr<const KeySet> keys = KeySet::Derive(*master);
  repo->MakeCodecs(keys);
  std::sort(holdings.begin(), holdings.end(), [](const PeerHoldings& a, const PeerHoldings& b) {
    return (a.roots ? a.roots->generation : 0) > (b.roots ? b.roots->generation : 0);
  });
  std::optional<Roots> roots;
  for (const PeerHoldings& h : holdings) {
    if (!h.roots || roots) continue;
    Result<Roots> opened = OpenRoots(h.roots->roots, *repo->roots_codec_, repo->host_, h.roots->generation);
    if (opened.ok()) {
      roots = std::move(*opened);
    } else {
      report("peer " + h.peer + ": " + opened.status().message() + "; ignored");
    }
  }
  if (roots) repo->generation_ = roots->generation;
  if (!local_config.ok()) {
    if (!roots) {
      return NotFound("no live peer holds a readable snapshot list of " + repo->host_ + " (" +
                      Unreached(holdings) + ")");
    }
    repo->config_ = roots->config;  // with its id function
    repo->MakeCodecs(keys);
  }

  ST_RETURN_IF_ERROR(MakeDirs(dir, 0700));
  if (!repo->read_only_) {
    Result<RepoLock> lock =
        RepoLock::Acquire(dir, RepoLock::Mode::kShared, Repository::kOpenLockWait);
    if (!lock.ok() && lock.status().code() == ErrorCode::kUnavailable) {
      return Unavailable("the backups of " + repo->host_ + " are being pruned (" +
                         lock.status().message() + "); try again when the prune has finished");
    }
    if (!lock.ok()) return lock.status();
    repo->lock_.emplace(std::move(*lock));
  }
  if (!local_config.ok()) ST_RETURN_IF_ERROR(WriteLocalConfig(dir, repo->config_));
  bool key_changed = false;
  if (!repo->read_only_ && key_file->from_version_1) {
    key_file->key_id = KeyIdOf(*master);  // migration to version 2 (key_file.h)
    key_changed = true;
  }
  if (!repo->read_only_ && options.escrow_public_key &&
      (!key_file->escrow || key_file->escrow->public_key != *options.escrow_public_key)) {
    ST_RETURN_IF_ERROR(SealToEscrow(*key_file, *master, *options.escrow_public_key));
    report("the escrow key in the directory changed: the master key is sealed to the new one");
    key_changed = true;
  }
  if (key_changed) {
    repo->wrapped_key_json_ = key_file->ToJson();
    ST_RETURN_IF_ERROR(WriteKeyFile(options, repo->wrapped_key_json_));
  } else if (!repo->read_only_ && !Exists(dir + "/key")) {
    ST_RETURN_IF_ERROR(WriteFileAtomic(dir + "/key", repo->wrapped_key_json_, 0600));
  }
  ST_ASSIGN_OR_RETURN(repo->catalog_, Catalog::Open(dir + "/catalog.db"));
  ST_ASSIGN_OR_RETURN(std::vector<Snapshot> known, repo->catalog_->ListSnapshots());
  if (roots && (repo->read_only_ || known.empty())) {
    for (const Snapshot& s : roots->snapshots) {
      bool have = std::any_of(known.begin(), known.end(), [&](const Snapshot& k) { return k.id == s.id; });
      if (!have) ST_RETURN_IF_ERROR(repo->catalog_->AddSnapshot(s).status());
    }
  }
  ST_ASSIGN_OR_RETURN(repo->locations_, ChunkLocations::Open(dir + "/locations.db"));

  PeerSetOptions set = options.set;
  set.owner = owner;
  const Codec* codec = repo->codec_.get();
  set.verify = [codec](const ChunkId& id, std::span<const std::byte> sealed) -> Status {
    if (codec->Open(BlobKind::kData, id, sealed, kMaxChunkPlaintext).ok()) return Status::Ok();
    return codec->Open(BlobKind::kManifest, id, sealed, kMaxChunkPlaintext).status();
  };
  repo->options_ = options;
  ST_ASSIGN_OR_RETURN(repo->store_, PeerSet::Open(*options.identity, std::move(options.peers),
                                                  *repo->locations_, std::move(set)));
  return repo;
}

Result<std::vector<std::string>> ReadKeyFiles(const PeerRepositoryOptions& options) {
  const bool own = options.host.empty() || options.host == options.self_name;
  std::vector<std::string> out;
  const std::string local = BackupDir(options) + "/key";
  if (own && Exists(local)) {
    ST_ASSIGN_OR_RETURN(std::string text, ReadFileToString(local));
    out.push_back(std::move(text));
  }
  std::vector<PeerHoldings> holdings = AskPeers(options, own ? "" : options.host);
  for (const PeerHoldings& h : holdings) {
    if (h.wrapped_key && std::find(out.begin(), out.end(), *h.wrapped_key) == out.end()) {
      out.push_back(*h.wrapped_key);
    }
  }
  if (out.empty()) {
    return NotFound("no key file of " + (own ? options.self_name : options.host) +
                    " here or on any live peer (" + Unreached(holdings) + ")");
  }
  return out;
}

Status WriteKeyFile(const PeerRepositoryOptions& options, const std::string& json) {
  if (!options.host.empty() && options.host != options.self_name) {
    return FailedPrecondition("the key of " + options.host + " can be changed only from " +
                              options.host + " itself (peers take keys from their owner only)");
  }
  if (json.size() > transport::kMaxWrappedKeySize) {
    return NoSpace("the key file is " + std::to_string(json.size()) + " bytes, over the " +
                   std::to_string(transport::kMaxWrappedKeySize) + " peers keep");
  }
  ST_RETURN_IF_ERROR(MakeDirs(BackupDir(options), 0700));
  ST_RETURN_IF_ERROR(WriteFileAtomic(BackupDir(options) + "/key", json, 0600));
  std::vector<std::byte> key(reinterpret_cast<const std::byte*>(json.data()),
                             reinterpret_cast<const std::byte*>(json.data()) + json.size());
  std::vector<Status> results =
      OnEveryPeer(options, [&](peer::PeerClient& c) { return c.PutWrappedKey(key); });
  std::string errors;
  size_t ok = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].ok()) {
      ok++;
    } else {
      errors += (errors.empty() ? "" : "; ") + options.peers[i].endpoint.name + ": " +
                results[i].message();
    }
  }
  if (!results.empty() && ok == 0) {
    return Unavailable("the new key file is written here, but no peer took it (" + errors +
                       "); it is pushed again with the next backup");
  }
  if (!errors.empty() && options.set.report) {
    options.set.report("peers that did not take the new key file (they get it with the next "
                       "backup): " + errors);
  }
  return Status::Ok();
}

void PeerRepository::MakeCodecs(const std::shared_ptr<const KeySet>& keys) {
  codec_ = std::make_unique<Codec>(
      keys, CodecOptions{.zstd_level = WriteLevel(), .id_hash = config_.id_hash});
  roots_codec_ = std::make_unique<Codec>(
      keys, CodecOptions{.zstd_level = WriteLevel(), .id_hash = IdHash::kBlake2b});
}

Status PeerRepository::PublishRoots() {
  if (read_only_) {
    return FailedPrecondition("the backups of " + host_ + " are read only from this host");
  }
  ST_ASSIGN_OR_RETURN(std::vector<Snapshot> snapshots, catalog_->ListSnapshots());
  Roots roots{host_, generation_ + 1, config_, std::move(snapshots)};
  std::vector<std::byte> blob = SealRoots(roots, *roots_codec_);
  if (blob.size() > transport::kMaxRootsSize) {
    return NoSpace("the snapshot list is " + std::to_string(blob.size()) +
                             " bytes, over the 1 MiB peers keep; forget old snapshots");
  }
  std::vector<std::byte> key(reinterpret_cast<const std::byte*>(wrapped_key_json_.data()),
                             reinterpret_cast<const std::byte*>(wrapped_key_json_.data()) +
                                 wrapped_key_json_.size());
  std::vector<Status> results = OnEveryPeer(options_, [&](peer::PeerClient& c) -> Status {
    ST_RETURN_IF_ERROR(c.PutWrappedKey(key));
    return c.PutRoots(roots.generation, blob);
  });
  std::string errors;
  size_t ok = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].ok()) {
      ok++;
    } else {
      errors += (errors.empty() ? "" : "; ") + options_.peers[i].endpoint.name + ": " + results[i].message();
      if (options_.set.report) {
        options_.set.report("peer " + options_.peers[i].endpoint.name +
                            " did not take the snapshot list: " + results[i].message());
      }
    }
  }
  if (ok == 0) {
    return Status(ErrorCode::kUnavailable,
                  "no peer took the snapshot list (" +
                      (errors.empty() ? std::string("no live peers in the directory") : errors) + ")");
  }
  generation_ = roots.generation;
  return Status::Ok();
}

Result<PruneReport> PeerRepository::Prune(const RetentionPolicy& policy,
                                          const PruneOptions& options) {
  if (read_only_) {
    return FailedPrecondition("the backups of " + host_ + " are read only from this host; only " +
                              host_ + " prunes them");
  }
  Status exclusive = lock_->Convert(RepoLock::Mode::kExclusive, options.lock_wait);
  if (!exclusive.ok()) {
    if (exclusive.code() != ErrorCode::kUnavailable) return exclusive;
    return Unavailable("another sparetime process has this host's backups open (" + dir_ +
                       "; a backup, restore, verify or mount is running): prune later");
  }
  const uint64_t unreleased_before = store_->stats().unreleased;
  PruneEnv env{*catalog_, *codec_, *store_, *store_, [this] { return PublishRoots(); }};
  Result<PruneReport> report = sparetime::Prune(env, policy, options);
  const uint64_t unreleased = store_->stats().unreleased - unreleased_before;
  if (report.ok() && unreleased > 0) {
    report->notes.push_back(std::to_string(unreleased) +
                            " chunk release(s) were not confirmed by their peers (away, failing, "
                            "or deferred while a mount holds a snapshot); the next prune "
                            "releases them");
  }
  lock_->Convert(RepoLock::Mode::kShared, options.lock_wait).IgnoreError();
  return report;
}

}  // namespace sparetime::replication
