// ScheduledJobs implementation: due-time bookkeeping (jobs.json) and the
// three kinds of work, each on the backups kept by the peers.
#include "scheduled_jobs.h"

#include <nlohmann/json.hpp>

#include "sparetime/base/fd.h"
#include "sparetime/directory/policy.h"
#include "sparetime/imaging/device.h"
#include "sparetime/imaging/imager.h"
#include "sparetime/imaging/keys.h"
#include "sparetime/imaging/manifest.h"
#include "sparetime/imaging/prune.h"
#include "sparetime/imaging/retention.h"
#include "sparetime/imaging/restorer.h"
#include "sparetime/replication/agent_peers.h"
#include "sparetime/replication/peer_repository.h"

namespace sparetime::daemon {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kBackupPrefix[] = "backup ";

std::string JobsPath(const config::AgentConfig& c) { return c.state_dir + "/jobs.json"; }

}  // namespace

ScheduledJobs::ScheduledJobs(const config::AgentConfig& config,
                             const transport::Identity& identity,
                             scheduler::JobController& controller, const Clock& clock,
                             std::function<void(const std::string&)> log)
    : config_(config), identity_(identity), controller_(controller), clock_(clock),
      log_(std::move(log)) {
  LoadState();
}

void ScheduledJobs::LoadState() {
  Result<std::string> text = ReadFileToString(JobsPath(config_));
  if (!text.ok()) {
    if (text.status().code() != ErrorCode::kNotFound) {
      log_("jobs: " + text.status().message() + "; every job counts as never run");
    }
    return;
  }
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("last_success") || !j["last_success"].is_object()) {
    log_("jobs: " + JobsPath(config_) + " is not a jobs file; every job counts as never run");
    return;
  }
  for (const auto& [name, t] : j["last_success"].items()) {
    if (t.is_number_integer()) last_success_[name] = t.get<int64_t>();
  }
}

void ScheduledJobs::SaveState() {
  nlohmann::json j = {{"last_success", last_success_}};
  if (Status s = WriteFileAtomic(JobsPath(config_), j.dump(2) + "\n", 0600); !s.ok()) {
    log_("jobs: cannot record the last run (" + s.message() +
         "); the job may run again after a restart");
  }
}

std::string ScheduledJobs::Idle() const {
  std::lock_guard l(mu_);
  return idle_reason_;
}

void ScheduledJobs::Plan(const directory::DirectoryView& view) {
  std::vector<std::string> devices;
  bool repair_wanted = false;
  bool backed_up = false;
  {
    std::lock_guard l(mu_);
    view_ = view;
    std::string reason;
    if (config_.passphrase_file.empty()) {
      reason = "no [backup] passphrase_file in " + config_.path +
               ": sparetimed runs no backups of its own";
    } else {
      devices = directory::ResolvePolicy(view, config_.name).devices;
      if (devices.empty()) {
        reason = "the policy lists no device (sparetimeDevice) for " + config_.name;
      }
    }
    if (reason != idle_reason_ && !reason.empty()) log_("jobs: " + reason);
    idle_reason_ = reason;
    repair_wanted = repair_wanted_;
    for (const auto& [name, t] : last_success_) {
      backed_up = backed_up || name.starts_with(kBackupPrefix);
    }
  }
  for (const std::string& device : devices) {
    SubmitIfDue(kBackupPrefix + device, config_.backup_interval,
                [this, device](PauseGate& gate, const scheduler::JobProgressFn& progress) {
                  return RunBackup(device, gate, progress);
                });
  }
  if (devices.empty() || !backed_up) return;
  SubmitIfDue("prune", config_.backup_interval,
              [this](PauseGate& gate, const scheduler::JobProgressFn&) { return RunPrune(gate); });
  SubmitIfDue("repair", repair_wanted ? milliseconds(0) : config_.backup_interval,
              [this](PauseGate& gate, const scheduler::JobProgressFn&) { return RunRepair(gate); });
  SubmitIfDue("verify", config_.verify_interval,
              [this](PauseGate& gate, const scheduler::JobProgressFn& progress) {
                return RunVerify(gate, progress);
              });
}

