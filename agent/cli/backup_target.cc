// The two BackupTargets: LocalTarget over a Repository directory, PeerTarget
// over a PeerRepository built from sparetime.conf and the directory.
#include "backup_target.h"


#include <cstdio>

#include "agent_context.h"
#include "exit_codes.h"
#include "sparetime/base/clock.h"
#include "sparetime/imaging/key_cache.h"
#include "sparetime/replication/agent_peers.h"
#include "sparetime/replication/peer_repository.h"
#include "sparetime/transport/identity.h"

namespace sparetime::cli {
namespace {

class LocalTarget final : public BackupTarget {
 public:
  explicit LocalTarget(std::unique_ptr<Repository> repo) : repo_(std::move(repo)) {}
  const RepositoryConfig& config() const override { return repo_->config(); }
  const Codec& codec() const override { return repo_->codec(); }
  ChunkSink& sink() override { return repo_->store(); }
  ChunkSource& source() override { return repo_->store(); }
  Catalog& catalog() override { return repo_->catalog(); }
  Result<PruneReport> Prune(const RetentionPolicy& policy, const PruneOptions& options) override {
    return repo_->Prune(policy, options);
  }

 private:
  std::unique_ptr<Repository> repo_;
};

class PeerTarget final : public BackupTarget {
 public:
  PeerTarget(std::unique_ptr<transport::Identity> identity,
             std::unique_ptr<replication::PeerRepository> repo)
      : identity_(std::move(identity)), repo_(std::move(repo)) {}
  const RepositoryConfig& config() const override { return repo_->config(); }
  const Codec& codec() const override { return repo_->codec(); }
  ChunkSink& sink() override { return repo_->store(); }
  ChunkSource& source() override { return repo_->store(); }
  Catalog& catalog() override { return repo_->catalog(); }
  Status Commit() override { return repo_->PublishRoots(); }
  Result<PruneReport> Prune(const RetentionPolicy& policy, const PruneOptions& options) override {
    return repo_->Prune(policy, options);
  }
  Status Prepare(std::span<const ChunkId> ids) override { return repo_->store().Locate(ids); }
  std::vector<std::string> Warnings() const override {
    replication::PeerSetStats s = repo_->store().stats();
    std::vector<std::string> out;
    for (const std::string& down : s.peers_down) out.push_back("peer skipped for this run: " + down);
    if (s.under_replicated > 0) {
      out.push_back(std::to_string(s.under_replicated) +
                    " chunk(s) are on fewer peers than the policy's replica count; run "
                    "`sparetime repair` when the peers are back");
    }
    if (s.bad_replicas > 0) {
      out.push_back(std::to_string(s.bad_replicas) +
                    " missing or damaged replica(s) were skipped for another copy; run "
                    "`sparetime repair` to replace them");
    }
    return out;
  }
  Result<std::string> Repair() override {
    ST_ASSIGN_OR_RETURN(replication::PeerSet::RepairReport r, repo_->store().Repair());
    return std::to_string(r.chunks) + " chunks checked: " + std::to_string(r.copied) +
           " new replicas made, " + std::to_string(r.dropped) + " stale records dropped, " +
           std::to_string(r.lost) + " chunks lost (no live peer has a good copy)";
  }

