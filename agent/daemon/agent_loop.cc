// AgentLoop implementation: heartbeat timer, change wait in one-second
// slices, status publication. Logging goes to stderr (journald under systemd).
#include "agent_loop.h"

#include "journal_log.h"

#include <cctype>

#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <cstdio>
#include <map>
#include <sstream>
#include <thread>

#include "sparetime/base/fd.h"

#include "sparetime/directory/policy.h"
#include "sparetime/ops/caretaker.h"
#include "sparetime/ops/peer_scrub.h"

namespace sparetime::daemon {
namespace {

using std::chrono::milliseconds;

void Log(const std::string& line) { LogInfo(line); }
void Warn(const std::string& line) { daemon::Log(Priority::kWarning, line); }

// Free bytes on the filesystem holding `dir` (0 when it cannot be read).
uint64_t FilesystemFree(const std::string& dir) {
  struct statvfs st {};
  if (::statvfs(dir.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

// The effective policy's values by attribute, to log what a re-read changed.
std::map<std::string, std::string> PolicyValues(const directory::EffectivePolicy& p) {
  auto join = [](const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
    return "[" + out + "]";
  };
  std::vector<std::string> windows;
  for (const auto& w : p.windows) windows.push_back(w.text);
  return {{"sparetimeDevice", join(p.devices)},
          {"sparetimeIdleMinutes", std::to_string(p.idle_minutes)},
          {"sparetimeIdleCpuPercent", std::to_string(p.idle_cpu_percent)},
          {"sparetimeIdleIoPressurePercent", std::to_string(p.idle_io_pressure_percent)},
          {"sparetimeWindow", join(windows)},
          {"sparetimeAcOnly", p.ac_only ? "TRUE" : "FALSE"},
          {"sparetimeReplicas", std::to_string(p.replicas)},
          {"sparetimeKeepLast", std::to_string(p.keep_last)},
          {"sparetimeKeepDaily", std::to_string(p.keep_daily)},
          {"sparetimeKeepWeekly", std::to_string(p.keep_weekly)},
          {"sparetimeKeepMonthly", std::to_string(p.keep_monthly)},
          {"sparetimeBandwidthLimit", std::to_string(p.bandwidth_limit)},
          {"sparetimeCompressionLevel", std::to_string(p.compression_level)},
          {"sparetimeChunkSize", std::to_string(p.chunk_size)},
          {"sparetimeConsistencyMode", p.consistency_mode},
          {"sparetimeMaxFreezeSeconds", std::to_string(p.max_freeze_seconds)},
          {"sparetimeSnapshotSize", std::to_string(p.snapshot_size)},
          {"sparetimeMigrationAllowed", p.migration_allowed ? "TRUE" : "FALSE"},
          {"sparetimeMigrationFrom", join(p.migration_from)},
          {"sparetimeMigrationPrivileged", p.migration_privileged ? "TRUE" : "FALSE"},
          {"sparetimeEscrowPublicKey", p.escrow_public_key ? "set" : "none"},
          {"sparetimePeerMaxAgeMinutes", std::to_string(p.peer_max_age_minutes)},
          {"sparetimeMaxAge", std::to_string(p.max_age_seconds) + " s"},
          {"sparetimePeerGraceDays", std::to_string(p.peer_grace_days)},
          {"sparetimeDepartedGraceDays", std::to_string(p.departed_grace_days)},
          {"sparetimeCaretakerAfterMinutes", std::to_string(p.caretaker_after_minutes)}};
}

// "ATTR OLD -> NEW; ..." for the values that differ.
std::string PolicyChanges(const std::map<std::string, std::string>& before,
                          const std::map<std::string, std::string>& after) {
  std::string out;
  for (const auto& [name, value] : after) {
    auto it = before.find(name);
    if (it != before.end() && it->second == value) continue;
    out += (out.empty() ? "" : "; ") + name + " " +
           (it == before.end() ? std::string("?") : it->second) + " -> " + value;
  }
  return out;
}

// This process's PID namespace ("pid:[INODE]") and its NSpid line.
void ReadPidNamespace(config::AgentStatus& status) {
  char link[64] = {};
  ssize_t n = ::readlink("/proc/self/ns/pid", link, sizeof link - 1);
  if (n > 0) status.pid_namespace.assign(link, static_cast<size_t>(n));
  Result<std::string> text = ReadFileToString("/proc/self/status");
  if (!text.ok()) return;
  size_t at = text->find("\nNSpid:");
  if (at == std::string::npos) return;
  std::istringstream line(text->substr(at + 7, text->find('\n', at + 1) - at - 7));
  for (int64_t pid; line >> pid;) status.ns_pids.push_back(pid);
}

}  // namespace

AgentLoop::AgentLoop(config::AgentConfig config, const transport::Identity& identity,
                     std::unique_ptr<directory::DirectoryClient> client, const Clock& clock,
                     std::function<void(const std::string&)> notify,
                     std::function<uint64_t()> held_bytes, DeviceOpener open_device,
                     peerstore::PeerStore* held)
    : config_(std::move(config)),
      identity_(identity),
      client_(std::move(client)),
      clock_(clock),
      notify_(std::move(notify)),
      held_bytes_(std::move(held_bytes)),
      open_device_(std::move(open_device)),
      held_(held) {
  std::memcpy(public_key_.data(), identity_.public_key().bytes.data(), public_key_.size());
  status_.agent = config_.name;
  status_.pid = ::getpid();
  ReadPidNamespace(status_);
  status_.started = ToUnixSeconds(clock_.WallNow());
  StartScheduler();
}

void AgentLoop::StartScheduler() {
  // The policy and rate come with the first directory read (Refresh).
  ops::IdleSettings settings;
  settings.utmp = config_.utmp;
  auto warn = [](const ops::Warning& w) { Log("input watcher: " + ops::WarningText(w)); };
  Result<std::unique_ptr<ops::IdleJobs>> idle =
      ops::IdleJobs::Create(std::move(settings), clock_, nullptr, warn);
  // The built-in IdlePolicy always validates: Create cannot refuse it.
  idle_ = std::move(idle).value();
  scheduler_ = &idle_->controller();
  jobs_ = std::make_unique<ScheduledJobs>(config_, identity_, *scheduler_, clock_, JournalLog(),
                                         open_device_, held_);
  notifier_ = std::make_unique<ops::Notifier>(
      config_.notify_command, config_.notify_timeout, [](const std::string& line, bool failed) {
        daemon::Log(failed ? Priority::kWarning : Priority::kInfo, line);
      });
  jobs_->set_notify([this](const std::string& device, const std::string& reason) {
    notifier_->Notify({config_.name, device, reason});
  });
}

void AgentLoop::UpdateBackupState() {
  if (!state_policy_) return;  // before the first directory read
  ScheduledJobs::History history = jobs_->GetHistory();
  ops::BackupStateRequest request;
  request.state_dir = config_.state_dir;
  request.devices = state_policy_->devices;
  request.replicas = state_policy_->replicas;
  request.last_verify = history.last_verify;
  request.last_error = history.last_error;
  request.last_error_time = history.last_error_time;
  request.forced = history.forced;
  Result<ops::BackupStateReport> report = ops::BackupState(request);
  if (!report.ok()) {
    if (status_.backup_state_error != report.status().message()) {
      Warn("backup state: " + report.status().message() +
           "; the directory keeps the state published before");
    }
    status_.backup_state_error = report.status().message();
    return;
  }
  status_.backup_state_error.clear();
  status_.backups_known = true;
  status_.max_age_seconds = state_policy_->max_age;
  status_.backups = report->devices;
  status_.backup_health = report->health;
  if (!config_.metrics_dir.empty()) {
    const int64_t now = ToUnixSeconds(clock_.WallNow());
    Status s = ops::WriteMetrics(config_.metrics_dir,
                                 ops::MetricsText(config_.name, *report, now, state_policy_->max_age));
    if (!s.ok() && s.message() != metrics_error_) Warn("metrics: " + s.message());
    if (s.ok() && !metrics_error_.empty()) Log("metrics: written to " + config_.metrics_dir + " again");
    metrics_error_ = s.ok() ? "" : s.message();
  }
  backup_state_ = std::move(*report);
}

bool AgentLoop::UpdateIdle() {
  std::optional<scheduler::Decision> d = scheduler_->LastDecision();
  bool changed = false;
  if (d) {
    config::IdleStatus& idle = status_.idle;
    if (!idle.known || idle.idle != d->idle) {
      changed = true;
      idle.since = ToUnixSeconds(clock_.WallNow());
      Log(std::string(d->idle ? "idle: " : "busy: ") + (d->reasons.empty() ? "" : d->reasons[0]));
    }
    idle.known = true;
    idle.idle = d->idle;
    idle.reasons = d->reasons;
    idle.warnings = d->warnings;
  }
  std::vector<config::JobStatus> jobs;
  for (const scheduler::JobInfo& j : scheduler_->Jobs()) {
    jobs.push_back({j.name, std::string(scheduler::JobStateName(j.state)),
                    ToUnixSeconds(j.since), j.bytes_done, j.bytes_total, j.pauses, j.detail});
    changed = changed || status_.jobs.size() < jobs.size() ||
              status_.jobs[jobs.size() - 1].state != jobs.back().state;
  }
  status_.jobs = std::move(jobs);
  return changed;
}

directory::AgentRegistration AgentLoop::Registration() const {
  directory::AgentRegistration r;
  r.name = config_.name;
  r.address = config_.advertise_address;
  r.port = config_.listen_port;
  r.public_key = public_key_;
  r.site = config_.site;
  r.capacity = config_.capacity;
  // What is left of the offer, bounded by what the disk really has.
  uint64_t held = held_bytes_();
  r.free = std::min(config_.capacity > held ? config_.capacity - held : 0,
                    FilesystemFree(config_.state_dir));
  r.version = "0.1.0";
  if (backup_state_) {
    r.backups = backup_state_->devices;
    r.health = backup_state_->health;
  }
  return r;
}

void AgentLoop::Register() {
  UpdateBackupState();
  Status s = client_->Register(Registration());
  if (s.ok()) {
    if (!status_.registered) Log("registered as " + config_.name);
    status_.registered = true;
    status_.registered_at = ToUnixSeconds(clock_.WallNow());
    status_.registration_error.clear();
  } else {
    if (status_.registration_error != s.message()) Warn("registration failed: " + s.message());
    status_.registered = false;
    status_.registration_error = s.message();
  }
}

void AgentLoop::Refresh() {
  Result<directory::DirectoryState> state = client_->Refresh();
  if (!state.ok()) {
    if (status_.directory_error != state.status().message()) {
      Warn("directory: " + state.status().message());
    }
    status_.directory_error = state.status().message();
    status_.directory_from_cache = false;
    return;
  }
  if (state->from_cache && !status_.directory_from_cache) {
    Warn("directory unreachable (" + state->cache_reason + "); working on the copy read at " +
        std::to_string(ToUnixSeconds(state->fetched_at)));
  } else if (!state->from_cache && status_.directory_from_cache) {
    Log("directory reachable again: " + state->source);
  }
  directory::EffectivePolicy policy = directory::ResolvePolicy(state->view, config_.name);
  std::vector<directory::AgentRecord> peers = directory::LivePeers(
      state->view, config_.name, clock_.WallNow(),
      std::chrono::minutes(policy.peer_max_age_minutes));
  status_.directory_source = state->source;
  status_.directory_fetched_at = ToUnixSeconds(state->fetched_at);
  status_.directory_from_cache = state->from_cache;
  status_.directory_error = state->cache_reason;
  status_.directory_warnings = state->view.warnings;
  status_.peers.clear();
  for (const auto& p : peers) status_.peers.push_back(p.name);
  {
    // Every agent with a valid entry may open a session (a stale heartbeat
    // does not stop a rebuilt box from restoring); the view excludes
    // malformed entries already.
    MutexLock l(keys_mu_);
    agent_by_key_.clear();
    for (const auto& a : state->view.agents) agent_by_key_[a.public_key] = a.name;
    restore_for_.clear();
    for (const auto& a : state->view.agents) {
      std::string owner = a.name;
      for (char& c : owner) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      restore_for_[owner] = a.restore_for;
    }
    migration_allowed_ = policy.migration_allowed;
    migration_from_ = policy.migration_from;
    migration_privileged_ = policy.migration_privileged;
    view_ = state->view;
  }
  std::map<std::string, std::string> values = PolicyValues(policy);
  if (status_.policy_applied != policy.applied || !policy_values_.empty()) {
    std::string applied;
    for (const auto& dn : policy.applied) applied += (applied.empty() ? "" : " < ") + dn;
    if (applied.empty()) applied = "built-in defaults";
    std::string changes = policy_values_.empty() ? "" : PolicyChanges(policy_values_, values);
    if (policy_values_.empty() || status_.policy_applied != policy.applied) {
      Log("policy: " + applied + (changes.empty() ? "" : " (changed: " + changes + ")"));
    } else if (!changes.empty()) {
      Log("policy changed: " + changes + " (" + applied + ")");
    }
  }
  policy_values_ = std::move(values);
  CheckSite(state->view);
  status_.policy_applied = policy.applied;
  status_.policy_warnings = policy.warnings;
  if (Status s = idle_->Apply(ops::AgentIdleSettings(config_, state->view)); !s.ok()) {
    Warn("scheduler: the directory's idle policy is refused (" + s.message() +
        "); the previous one stays");
  }
  state_policy_ = StatePolicy{policy.devices, policy.replicas, policy.max_age_seconds};
  jobs_->Plan(state->view);
}

void AgentLoop::CheckSite(const directory::DirectoryView& view) {
  std::string warning;
  for (const auto& a : view.agents) {
    if (!directory::EqualsIgnoreCase(a.name, config_.name)) continue;
    if (!config_.site.empty() && a.site != config_.site) {
      warning = "[agent] site is \"" + config_.site + "\" but " + a.dn + " has " +
                (a.site.empty() ? std::string("no sparetimeSite")
                                : "sparetimeSite \"" + a.site + "\"") +
                "; the directory's value is the one peers use. Only an admin may change it "
                "(ldapmodify: replace sparetimeSite), or remove site from the configuration";
    }
  }
  if (warning != status_.site_warning && !warning.empty()) Warn("site: " + warning);
  status_.site_warning = warning;
}

Result<std::string> AgentLoop::AgentForKey(const directory::PublicKey& key) const {
  MutexLock l(keys_mu_);
  auto it = agent_by_key_.find(key);
  if (it != agent_by_key_.end()) return it->second;
  return Status(ErrorCode::kPermissionDenied,
                "no agent in the directory publishes this key (an impostor, or an agent "
                "enrolled after the last directory read)");
}

Status AgentLoop::MigrationAllowedFrom(const std::string& source) const {
  MutexLock l(keys_mu_);
  if (!migration_allowed_)
    return PermissionDenied(config_.name + " does not accept process migrations (its policy has "
                            "sparetimeMigrationAllowed FALSE)");
  for (const auto& host : migration_from_)
    if (directory::EqualsIgnoreCase(host, source)) return Status::Ok();
  return PermissionDenied(config_.name + " does not accept process migrations from " + source +
                          " (not in its policy's sparetimeMigrationFrom)");
}

Status AgentLoop::MigrationPrivilegedAllowed(const std::string& what) const {
  MutexLock l(keys_mu_);
  if (migration_privileged_) return Status::Ok();
  return PermissionDenied(what + "; " + config_.name +
                          " runs migrated processes as root or with capabilities only when its policy says "
                          "sparetimeMigrationPrivileged TRUE");
}

Status AgentLoop::MayReadBackupsOf(const std::string& caller, const std::string& owner) const {
  if (directory::EqualsIgnoreCase(caller, owner)) return Status::Ok();
  std::string key = owner;
  for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  MutexLock l(keys_mu_);
  auto it = restore_for_.find(key);
  if (it != restore_for_.end()) {
    for (const auto& name : it->second)
      if (directory::EqualsIgnoreCase(name, caller)) return Status::Ok();
  }
  return PermissionDenied("agent " + caller + " may not read the backups of " + owner +
                          ": only " + owner + " itself, or an agent an admin names in " + owner +
                          "'s sparetimeRestoreFor, may (docs/peers.md \"Who may do what\")");
}

Status AgentLoop::MayCareFor(const std::string& caller, const std::string& owner) const {
  MutexLock l(keys_mu_);
  if (!view_) return PermissionDenied("this peer has not read the directory yet");
  return ops::MayCareFor(*view_, caller, owner, clock_.WallNow());
}

void AgentLoop::UpdateHeld() {
  status_.held.clear();
  if (held_ == nullptr) return;
  Result<ops::ScrubState> scrub = ops::LoadScrubState(ops::ScrubStatePath(config_.state_dir));
  for (const std::string& owner : held_->Owners()) {
    config::HeldStatus h;
    h.owner = owner;
    if (Result<peerstore::OwnerUsage> u = held_->Usage(owner); u.ok()) {
      h.chunks = u->chunks;
      h.live_bytes = u->chunk_bytes;
      h.record_bytes = u->record_bytes;
    }
    h.disk_bytes = held_->DiskBytes(owner);
    if (scrub.ok()) {
      auto it = scrub->owners.find(owner);
      if (it != scrub->owners.end()) {
        h.last_scrub = it->second.last_complete;
        h.scrub_passes = it->second.passes;
        h.scrub_in_progress = !it->second.cursor.empty();
        h.damaged = it->second.damaged;
      }
    }
    status_.held.push_back(std::move(h));
  }
}

void AgentLoop::Publish() {
  UpdateIdle();
  UpdateHeld();
  status_.updated = ToUnixSeconds(clock_.WallNow());
  Status s = config::WriteStatus(config::StatusPath(config_.state_dir), status_);
  if (!s.ok()) Warn("cannot write the status file: " + s.message());
  std::string summary = std::to_string(status_.peers.size()) + " peers, directory " +
                        (status_.directory_from_cache ? "unreachable (cached)"
                         : status_.directory_error.empty() ? "ok"
                                                           : "unreachable") +
                        (status_.registered ? "" : ", not registered");
  if (summary != last_summary_) {
    notify_("STATUS=" + summary);
    last_summary_ = summary;
  }
}

void AgentLoop::Start() {
  Register();
  Refresh();
  // The first registration came before the policy was known: publish the
  // backup state now rather than at the first heartbeat.
  if (state_policy_) Register();
  Publish();
}

void AgentLoop::Reload() {
  Log("reload: re-reading " + config_.path + " and the directory");
  Result<config::AgentConfig> fresh = config::LoadConfig(config_.path);
  if (!fresh.ok()) {
    daemon::Log(Priority::kErr, "reload: " + fresh.status().message() +
                                    "; the running configuration stays (fix the file, then "
                                    "systemctl reload sparetime again)");
  } else {
    const config::AgentConfig& c = *fresh;
    std::vector<std::string> restart;
    auto need = [&restart](bool changed, const char* key) {
      if (changed) restart.push_back(key);
    };
    need(c.name != config_.name, "[agent] name");
    need(c.listen_address != config_.listen_address ||
             (c.listen_port != 0 && c.listen_port != config_.listen_port),
         "[agent] listen");
    need(c.state_dir != config_.state_dir, "[agent] state_dir");
    need(c.peer_timeout != config_.peer_timeout, "[agent] peer_timeout");
    need(c.capacity != config_.capacity, "[storage] capacity");
    need(c.owner_quota != config_.owner_quota, "[storage] owner_quota");
    need(c.directory.uri != config_.directory.uri || c.directory.base_dn != config_.directory.base_dn ||
             c.directory.bind_dn != config_.directory.bind_dn ||
             c.directory.password_file != config_.directory.password_file ||
             c.directory.sasl_external != config_.directory.sasl_external ||
             c.directory.ca_file != config_.directory.ca_file ||
             c.directory_cache != config_.directory_cache,
         "[directory]");
    need(c.passphrase_file != config_.passphrase_file ||
             c.backup_interval != config_.backup_interval ||
             c.verify_interval != config_.verify_interval,
         "[backup] passphrase_file/interval/verify_interval");
    need(c.utmp != config_.utmp, "[scheduler] utmp");
    need(c.notify_command != config_.notify_command || c.notify_timeout != config_.notify_timeout,
         "[notify]");
    config_.metrics_dir = c.metrics_dir;
    config_.heartbeat = c.heartbeat;
    config_.advertise_address = c.advertise_address;
    config_.site = c.site;
    config_.settle = c.settle;
    config_.load_grace = c.load_grace;
    config_.resume_delay = c.resume_delay;
    config_.ignore_load = c.ignore_load;
    config_.devices = c.devices;
    std::string keys;
    for (const std::string& k : restart) keys += (keys.empty() ? "" : ", ") + k;
    if (!keys.empty()) {
      Warn("reload: " + keys +
           " changed; that takes effect at the next start (systemctl restart sparetime)");
    }
  }
  Register();
  Refresh();
  Publish();
  Log("reload: done; " + std::to_string(status_.peers.size()) + " peers, heartbeat " +
      std::to_string(std::chrono::duration_cast<std::chrono::seconds>(config_.heartbeat).count()) +
      " s, " + std::to_string(config_.devices.size()) + " device(s) the helper may open");
}

void AgentLoop::Run(const std::atomic<bool>& stop, std::atomic<bool>* reload) {
  std::jthread scheduler([this, &stop] { scheduler_->Run(stop, /*until_done=*/false); });
  notify_("READY=1");
  auto next_heartbeat = clock_.MonoNow() + config_.heartbeat;
  while (!stop.load()) {
    const auto slice_start = clock_.MonoNow();
    auto left = std::chrono::duration_cast<milliseconds>(next_heartbeat - slice_start);
    Result<bool> changed = client_->WaitForChange(std::clamp(left, milliseconds(0),
                                                             milliseconds(1000)));
    if (stop.load()) break;
    bool beat = clock_.MonoNow() >= next_heartbeat;
    bool lost = false;
    bool recovered = false;
    if (!changed.ok()) {
      // The change watch failed (server gone). The first failure re-reads at
      // once, so the status says "unreachable, using the cache" now, not at
      // the next heartbeat; later failures wait for the watch to come back
      // (each WaitForChange retries the connection), without spinning.
      lost = !watch_lost_;
      if (lost) {
        watch_lost_ = true;
        Warn("directory: change watch lost (" + changed.status().message() +
            "); re-reading, then retrying every second");
      }
      // At most one attempt a second (the watch may fail at once, e.g.
      // connection refused), and never past the heartbeat.
      auto until = std::min(next_heartbeat, slice_start + milliseconds(1000));
      auto rest = std::chrono::duration_cast<milliseconds>(until - clock_.MonoNow());
      if (!lost) clock_.SleepFor(std::clamp(rest, milliseconds(0), milliseconds(1000)));
    } else if (watch_lost_) {
      // The watch reconnected: register and re-read at once rather than at
      // the next heartbeat (what changed meanwhile is unknown).
      watch_lost_ = false;
      recovered = true;
      Log("directory: change watch reconnected; registering and re-reading");
    }
    if (reload != nullptr && reload->exchange(false)) {
      Reload();
      next_heartbeat = clock_.MonoNow() + config_.heartbeat;
      notify_("WATCHDOG=1");
      continue;
    }
    if (beat || recovered) {
      Register();
      next_heartbeat = clock_.MonoNow() + config_.heartbeat;
    }
    if (beat || lost || recovered || (changed.ok() && *changed)) {
      Refresh();
      Publish();
    } else if (UpdateIdle()) {
      Publish();
    }
    notify_("WATCHDOG=1");
  }
  scheduler_->Wake();  // sees `stop` and returns; the jthread joins it
  notify_("STOPPING=1");
}

}  // namespace sparetime::daemon