void ScheduledJobs::SubmitIfDue(const std::string& name, milliseconds interval, Job job) {
  {
    std::lock_guard l(mu_);
    if (active_.contains(name)) return;
    const int64_t now = ToUnixSeconds(clock_.WallNow());
    auto failed = last_failure_.find(name);
    int64_t retry = duration_cast<seconds>(std::min<milliseconds>(kRetryAfter, interval)).count();
    if (failed != last_failure_.end() && now - failed->second < retry) return;
    auto done = last_success_.find(name);
    if (done != last_success_.end() &&
        now - done->second < duration_cast<seconds>(interval).count()) {
      return;
    }
    active_.insert(name);
  }
  controller_.Submit(name, [this, name, job = std::move(job)](
                               PauseGate& gate, const scheduler::JobProgressFn& progress) {
    Status result = job(gate, progress);
    Finished(name, result);
    return result;
  });
}

void ScheduledJobs::Finished(const std::string& name, const Status& result) {
  std::optional<directory::DirectoryView> view;
  {
    std::lock_guard l(mu_);
    active_.erase(name);
    const int64_t now = ToUnixSeconds(clock_.WallNow());
    if (result.ok()) {
      last_success_[name] = now;
      last_failure_.erase(name);
      if (name == "repair") repair_wanted_ = false;
      SaveState();
    } else if (result.code() != ErrorCode::kCancelled) {
      last_failure_[name] = now;
      log_(name + " failed: " + result.message());
    }
    view = view_;
  }
  // What this job's result makes due (a repair after a backup) is queued now.
  if (view && result.code() != ErrorCode::kCancelled) Plan(*view);
}

namespace {

// The agent's backups on its peers, as the CLI opens them with --config.
Result<std::unique_ptr<replication::PeerRepository>> OpenBackups(
    const config::AgentConfig& config, const directory::DirectoryView& view,
    const transport::Identity& identity, const Clock& clock, const KeyCache& key_cache,
    std::function<void(const std::string&)> report) {
  ST_ASSIGN_OR_RETURN(SecretBuffer passphrase, ReadPassphrase(config.passphrase_file));
  return replication::PeerRepository::Open(
      replication::AgentPeerOptions(config, view, &identity, "", clock.WallNow(),
                                    std::move(report)),
      passphrase, &key_cache);
}

// True when the run left work for a repair.
bool NeedsRepair(const replication::PeerSetStats& s) {
  return s.under_replicated > 0 || s.bad_replicas > 0 || !s.peers_down.empty();
}

}  // namespace

directory::DirectoryView ScheduledJobs::View() const {
  std::lock_guard l(mu_);
  return *view_;
}

Status ScheduledJobs::RunBackup(const std::string& device, PauseGate& gate,
                                const scheduler::JobProgressFn& progress) {
  directory::DirectoryView view = View();
  auto warn = [this, device](const std::string& line) { log_("backup " + device + ": " + line); };
  ST_ASSIGN_OR_RETURN(auto repo, OpenBackups(config_, view, identity_, clock_, *key_cache_, warn));
  ST_ASSIGN_OR_RETURN(auto dev, OpenBlockDevice(device, {}));
  BackupOptions options;
  options.chunk_size = repo->config().chunk_size;
  options.label = "scheduled";
  options.pause = &gate;
  options.progress = [&progress](const ProgressInfo& p) { progress(p.bytes_done, p.bytes_total); };
  Catalog& catalog = repo->catalog();
  BackupEnv env{repo->codec(), repo->store(), catalog, catalog};
  Result<Snapshot> snap = Backup(*dev, env, options);
  if (NeedsRepair(repo->store().stats())) {
    std::lock_guard l(mu_);
    repair_wanted_ = true;
  }
  ST_RETURN_IF_ERROR(snap.status());
  ST_RETURN_IF_ERROR(repo->PublishRoots().WithContext(
      "snapshot " + snap->id + " is stored but no peer took the new snapshot list"));
  log_("backup " + device + ": snapshot " + snap->id + ", " +
       std::to_string(snap->stats.new_chunks) + " new chunks (" +
       std::to_string(snap->stats.stored_bytes) + " bytes sent), " +
       std::to_string(snap->stats.chunks - snap->stats.new_chunks - snap->stats.holes) +
       " already on the peers");
  return Status::Ok();
}

