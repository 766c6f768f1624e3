// AgentLoop: sparetimed's main loop as far as the directory goes. It
// registers the agent (heartbeat: address, key, free space, last-seen) on
// start and every heartbeat interval, re-reads the directory when it changes
// (or at each heartbeat), keeps working on the cached copy while the
// directory is unreachable, and publishes all of it in status.json. When the
// change watch's connection is lost it re-reads at once (so the status says
// "unreachable" within about a second), and when it comes back it registers
// and re-reads at once, not at the next heartbeat. It also
// runs the scheduler's JobController (wired by ops::IdleJobs, as `sparetime
// backup --when-idle` does) on a thread of its own, with the idle policy and
// byte rate from the directory (ops::AgentIdleSettings: adjusted by
// sparetime.conf's [scheduler]), submits the agent's own jobs when they are due
// (scheduled_jobs.h), and publishes its idle decision and jobs (at once when
// the box becomes idle or busy, or a job changes state).
//
// At each heartbeat it reads its backup state (ops::BackupState: the
// catalog and chunk locations, plus the scheduler's history) and publishes
// it three ways from that one report: in its directory entry
// (sparetimeBackupState/Health, directory/fleet_state.h), in status.json,
// and as Prometheus text in [metrics] textfile_dir. Job failures and
// devices becoming overdue run [notify] command (ops::Notifier: on its own
// thread, killed after [notify] timeout).
//
// Invariants: every wait is bounded (at most one second between checks of
// the stop flag); a failed registration or read is reported in the status
// and retried at the next heartbeat, never fatal.
#ifndef SPARETIME_AGENT_DAEMON_AGENT_LOOP_H_
#define SPARETIME_AGENT_DAEMON_AGENT_LOOP_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "sparetime/base/clock.h"
#include "sparetime/base/mutex.h"
#include "sparetime/config/config.h"
#include "sparetime/config/status_file.h"
#include "sparetime/directory/client.h"
#include "sparetime/directory/records.h"
#include "sparetime/imaging/device_fds.h"
#include "sparetime/ops/backup_state.h"
#include "sparetime/ops/idle_jobs.h"
#include "sparetime/ops/notify.h"
#include "sparetime/peerstore/peer_store.h"
#include "sparetime/scheduler/job_controller.h"
#include "sparetime/transport/identity.h"
#include "scheduled_jobs.h"

namespace sparetime::daemon {

class AgentLoop {
 public:
  // `notify` receives sd_notify-style state strings ("READY=1", "STATUS=...");
  // `held_bytes` says how much the peer store holds for others. `identity`
  // (the agent's key pair) must outlive the loop.
  AgentLoop(config::AgentConfig config, const transport::Identity& identity,
            std::unique_ptr<directory::DirectoryClient> client, const Clock& clock,
            std::function<void(const std::string&)> notify,
            std::function<uint64_t()> held_bytes, DeviceOpener open_device = nullptr,
            peerstore::PeerStore* held = nullptr);

  // What this agent holds for others, for the peer-gc job (before Start).
  void set_held(peerstore::PeerStore* store, peerstore::ReadHolds* holds) {
    jobs_->set_held(store, holds);
  }

  // The port peers connect to, when the listener picked it (listen port 0).
  void set_listen_port(uint16_t port) { config_.listen_port = port; }

  // Registers, reads the directory and publishes the first status (so that
  // AgentForKey knows the peers before the peer service starts).
  void Start();
  // Then runs (with the scheduler) until `stop` becomes true. When `reload`
  // is set (SIGHUP: systemctl reload), clears it and re-reads sparetime.conf
  // and the directory within a second (see Reload).
  void Run(const std::atomic<bool>& stop, std::atomic<bool>* reload = nullptr);

  // The name of the agent that publishes `key` in the directory as last read
  // (kPermissionDenied otherwise). Safe to call from any thread: the peer
  // service asks it for every incoming session.
  Result<std::string> AgentForKey(const directory::PublicKey& key) const EXCLUDES(keys_mu_);

  // OK when this host's policy (as last read) accepts process migrations
  // from agent `source` (sparetimeMigrationAllowed and sparetimeMigrationFrom);
  // else kPermissionDenied saying which setting refuses it. Any thread.
  Status MigrationAllowedFrom(const std::string& source) const EXCLUDES(keys_mu_);
  // OK when this host's policy lets migrated processes run as root or with
  // capabilities (sparetimeMigrationPrivileged TRUE); else kPermissionDenied
  // starting with `what` ("process 12 (x) runs as root"). Any thread.
  Status MigrationPrivilegedAllowed(const std::string& what) const EXCLUDES(keys_mu_);

