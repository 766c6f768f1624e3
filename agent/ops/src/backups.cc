// The two Backups: LocalBackups over a Repository directory, PeerBackups
// over a PeerRepository built from sparetime.conf and the directory.
#include "sparetime/ops/backups.h"

#include "peer_setup.h"

#include "sparetime/base/clock.h"
#include "sparetime/imaging/repository.h"
#include "sparetime/ops/agent_peers.h"
#include "sparetime/replication/peer_repository.h"

namespace sparetime::ops {
namespace {

class LocalBackups final : public Backups {
 public:
  LocalBackups(std::string dir, std::unique_ptr<Repository> repo)
      : dir_(std::move(dir)), repo_(std::move(repo)) {}
  const RepositoryConfig& config() const override { return repo_->config(); }
  const Codec& codec() const override { return repo_->codec(); }
  ChunkSink& sink() override { return repo_->store(); }
  ChunkSource& source() override { return repo_->store(); }
  Catalog& catalog() override { return repo_->catalog(); }
  std::string where() const override { return dir_; }
  Result<PruneReport> Prune(const RetentionPolicy& policy, const PruneOptions& options) override {
    return repo_->Prune(policy, options);
  }
  bool local() const override { return true; }
  Status CheckIntegrity(bool full) override {
    ST_RETURN_IF_ERROR(repo_->catalog().CheckIntegrity(full));
    return repo_->store().CheckIntegrity(full);
  }
  Status RecordDamaged(std::span<const DamagedChunk> chunks) override {
    return repo_->store().MarkDamaged(chunks);
  }

 private:
  std::string dir_;
  std::unique_ptr<Repository> repo_;
};

class PeerBackups final : public Backups {
 public:
  PeerBackups(std::unique_ptr<transport::Identity> identity,
              std::unique_ptr<replication::PeerRepository> repo, std::vector<Warning> policy)
      : identity_(std::move(identity)), repo_(std::move(repo)), policy_(std::move(policy)) {}
  const RepositoryConfig& config() const override { return repo_->config(); }
  const Codec& codec() const override { return repo_->codec(); }
  ChunkSink& sink() override { return repo_->store(); }
  ChunkSource& source() override { return repo_->store(); }
  Catalog& catalog() override { return repo_->catalog(); }
  std::string where() const override { return "the peers of " + repo_->host(); }
  Status Commit() override { return repo_->PublishRoots(); }
  Result<PruneReport> Prune(const RetentionPolicy& policy, const PruneOptions& options) override {
    return repo_->Prune(policy, options);
  }
  Status Prepare(std::span<const ChunkId> ids) override { return repo_->store().Locate(ids); }
  std::vector<std::pair<std::string, Status>> HoldSnapshot(const std::string& snapshot,
                                                           uint32_t seconds) override {
    // This agent's own backups: the repository lock, held shared, already
    // keeps its prune away.
    if (!repo_->read_only()) return {};
    return repo_->store().HoldSnapshot(snapshot, seconds);
  }
  void CheckEveryReplica(bool on) override { repo_->store().CheckEveryReplica(on); }
  Result<std::vector<DamagedReplica>> DropDamagedReplicas() override {
    ST_ASSIGN_OR_RETURN(std::vector<replication::DamagedReplica> found,
                        repo_->store().DropDamagedReplicas());
    std::vector<DamagedReplica> out;
    for (replication::DamagedReplica& d : found) {
      out.push_back({d.id, std::move(d.peer), d.damaged, std::move(d.error)});
    }
    return out;
  }
  std::vector<Warning> Warnings() const override {
    replication::PeerSetStats s = repo_->store().stats();
    std::vector<Warning> out = policy_;
    for (const std::string& down : s.peers_down) {
      out.push_back(Warning::PeerSkipped(down));
    }
    if (s.under_replicated > 0) {
      out.push_back(Warning::Count(Warning::Kind::kUnderReplicated, s.under_replicated));
    }
    if (s.bad_replicas > 0) {
      out.push_back(Warning::Count(Warning::Kind::kBadReplicas, s.bad_replicas));
    }
    return out;
  }
  Result<RepairReport> Repair() override {
    if (repo_->read_only()) {
      return FailedPrecondition("the backups of " + repo_->host() +
                                " are read only here: run repair on " + repo_->host());
    }
    ST_ASSIGN_OR_RETURN(replication::PeerSet::RepairReport r, repo_->store().Repair());
    RepairReport out;
    out.chunks = r.chunks;
    out.copied = r.copied;
    out.dropped = r.dropped;
    out.lost = r.lost;
    out.learned = r.learned;
    return out;
  }