Status ScheduledJobs::RunVerify(PauseGate& gate, const scheduler::JobProgressFn& progress) {
  directory::DirectoryView view = View();
  auto warn = [this](const std::string& line) { log_("verify: " + line); };
  ST_ASSIGN_OR_RETURN(auto repo, OpenBackups(config_, view, identity_, clock_, *key_cache_, warn));
  ST_ASSIGN_OR_RETURN(std::vector<Snapshot> snapshots, repo->catalog().ListSnapshots());
  uint64_t total = 0, done = 0, bad = 0;
  for (const Snapshot& s : snapshots) total += s.size;
  VerifyCache cache;
  std::string first_bad;
  for (const Snapshot& s : snapshots) {
    Result<Manifest> manifest = LoadManifest(s.manifest_root, repo->codec(), repo->store());
    if (!manifest.ok()) {
      ++bad;
      first_bad = "snapshot " + s.id + ": manifest: " + manifest.status().message();
      continue;
    }
    ST_RETURN_IF_ERROR(repo->store().Locate(manifest->chunks));
    RestoreOptions options;
    options.pause = &gate;
    options.progress = [&](const ProgressInfo& p) { progress(done + p.bytes_done, total); };
    ST_ASSIGN_OR_RETURN(VerifyReport report,
                        Verify(*manifest, repo->codec(), repo->store(), options, &cache));
    done += s.size;
    bad += report.bad.size();
    if (!report.bad.empty() && first_bad.empty()) {
      first_bad = "snapshot " + s.id + ": " + report.bad.front().error.message();
    }
  }
  if (NeedsRepair(repo->store().stats())) {
    std::lock_guard l(mu_);
    repair_wanted_ = true;
  }
  if (bad > 0) {
    return Corruption(std::to_string(bad) + " chunk(s) have no good copy on any live peer (" +
                      first_bad + "); run `sparetime verify` for the full list, and "
                      "`sparetime repair` when the peers that held them are back");
  }
  log_("verify: " + std::to_string(snapshots.size()) + " snapshot(s), every chunk readable");
  return Status::Ok();
}

Status ScheduledJobs::RunRepair(PauseGate& gate) {
  directory::DirectoryView view = View();
  // Repair copies sealed blobs between peers: it starts only while idle
  // (the gate) and is bounded by the chunk count; it is not paused midway.
  ST_RETURN_IF_ERROR(gate.WaitWhilePaused(0));
  auto warn = [this](const std::string& line) { log_("repair: " + line); };
  ST_ASSIGN_OR_RETURN(auto repo, OpenBackups(config_, view, identity_, clock_, *key_cache_, warn));
  ST_ASSIGN_OR_RETURN(replication::PeerSet::RepairReport r, repo->store().Repair());
  log_("repair: " + std::to_string(r.chunks) + " chunks checked, " + std::to_string(r.copied) +
       " new replicas, " + std::to_string(r.dropped) + " stale records dropped, " +
       std::to_string(r.lost) + " lost");
  if (r.lost > 0) {
    return Corruption(std::to_string(r.lost) + " chunk(s) have no good copy on any live peer; "
                      "they come back when a peer that held them does");
  }
  return Status::Ok();
}

Status ScheduledJobs::RunPrune(PauseGate& gate) {
  directory::DirectoryView view = View();
  // Prune reads manifests and tells peers what to release: small I/O, so it
  // waits for the gate once and then runs to the end.
  ST_RETURN_IF_ERROR(gate.WaitWhilePaused(0));
  directory::EffectivePolicy policy = directory::ResolvePolicy(view, config_.name);
  RetentionPolicy keep{.keep_last = policy.keep_last,
                       .keep_daily = policy.keep_daily,
                       .keep_weekly = policy.keep_weekly,
                       .keep_monthly = policy.keep_monthly};
  auto warn = [this](const std::string& line) { log_("prune: " + line); };
  ST_ASSIGN_OR_RETURN(auto repo, OpenBackups(config_, view, identity_, clock_, *key_cache_, warn));
  ST_ASSIGN_OR_RETURN(PruneReport r, repo->Prune(keep, /*dry_run=*/false));
  log_("prune (" + keep.ToString() + "): " + std::to_string(r.snapshots_forgotten) +
       " snapshot(s) forgotten, " + std::to_string(r.chunks_removed) + " chunk(s) released (" +
       std::to_string(r.bytes_removed) + " bytes)");
  for (const std::string& note : r.notes) log_("prune: " + note);
  return Status::Ok();
}

}  // namespace sparetime::daemon
