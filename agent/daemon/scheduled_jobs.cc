// ScheduledJobs implementation: due-time bookkeeping (jobs.json); the work
// of each kind is the ops use case the CLI runs too (agent/ops), on the
// backups kept by the peers, logged here.
#include "scheduled_jobs.h"

#include <cstdio>

#include <nlohmann/json.hpp>

#include "sparetime/base/fd.h"
#include "sparetime/directory/policy.h"
#include "sparetime/imaging/keys.h"
#include "sparetime/ops/backup.h"
#include "sparetime/ops/backups.h"
#include "sparetime/ops/directory_policy.h"
#include "sparetime/ops/caretaker.h"
#include "sparetime/ops/maintenance.h"
#include "sparetime/ops/peer_gc.h"
#include "sparetime/ops/peer_scrub.h"

namespace sparetime::daemon {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kBackupPrefix[] = "backup ";

std::string JobsPath(const config::AgentConfig& c) { return c.state_dir + "/jobs.json"; }

// JOB= always; DEVICE= for a backup.
LogFields JobFields(const std::string& name) {
  LogFields f;
  f.job = name;
  if (name.starts_with(kBackupPrefix)) f.device = name.substr(sizeof(kBackupPrefix) - 1);
  return f;
}

}  // namespace

ScheduledJobs::ScheduledJobs(const config::AgentConfig& config,
                             const transport::Identity& identity,
                             scheduler::JobController& controller, const Clock& clock,
                             LogFn log, DeviceOpener open_device, peerstore::PeerStore* held)
    : config_(config), identity_(identity), controller_(controller), clock_(clock),
      log_(std::move(log)), open_device_(std::move(open_device)), held_(held) {
  LoadState();
}

void ScheduledJobs::LoadState() {
  Result<std::string> text = ReadFileToString(JobsPath(config_));
  if (!text.ok()) {
    if (text.status().code() != ErrorCode::kNotFound) {
      Log("jobs: " + text.status().message() + "; every job counts as never run");
    }
    return;
  }
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("last_success") || !j["last_success"].is_object()) {
    Log("jobs: " + JobsPath(config_) + " is not a jobs file; every job counts as never run");
    return;
  }
  MutexLock l(mu_);
  for (const auto& [name, t] : j["last_success"].items()) {
    if (t.is_number_integer()) last_success_[name] = t.get<int64_t>();
  }
  if (j.contains("first_planned") && j["first_planned"].is_object()) {
    for (const auto& [name, t] : j["first_planned"].items()) {
      if (t.is_number_integer()) first_planned_[name] = t.get<int64_t>();
    }
  }
  if (j.contains("forced") && j["forced"].is_array()) {
    for (const auto& name : j["forced"]) {
      if (name.is_string()) forced_success_.insert(name.get<std::string>());
    }
  }
  if (j.contains("last_error") && j["last_error"].is_string() &&
      j.contains("last_error_time") && j["last_error_time"].is_number_integer()) {
    last_error_ = j["last_error"].get<std::string>();
    last_error_time_ = j["last_error_time"].get<int64_t>();
  }
}

void ScheduledJobs::SaveState() {
  nlohmann::json j = {{"last_success", last_success_},
                      {"first_planned", first_planned_},
                      {"forced", forced_success_},
                      {"last_error", last_error_},
                      {"last_error_time", last_error_time_}};
  if (Status s = WriteFileAtomic(JobsPath(config_),
                                 j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n",
                                 0600);
      !s.ok()) {
    Log("jobs: cannot record the last run (" + s.message() +
            "); the job may run again after a restart",
        Priority::kWarning);
  }
}

std::string ScheduledJobs::Idle() const {
  MutexLock l(mu_);
  return idle_reason_;
}

ScheduledJobs::History ScheduledJobs::GetHistory() const {
  MutexLock l(mu_);
  History h;
  if (auto it = last_success_.find("verify"); it != last_success_.end()) h.last_verify = it->second;
  h.last_error = last_error_;
  h.last_error_time = last_error_time_;
  for (const std::string& name : forced_success_) {
    if (name.starts_with(kBackupPrefix)) h.forced.insert(name.substr(sizeof(kBackupPrefix) - 1));
  }
  return h;
}

void ScheduledJobs::set_notify(NotifyFn notify) {
  MutexLock l(mu_);
  notify_ = std::move(notify);
}