 private:
  std::unique_ptr<transport::Identity> identity_;  // the repository's sessions use it
  std::unique_ptr<replication::PeerRepository> repo_;
  std::vector<Warning> policy_;  // PolicyWarnings at open
};

}  // namespace

Result<PeerSetup> LoadPeerSetup(const AgentPeers& a, const OpenOptions& o) {
  PeerSetup setup;
  const transport::Identity* identity = a.identity;
  if (identity == nullptr) {
    const std::string key_path = a.config.state_dir + "/identity.key";
    Result<transport::Identity> loaded = transport::Identity::Load(key_path);
    if (!loaded.ok()) {
      return loaded.status().WithContext(
          "this agent has no identity key yet: start sparetimed once (it creates " + key_path +
          " and publishes it in the directory)");
    }
    setup.owned = std::make_unique<transport::Identity>(std::move(*loaded));
    identity = setup.owned.get();
  }
  std::function<void(const std::string&)> report;
  if (o.on_warning) {
    report = [cb = o.on_warning](const std::string& line) {
      cb(Warning::About(Warning::Kind::kPeerEvent, line));
    };
  }
  const auto now = o.now == std::chrono::system_clock::time_point{} ? SystemClock().WallNow()
                                                                    : o.now;
  setup.options = AgentPeerOptions(a.config, a.view, identity, a.host, now, std::move(report));
  return setup;
}

std::string WarningText(const Warning& w) {
  switch (w.kind) {
    case Warning::Kind::kPeerSkipped:
      return "peer skipped for this run: " + w.peer;
    case Warning::Kind::kUnderReplicated:
      return std::to_string(w.count) +
             " chunk(s) are on fewer peers than the policy's replica count; run "
             "`sparetime repair` when the peers are back";
    case Warning::Kind::kBadReplicas:
      return std::to_string(w.count) +
             " missing or damaged replica(s) were skipped for another copy; run "
             "`sparetime repair` to replace them";
    case Warning::Kind::kNoInputWatcher:
      return w.detail + "; user input is noticed only at the periodic idle checks";
    case Warning::Kind::kPeerEvent:
    case Warning::Kind::kPolicyDiffers:
      break;
  }
  return w.detail;
}

bool NeedsRepair(const std::vector<Warning>& warnings) {
  for (const Warning& w : warnings) {
    if (w.kind == Warning::Kind::kPeerSkipped || w.kind == Warning::Kind::kUnderReplicated ||
        w.kind == Warning::Kind::kBadReplicas) {
      return true;
    }
  }
  return false;
}

std::string RepairText(const RepairReport& r) {
  if (r.local) {
    return std::to_string(r.chunks) + " chunks checked: " + std::to_string(r.copied + r.lost) +
           " damaged, " + std::to_string(r.copied) + " stored again from the source device, " +
           std::to_string(r.lost) + " lost";
  }
  return std::to_string(r.chunks) + " chunks checked: " +
         (r.learned ? std::to_string(r.learned) + " holders learned (a caretaker's copies), "
                    : std::string()) +
         std::to_string(r.copied) +
         " new replicas made, " + std::to_string(r.dropped) + " stale records dropped, " +
         std::to_string(r.lost) + " chunks lost (no live peer has a good copy)";
}

Status RepairVerdict(const RepairReport& r) {
  if (r.lost == 0) return Status::Ok();
  if (r.local) {
    std::string where;
    for (const LostRange& l : r.lost_at) {
      if (where.size() > 300) {
        where += ", ...";
        break;
      }
      where += (where.empty() ? "" : ", ") + l.snapshot + " at " + std::to_string(l.offset);
    }
    return Corruption(std::to_string(r.lost) + " damaged chunk(s) could not be stored again (" +
                      where + "); run `sparetime repair --source DEVICE` with the device they "
                      "were backed up from while it still holds that data, or back it up "
                      "again; `restore --keep-going` restores the rest of those snapshots");
  }
  return Corruption(std::to_string(r.lost) +
                    " chunk(s) have no good copy on any live peer; they come back when a peer "
                    "that held them does (run `sparetime repair` again then)");
}

Result<std::unique_ptr<Backups>> Open(const OpenOptions& o, const SecretBuffer& passphrase) {
  if (const auto* local = std::get_if<LocalRepository>(&o.where)) {
    ST_ASSIGN_OR_RETURN(std::unique_ptr<Repository> repo,
                        Repository::Open(local->dir, passphrase, o.key_cache));
    return std::unique_ptr<Backups>(std::make_unique<LocalBackups>(local->dir, std::move(repo)));
  }
  const AgentPeers& peers = std::get<AgentPeers>(o.where);
  ST_ASSIGN_OR_RETURN(PeerSetup setup, LoadPeerSetup(peers, o));
  ST_ASSIGN_OR_RETURN(
      std::unique_ptr<replication::PeerRepository> repo,
      replication::PeerRepository::Open(std::move(setup.options), passphrase, o.key_cache));
  std::vector<Warning> policy;
  if (peers.host.empty()) {
    policy = PolicyWarnings(directory::ResolvePolicy(peers.view, peers.config.name), repo->config());
  }
  return std::unique_ptr<Backups>(
      std::make_unique<PeerBackups>(std::move(setup.owned), std::move(repo), std::move(policy)));
}

RepositoryConfig InitConfig(const InitSettings& settings,
                            const directory::EffectivePolicy* policy) {
  RepositoryConfig config;
  config.chunk_size = settings.chunk_size.value_or(policy ? policy->chunk_size : 0);
  config.zstd_level = settings.zstd_level.value_or(
      policy ? policy->compression_level : CodecOptions::kDefaultZstdLevel);
  config.id_hash = settings.id_hash.value_or(AutoIdHash());
  return config;
}

std::vector<Warning> PolicyWarnings(const directory::EffectivePolicy& policy,
                                    const RepositoryConfig& config) {
  if (policy.chunk_size == 0 || policy.chunk_size == config.chunk_size) return {};
  return {Warning::About(
      Warning::Kind::kPolicyDiffers,
      "the policy asks for chunk size " + std::to_string(policy.chunk_size) +
          " (sparetimeChunkSize) but these backups keep " + std::to_string(config.chunk_size) +
          ": a new chunk size would share no chunk with what is stored. To use it, move the "
          "backups aside (<state_dir>/backup) and run `sparetime init` for new ones, or set "
          "sparetimeChunkSize back to " + std::to_string(config.chunk_size))};
}

Status Init(const OpenOptions& o, const SecretBuffer& passphrase, const InitSettings& settings,
            KdfLimits limits) {
  if (const auto* local = std::get_if<LocalRepository>(&o.where)) {
    return Repository::Init(local->dir, passphrase, InitConfig(settings, nullptr), limits,
                            o.key_cache);
  }
  const AgentPeers& peers = std::get<AgentPeers>(o.where);
  if (!peers.host.empty()) {
    return InvalidArgument("--host reads another agent's backups; init creates this agent's own");
  }
  const directory::EffectivePolicy policy = directory::ResolvePolicy(peers.view, peers.config.name);
  const RepositoryConfig config = InitConfig(settings, &policy);
  ST_ASSIGN_OR_RETURN(PeerSetup setup, LoadPeerSetup(peers, o));
  return replication::PeerRepository::Init(std::move(setup.options), passphrase, config, limits,
                                           o.key_cache);
}

}  // namespace sparetime::ops