  // OK when agent `caller` may read the backups `owner` keeps on this peer:
  // it is `owner`, or owner's entry (as last read) names it in
  // sparetimeRestoreFor; else kPermissionDenied saying what an admin can do.
  // Any thread (the peer service asks it for every read of another owner).
  Status MayReadBackupsOf(const std::string& caller, const std::string& owner) const
      EXCLUDES(keys_mu_);

  // OK when agent `caller` is the caretaker of `owner` in the directory as
  // last read, now (ops::MayCareFor). Any thread (the peer service asks it
  // for every caretaker request).
  Status MayCareFor(const std::string& caller, const std::string& owner) const
      EXCLUDES(keys_mu_);

 private:
  void Refresh();
  // systemctl reload: re-reads sparetime.conf (a bad file is logged at
  // priority err and the running configuration stays), applies what can
  // change while running ([agent] heartbeat, advertise_address, site and
  // [scheduler]; [backup] devices is read by the privileged helper at each
  // request anyway), names the keys that need a restart, then registers and
  // re-reads the directory. Every step is logged.
  void Reload();
  void Register();
  void Publish();
  // Warns (log and status) when [agent] site and the entry's sparetimeSite differ.
  void CheckSite(const directory::DirectoryView& view);
  directory::AgentRegistration Registration() const;
  void StartScheduler();
  // Copies the scheduler's decision and jobs into status_; true when the
  // idle state or a job's state changed.
  bool UpdateIdle();
  // Reads the backup state (when the policy is known) into backup_state_
  // and status_, and writes the metrics file. Errors are logged once each.
  void UpdateBackupState();

  config::AgentConfig config_;
  const transport::Identity& identity_;
  directory::PublicKey public_key_;
  std::unique_ptr<directory::DirectoryClient> client_;
  const Clock& clock_;
  std::function<void(const std::string&)> notify_;
  config::AgentStatus status_;
  std::string last_summary_;  // last STATUS= line, to log changes only
  std::map<std::string, std::string> policy_values_;  // effective policy as last logged
  bool watch_lost_ = false;   // the change watch failed and has not come back yet
  std::function<uint64_t()> held_bytes_;
  const DeviceOpener open_device_;  // for ScheduledJobs
  mutable Mutex keys_mu_;
  // From the last directory read.
  std::map<directory::PublicKey, std::string> agent_by_key_ GUARDED_BY(keys_mu_);
  bool migration_allowed_ GUARDED_BY(keys_mu_) = false;
  std::vector<std::string> migration_from_ GUARDED_BY(keys_mu_);
  bool migration_privileged_ GUARDED_BY(keys_mu_) = false;
  // owner (lower case) -> its sparetimeRestoreFor names.
  std::map<std::string, std::vector<std::string>> restore_for_ GUARDED_BY(keys_mu_);
  // The last directory read, for MayCareFor.
  std::optional<directory::DirectoryView> view_ GUARDED_BY(keys_mu_);
  // What this agent holds for others (status: per owner), may be null.
  peerstore::PeerStore* const held_;
  // Fills status_.held from the peer store and the scrub state.
  void UpdateHeld();

  // The policy as last read, for the backup state (nullopt before the first read).
  struct StatePolicy {
    std::vector<std::string> devices;
    uint32_t replicas = 0;
    int64_t max_age = 0;
  };
  std::optional<StatePolicy> state_policy_;
  std::optional<ops::BackupStateReport> backup_state_;
  std::string metrics_error_;  // last metrics write error logged ("" none)
  // Declared before jobs_: jobs notify through it until they are gone.
  std::unique_ptr<ops::Notifier> notifier_;

  // Declared before idle_ so that the controller (and any job thread) is
  // gone before the jobs' owner.
  std::unique_ptr<ScheduledJobs> jobs_;
  std::unique_ptr<ops::IdleJobs> idle_;  // the JobController and its sensors
  scheduler::JobController* scheduler_ = nullptr;  // idle_->controller()
};

}  // namespace sparetime::daemon

#endif  // SPARETIME_AGENT_DAEMON_AGENT_LOOP_H_