bool ScheduledJobs::Overdue(const std::string& device, int64_t max_age) {
  const std::string name = kBackupPrefix + device;
  const int64_t now = ToUnixSeconds(clock_.WallNow());
  std::string reason;
  NotifyFn notify;
  {
    MutexLock l(mu_);
    auto planned = first_planned_.try_emplace(name, now);
    if (planned.second) SaveState();
    auto done = last_success_.find(name);
    const int64_t since = done != last_success_.end() ? done->second : planned.first->second;
    if (now - since <= max_age) return false;
    if (!overdue_said_.insert(name).second) return true;
    reason = "overdue: " +
             (done != last_success_.end()
                  ? "last successful backup " + std::to_string((now - since) / 3600) + " h ago"
                  : "never backed up, planned " + std::to_string((now - since) / 3600) + " h ago") +
             ", max age " + std::to_string(max_age / 3600) + " h (sparetimeMaxAge)";
    notify = notify_;
  }
  Log(name + " is " + reason +
          ": it runs now even though the box is not idle, at idle I/O priority, nice 19, "
          "within the bandwidth limit",
      Priority::kWarning, JobFields(name));
  if (notify) notify(device, reason);
  return true;
}

void ScheduledJobs::Plan(const directory::DirectoryView& view) {
  std::vector<std::string> devices;
  int64_t max_age = 0;
  bool repair_wanted = false;
  bool backed_up = false;
  {
    MutexLock l(mu_);
    view_ = view;
    std::string reason;
    if (config_.passphrase_file.empty()) {
      reason = "no [backup] passphrase_file in " + config_.path +
               ": sparetimed runs no backups of its own";
    } else {
      directory::EffectivePolicy policy = directory::ResolvePolicy(view, config_.name);
      devices = policy.devices;
      max_age = policy.max_age_seconds;
      if (devices.empty()) {
        reason = "the policy lists no device (sparetimeDevice) for " + config_.name;
      }
    }
    if (reason != idle_reason_ && !reason.empty()) Log("jobs: " + reason);
    idle_reason_ = reason;
    repair_wanted = repair_wanted_;
    for (const auto& [name, t] : last_success_) {
      backed_up = backed_up || name.starts_with(kBackupPrefix);
    }
  }
  if (held_ != nullptr && !view.agents.empty()) {
    // Departed owners are marked from this read; one purged by the CLI is
    // forgotten (its quota freed) now.
    if (Status s = held_->NoteDirectory(ops::AgentNames(view)); !s.ok()) {
      Log("peer-gc: cannot note who left the directory: " + s.message(), Priority::kWarning);
    }
  }
  if (held_ != nullptr) {
    SubmitIfDue("peer-gc", kHeldGcInterval,
                [this](PauseGate& gate, const scheduler::JobProgressFn&) { return RunHeldGc(gate); });
  }
  PlanPeerJobs(view);
  for (const std::string& device : devices) {
    const bool overdue = Overdue(device, max_age);
    SubmitIfDue(kBackupPrefix + device, config_.backup_interval,
                [this, device](PauseGate& gate, const scheduler::JobProgressFn& progress) {
                  return RunBackup(device, gate, progress);
                },
                overdue);
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

void ScheduledJobs::SubmitIfDue(const std::string& name, milliseconds interval, Job job,
                                bool forced) {
  {
    MutexLock l(mu_);
    if (active_.contains(name)) {
      // Queued while waiting for an idle box, and overdue now: let it run.
      auto id = queued_id_.find(name);
      if (forced && id != queued_id_.end() && !running_forced_[name] &&
          controller_.SetRunWhenBusy(id->second)) {
        running_forced_[name] = true;
      }
      return;
    }
    const int64_t now = ToUnixSeconds(clock_.WallNow());
    auto failed = last_failure_.find(name);
    int64_t retry = duration_cast<seconds>(std::min<milliseconds>(kRetryAfter, interval)).count();
    if (failed != last_failure_.end() && now - failed->second < retry) return;
    auto done = last_success_.find(name);
    // An overdue backup is due whatever [backup] interval says (a max age
    // shorter than the interval).
    if (!forced && done != last_success_.end() &&
        now - done->second < duration_cast<seconds>(interval).count()) {
      return;
    }
    active_.insert(name);
    running_forced_[name] = forced;
  }
  uint64_t id = controller_.Submit(name, [this, name, job = std::move(job)](
                               PauseGate& gate, const scheduler::JobProgressFn& progress) {
    const LogFields fields = JobFields(name);
    bool on_busy_box = false;
    {
      MutexLock l(mu_);
      on_busy_box = running_forced_[name];
    }
    Log(name + " started" + (on_busy_box ? " (overdue: runs even if the box is busy)" : ""),
        Priority::kInfo, fields);
    const auto start = std::chrono::steady_clock::now();
    Status result = job(gate, progress);
    const double took =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    char secs[32];
    std::snprintf(secs, sizeof(secs), "%.1f", took);
    if (result.ok()) {
      Log(name + " finished in " + secs + " s", Priority::kInfo, fields);
    } else if (result.code() == ErrorCode::kCancelled) {
      Log(name + " stopped after " + secs + " s (" + result.message() + ")", Priority::kNotice,
          fields);
    } else {
      Log(name + " failed after " + secs + " s: " + result.message(), Priority::kErr, fields);
    }
    Finished(name, result);
    return result;
  }, forced);
  MutexLock l(mu_);
  if (active_.contains(name)) queued_id_[name] = id;
}

void ScheduledJobs::Finished(const std::string& name, const Status& result) {
  std::optional<directory::DirectoryView> view;
  NotifyFn notify;
  {
    MutexLock l(mu_);
    active_.erase(name);
    queued_id_.erase(name);
    const bool forced = running_forced_[name];
    running_forced_.erase(name);
    const int64_t now = ToUnixSeconds(clock_.WallNow());
    if (result.ok()) {
      last_success_[name] = now;
      last_failure_.erase(name);
      overdue_said_.erase(name);
      if (forced) {
        forced_success_.insert(name);
      } else {
        forced_success_.erase(name);
      }
      if (name == "repair") repair_wanted_ = false;
      SaveState();
    } else if (result.code() != ErrorCode::kCancelled) {
      last_failure_[name] = now;  // logged by the job's wrapper (SubmitIfDue)
      last_error_ = name + ": " + result.message();
      last_error_time_ = now;
      SaveState();
      notify = notify_;
    }
    view = view_;
  }
  if (notify) notify(JobFields(name).device, "failed: " + name + ": " + result.message());
  // What this job's result makes due (a repair after a backup) is queued now.
  if (view && result.code() != ErrorCode::kCancelled) Plan(*view);
}

namespace {

// The agent's backups on its peers, as the CLI opens them with --config.
Result<std::unique_ptr<ops::Backups>> OpenBackups(const config::AgentConfig& config,
                                                  const directory::DirectoryView& view,
                                                  const transport::Identity& identity,
                                                  const Clock& clock, const KeyCache& key_cache,
                                                  std::function<void(const std::string&)> log) {
  ST_ASSIGN_OR_RETURN(SecretBuffer passphrase, ReadPassphrase(config.passphrase_file));
  ops::OpenOptions options;
  options.where = ops::AgentPeers{.config = config, .view = view, .identity = &identity, .host = ""};
  options.key_cache = &key_cache;
  options.now = clock.WallNow();
  options.on_warning = [log](const ops::Warning& w) { log(ops::WarningText(w)); };
  return ops::Open(options, passphrase);
}

}  // namespace

directory::DirectoryView ScheduledJobs::View() const {
  MutexLock l(mu_);
  return *view_;
}

void ScheduledJobs::NoteWarnings(const std::string& job, const ops::Backups& backups) {
  std::vector<ops::Warning> warnings = backups.Warnings();
  MutexLock l(mu_);
  for (const ops::Warning& w : warnings) {
    // A policy the backups do not follow is said once per daemon run.
    if (w.kind == ops::Warning::Kind::kPolicyDiffers && !policy_warned_.insert(w.detail).second) {
      continue;
    }
    Log(job + ": " + ops::WarningText(w), Priority::kWarning, JobFields(job));
  }
  if (ops::NeedsRepair(warnings)) repair_wanted_ = true;
}

Status ScheduledJobs::RunBackup(const std::string& device, PauseGate& gate,
                                const scheduler::JobProgressFn& progress) {
  const std::string job = "backup " + device;
  auto warn = [this, job](const std::string& line) { Log(job + ": " + line); };
  ST_ASSIGN_OR_RETURN(auto backups,
                      OpenBackups(config_, View(), identity_, clock_, *key_cache_, warn));
  ops::BackupRequest request;
  request.device = device;
  request.label = "scheduled";
  request.consistency = ops::ConsistencyFromPolicy(directory::ResolvePolicy(View(), config_.name));
  request.pause = &gate;
  request.open_device = open_device_;
  request.progress = [&progress](const ProgressInfo& p) { progress(p.bytes_done, p.bytes_total); };
  Result<Snapshot> snap = ops::Backup(*backups, request);
  NoteWarnings(job, *backups);
  ST_RETURN_IF_ERROR(snap.status());
  Log(job + ": snapshot " + snap->id + ", " + std::to_string(snap->size) + " bytes imaged, " +
          std::to_string(snap->stats.new_chunks) + " new chunks (" +
          std::to_string(snap->stats.stored_bytes) + " bytes sent), " +
          std::to_string(snap->stats.chunks - snap->stats.new_chunks - snap->stats.holes) +
          " already on the peers",
      Priority::kInfo, JobFields(job));
  return Status::Ok();
}

Status ScheduledJobs::RunVerify(PauseGate& gate, const scheduler::JobProgressFn& progress) {
  auto warn = [this](const std::string& line) { Log("verify: " + line); };
  ST_ASSIGN_OR_RETURN(auto backups,
                      OpenBackups(config_, View(), identity_, clock_, *key_cache_, warn));
  ST_ASSIGN_OR_RETURN(std::vector<Snapshot> snapshots, backups->catalog().ListSnapshots());
  uint64_t total = 0;
  std::vector<uint64_t> before;  // bytes of the snapshots before each
  for (const Snapshot& s : snapshots) {
    before.push_back(total);
    total += s.size;
  }
  ops::VerifyRequest request;
  request.pause = &gate;
  request.progress = [&](size_t i, size_t, const Snapshot&, const ProgressInfo& p) {
    progress((i < before.size() ? before[i] : 0) + p.bytes_done, total);
  };
  Result<ops::VerifyBackupsReport> report = ops::VerifyBackups(*backups, request);
  NoteWarnings("verify", *backups);
  ST_RETURN_IF_ERROR(report.status());
  ST_RETURN_IF_ERROR(ops::VerifyVerdict(*report));
  Log("verify: " + std::to_string(report->snapshots.size()) +
       " snapshot(s), every chunk readable");
  return Status::Ok();
}

Status ScheduledJobs::RunRepair(PauseGate& gate) {
  // Repair copies sealed blobs between peers: it starts only while idle
  // (the gate) and is bounded by the chunk count; it is not paused midway.
  ST_RETURN_IF_ERROR(gate.WaitWhilePaused(0));
  auto warn = [this](const std::string& line) { Log("repair: " + line); };
  ST_ASSIGN_OR_RETURN(auto backups,
                      OpenBackups(config_, View(), identity_, clock_, *key_cache_, warn));
  ST_ASSIGN_OR_RETURN(ops::RepairReport r, ops::Repair(*backups));
  Log("repair: " + ops::RepairText(r));
  return ops::RepairVerdict(r);
}

Status ScheduledJobs::RunPrune(PauseGate& gate) {
  directory::DirectoryView view = View();
  // Prune reads manifests and tells peers what to release: small I/O, so it
  // waits for the gate once and then runs to the end.
  ST_RETURN_IF_ERROR(gate.WaitWhilePaused(0));
  RetentionPolicy keep = ops::RetentionFromPolicy(directory::ResolvePolicy(view, config_.name));
  auto warn = [this](const std::string& line) { Log("prune: " + line); };
  ST_ASSIGN_OR_RETURN(auto backups, OpenBackups(config_, view, identity_, clock_, *key_cache_, warn));
  ST_ASSIGN_OR_RETURN(PruneReport r, ops::Prune(*backups, keep, PruneOptions{}));
  Log("prune (" + keep.ToString() + "): " + std::to_string(r.snapshots_forgotten) +
       " snapshot(s) forgotten, " + std::to_string(r.chunks_removed) + " chunk(s) released (" +
       std::to_string(r.bytes_removed) + " bytes)");
  for (const std::string& note : r.notes) Log("prune: " + note);
  return Status::Ok();
}

// Peers give space back (issue 21): the grace periods are this agent's
// effective policy; departed owners are judged from the latest view only
// when it names agents (an empty or unread directory marks nobody).
Status ScheduledJobs::RunHeldGc(PauseGate& gate) {
  const directory::DirectoryView view = View();
  std::optional<std::set<std::string>> present;
  if (!view.agents.empty()) present = ops::AgentNames(view);
  const ops::HeldGcSettings settings =
      ops::HeldGcFromPolicy(directory::ResolvePolicy(view, config_.name));
  ST_ASSIGN_OR_RETURN(ops::HeldGcReport report,
                      ops::CollectHeld(*held_, holds_, present, settings, gate));
  Log("peer-gc: " + report.ToString(), Priority::kInfo, JobFields("peer-gc"));
  for (const ops::HeldGcOwner& o : report.owners) {
    if (!o.error.ok()) return o.error.WithContext("peer-gc of what is held for " + o.owner);
  }
  return Status::Ok();
}

void ScheduledJobs::PlanPeerJobs(const directory::DirectoryView& view) {
  if (held_ == nullptr) return;
  // Nothing held for others: no scrub (and no job in the status).
  if (!held_->Owners().empty()) SubmitIfDue("scrub", config_.scrub_interval,
              [this](PauseGate& gate, const scheduler::JobProgressFn& progress) {
                return RunScrub(gate, progress);
              });
  const auto now = clock_.WallNow();
  for (const directory::AgentRecord& a : view.agents) {
    if (directory::EqualsIgnoreCase(a.name, config_.name)) continue;
    ops::CaretakerDecision d = ops::DecideCaretaker(view, a.name, now);
    if (!directory::EqualsIgnoreCase(d.caretaker, config_.name)) continue;
    const std::string owner = a.name;
    SubmitIfDue("caretaker " + owner, kCaretakerEvery,
                [this, owner](PauseGate& gate, const scheduler::JobProgressFn&) {
                  return RunCaretaker(owner, gate);
                });
  }
}

Status ScheduledJobs::RunScrub(PauseGate& gate, const scheduler::JobProgressFn& progress) {
  ops::ScrubRequest request;
  request.state_path = ops::ScrubStatePath(config_.state_dir);
  request.gate = &gate;
  request.now = [this] { return ToUnixSeconds(clock_.WallNow()); };
  request.on_damage = [this](const ops::ScrubDamage& d) {
    Log("scrub: chunk " + d.id_hex.substr(0, 8) + " held for " + d.owner +
            " is damaged; dropped (the owner's next repair copies a good replica): " + d.error,
        Priority::kWarning, JobFields("scrub"));
  };
  request.progress = progress;
  ST_ASSIGN_OR_RETURN(ops::ScrubReport r, ops::ScrubHeld(*held_, request));
  Log("scrub: " + r.ToString(), Priority::kInfo, JobFields("scrub"));
  return Status::Ok();
}

Status ScheduledJobs::RunCaretaker(const std::string& owner, PauseGate& gate) {
  ST_RETURN_IF_ERROR(gate.WaitWhilePaused(0));
  const std::string job = "caretaker " + owner;
  directory::DirectoryView view = View();
  ops::CaretakeRequest request;
  request.config = &config_;
  request.view = &view;
  request.identity = &identity_;
  request.owner = owner;
  request.now = clock_.WallNow();
  request.gate = &gate;
  request.log = [this, job](const std::string& line) {
    Log(line, Priority::kWarning, JobFields(job));
  };
  Result<ops::CaretakeReport> r = ops::Caretake(request);
  if (!r.ok() && r.status().code() == ErrorCode::kFailedPrecondition) {
    Log(job + ": " + r.status().message(), Priority::kInfo, JobFields(job));
    return Status::Ok();  // the owner came back or another peer took over
  }
  ST_RETURN_IF_ERROR(r.status());
  Log(job + ": " + r->ToString(), Priority::kInfo, JobFields(job));
  if (r->still_short > 0) {
    return Status(ErrorCode::kUnavailable,
                  std::to_string(r->still_short) + " chunk(s) of " + owner +
                      " stay below their replica count; retried later");
  }
  return Status::Ok();
}

}  // namespace sparetime::daemon