 private:
  std::unique_ptr<transport::Identity> identity_;  // the repository's sessions use it
  std::unique_ptr<replication::PeerRepository> repo_;
};

Status NoTarget() {
  return InvalidArgument("no repository given: pass --repo DIR (or set SPARETIME_REPO) for a "
                         "local repository, or --config FILE (or SPARETIME_CONFIG) for this "
                         "agent's backups on its peers");
}

// Without --repo the agent's config names the peers: --config, else the
// installed default when it exists.
bool UsePeers(const GlobalOptions& g) { return g.repo.empty() && UsesAgentConfig(g); }

// The PeerRepository options for this agent: identity, live peers from the
// directory, replicas and bandwidth from the policy, timeouts from the config.
struct PeerSetup {
  std::unique_ptr<transport::Identity> identity;
  replication::PeerRepositoryOptions options;
};

Result<PeerSetup> LoadPeerSetup(const GlobalOptions& g, int* exit_code) {
  ST_ASSIGN_OR_RETURN(AgentContext ctx, LoadAgentContext(g, exit_code));
  const std::string key_path = ctx.config.state_dir + "/identity.key";
  Result<transport::Identity> identity = transport::Identity::Load(key_path);
  if (!identity.ok()) {
    Status st = identity.status().WithContext(
        "this agent has no identity key yet: start sparetimed once (it creates " + key_path +
        " and publishes it in the directory)");
    *exit_code = Fail(st, Stage::kOpenRepository);
    return st;
  }
  PeerSetup setup;
  setup.identity = std::make_unique<transport::Identity>(std::move(*identity));
  std::function<void(const std::string&)> report;
  if (!g.quiet) {
    report = [](const std::string& line) {
      std::fprintf(stderr, "sparetime: warning: %s\n", line.c_str());
    };
  }
  setup.options = replication::AgentPeerOptions(ctx.config, ctx.state.view, setup.identity.get(),
                                                g.host, SystemClock().WallNow(), std::move(report));
  return setup;
}

// The kernel keyring cache, unless --key-cache 0.
std::unique_ptr<KeyCache> KeyCacheFor(const GlobalOptions& g) {
  if (g.key_cache_seconds <= 0) return nullptr;
  return KernelKeyCache(std::chrono::seconds(g.key_cache_seconds));
}

}  // namespace

Result<std::unique_ptr<BackupTarget>> OpenTarget(const GlobalOptions& g, int* exit_code) {
  if (g.repo.empty() && !UsePeers(g)) {
    *exit_code = Fail(NoTarget(), Stage::kOpenRepository);
    return NoTarget();
  }
  Result<SecretBuffer> passphrase = ReadPassphrase(g.passphrase_file);
  if (!passphrase.ok()) {
    *exit_code = Fail(passphrase.status(), Stage::kOpenRepository);
    return passphrase.status();
  }
  if (!UsePeers(g)) {
    if (!g.host.empty()) {
      Status st = InvalidArgument("--host reads another agent's backups from the peers: use "
                                  "--config, not --repo");
      *exit_code = Fail(st, Stage::kOpenRepository);
      return st;
    }
    Result<std::unique_ptr<Repository>> repo =
        Repository::Open(g.repo, *passphrase, KeyCacheFor(g).get());
    if (!repo.ok()) {
      *exit_code = Fail(repo.status(), Stage::kOpenRepository);
      return repo.status();
    }
    return std::unique_ptr<BackupTarget>(std::make_unique<LocalTarget>(std::move(*repo)));
  }
  ST_ASSIGN_OR_RETURN(PeerSetup setup, LoadPeerSetup(g, exit_code));
  Result<std::unique_ptr<replication::PeerRepository>> repo =
      replication::PeerRepository::Open(std::move(setup.options), *passphrase,
                                        KeyCacheFor(g).get());
  if (!repo.ok()) {
    *exit_code = Fail(repo.status(), Stage::kOpenRepository);
    return repo.status();
  }
  return std::unique_ptr<BackupTarget>(
      std::make_unique<PeerTarget>(std::move(setup.identity), std::move(*repo)));
}

Status InitTarget(const GlobalOptions& g, const RepositoryConfig& config, KdfLimits limits,
                  int* exit_code) {
  Status st = g.repo.empty() && !UsePeers(g) ? NoTarget() : Status::Ok();
  Result<SecretBuffer> passphrase = ReadPassphrase(g.passphrase_file);
  if (st.ok() && !passphrase.ok()) st = passphrase.status();
  if (st.ok() && !UsePeers(g)) {
    st = Repository::Init(g.repo, *passphrase, config, limits, KeyCacheFor(g).get());
  }
  if (st.ok() && UsePeers(g)) {
    ST_ASSIGN_OR_RETURN(PeerSetup setup, LoadPeerSetup(g, exit_code));
    st = replication::PeerRepository::Init(std::move(setup.options), *passphrase, config, limits,
                                           KeyCacheFor(g).get());
  }
  if (!st.ok()) *exit_code = Fail(st, Stage::kWork);
  return st;
}

void PrintWarnings(const GlobalOptions& g, const BackupTarget& target) {
  if (g.quiet) return;
  for (const std::string& w : target.Warnings()) {
    std::fprintf(stderr, "sparetime: warning: %s\n", w.c_str());
  }
}

}  // namespace sparetime::cli
