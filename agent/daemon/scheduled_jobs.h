// ScheduledJobs: what sparetimed does with the box's idle time. It decides
// which of the agent's own jobs are due and submits them to the scheduler's
// JobController, which starts them only while the box is idle and pauses
// them within a second of user activity:
//
//   backup DEVICE  each device the policy lists (sparetimeDevice) whose last
//                  successful backup is older than [backup] interval, to the
//                  peers (the same backups `sparetime --config` reads)
//   prune          once per interval after a backup: forgets the snapshots
//                  the policy's keep-last/daily/weekly/monthly do not keep and
//                  releases the chunks nothing references any more
//   repair         after a backup that left chunks on fewer peers than the
//                  policy's replica count, a peer given up or a damaged
//                  replica skipped, and once per interval
//   verify         every snapshot, read back from the peers and checked,
//                  once per [backup] verify_interval
//   peer-gc        what this agent holds for others gives space back, once
//                  per kHeldGcInterval, also without a passphrase or devices
//                  (ops::CollectHeld, docs/peers.md "Lifecycle")
//
// and for the owners whose data this agent's peer store holds (these run
// without a passphrase or devices of its own):
//
//   scrub          re-reads every blob held for others, once per [storage]
//                  scrub_interval, resuming at its cursor (ops/peer_scrub.h)
//   caretaker H    while this agent is the caretaker of the silent owner H
//                  (ops/caretaker.h): restores H's replica count on the
//                  peers, at most once per kCaretakerEvery
//
// Every kind of work is the ops use case the CLI runs too (agent/ops:
// ops::Backup, VerifyBackups, Repair, Prune over ops::Open'd AgentPeers);
// this class only schedules and logs.
//
// Jobs run only when [backup] passphrase_file is set; each job opens the
// backups itself (reads the passphrase file then; Argon2id once per job)
// with the live peers of the latest directory read. At most one job of each
// kind (per device) is queued or running; a failed job is logged, shown in
// status.json, and retried after kRetryAfter, not at once. The time of each
// job's last success is kept in <state_dir>/jobs.json, so a restart neither
// repeats a backup nor forgets one; a backup interrupted by a stop or a
// restart resumes from its journal (imager.h) the next time it runs.
//
// Never-idle boxes (issue 23 part 6): a device whose last success is older
// than the policy's sparetimeMaxAge (or, never backed up, that has been
// planned for longer than that) is overdue; its backup is submitted (or its
// queued backup promoted) with run_when_busy, so it runs even though the box
// is not idle — at idle I/O priority, nice 19, within the bandwidth limit
// (job_controller.h) — said once in the log (priority warning) and to the
// notify callback, and published as "forced" in the fleet state.
//
// Logs: one entry when a job starts and one when it ends, with its figures
// (or its error, at priority err), carrying JOB= and, for backups, DEVICE=
// (journal_log.h).
//
// Thread safety: Plan from any thread (the agent loop; finished jobs plan
// again from the job thread).
#ifndef SPARETIME_AGENT_DAEMON_SCHEDULED_JOBS_H_
#define SPARETIME_AGENT_DAEMON_SCHEDULED_JOBS_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "sparetime/base/clock.h"
#include "sparetime/base/journal.h"
#include "sparetime/base/mutex.h"
#include "sparetime/base/status.h"
#include "sparetime/config/config.h"
#include "sparetime/directory/records.h"
#include "sparetime/imaging/device_fds.h"
#include "sparetime/imaging/key_cache.h"
#include "sparetime/ops/backups.h"
#include "sparetime/peerstore/peer_store.h"
#include "sparetime/peerstore/read_holds.h"
#include "sparetime/scheduler/job_controller.h"
#include "sparetime/transport/identity.h"

namespace sparetime::daemon {

class ScheduledJobs {
 public:
  // A failed job is tried again after this long (or the interval, if shorter).
  static constexpr std::chrono::minutes kRetryAfter{15};
  // A caretaker heals again this long after its last complete heal.
  static constexpr std::chrono::minutes kCaretakerEvery{30};

  // `identity` and `controller` must outlive this object.
  ScheduledJobs(const config::AgentConfig& config, const transport::Identity& identity,
                scheduler::JobController& controller, const Clock& clock, LogFn log,
                DeviceOpener open_device = nullptr, peerstore::PeerStore* held = nullptr);

  // How often peer-gc runs (at idle).
  static constexpr std::chrono::hours kHeldGcInterval{24};
  // What this agent holds for others, for peer-gc (not owned; both outlive
  // this object). Call before the first Plan; without it there is no peer-gc.
  void set_held(peerstore::PeerStore* store, peerstore::ReadHolds* holds) {
    held_ = store;
    holds_ = holds;
  }

  // Submits the jobs that are due with this directory view (the policy's
  // devices and replica count, the live peers).
  void Plan(const directory::DirectoryView& view) EXCLUDES(mu_);

  // Why no job is planned, for the status ("" when jobs are planned).
  std::string Idle() const EXCLUDES(mu_);

  // What only the scheduler knows of the backup state (ops::BackupState).
  struct History {
    int64_t last_verify = 0;  // Unix s of the last good verify
    std::string last_error;   // "JOB: message" of the last failure ("" none since)
    int64_t last_error_time = 0;
    std::set<std::string> forced;  // devices whose last success ran forced
  };
  History GetHistory() const EXCLUDES(mu_);

  // Called (from the planning or job thread) when a job fails and when a
  // device becomes overdue; `device` is "" for verify/repair/prune.
  using NotifyFn = std::function<void(const std::string& device, const std::string& reason)>;
  void set_notify(NotifyFn notify) EXCLUDES(mu_);

 private:
  using Job = std::function<Status(PauseGate&, const scheduler::JobProgressFn&)>;
  // Queues `name` unless it is queued/running or not yet due.
  // `forced`: run even while the box is busy (an overdue backup).
  void SubmitIfDue(const std::string& name, std::chrono::milliseconds interval, Job job,
                   bool forced = false) EXCLUDES(mu_);
  // True (and logs and notifies once) when `device` is overdue now.
  bool Overdue(const std::string& device, int64_t max_age) EXCLUDES(mu_);
  // The work of each kind.
  Status RunBackup(const std::string& device, PauseGate& gate,
                   const scheduler::JobProgressFn& progress);
  Status RunVerify(PauseGate& gate, const scheduler::JobProgressFn& progress);
  Status RunRepair(PauseGate& gate);
  Status RunPrune(PauseGate& gate);
  Status RunHeldGc(PauseGate& gate);
  Status RunScrub(PauseGate& gate, const scheduler::JobProgressFn& progress);
  Status RunCaretaker(const std::string& owner, PauseGate& gate);
  // Submits the peer-side jobs (scrub, caretakers) due with `view`.
  void PlanPeerJobs(const directory::DirectoryView& view);
  // Logs the run's warnings; asks for a repair when they leave work for one.
  void NoteWarnings(const std::string& job, const ops::Backups& backups) EXCLUDES(mu_);
  // The latest directory view (REQUIRES: Plan ran).
  directory::DirectoryView View() const EXCLUDES(mu_);
  void Finished(const std::string& name, const Status& result) EXCLUDES(mu_);
  void LoadState() EXCLUDES(mu_);  // from the constructor
  void SaveState() REQUIRES(mu_);

  const config::AgentConfig config_;
  const transport::Identity& identity_;
  scheduler::JobController& controller_;
  const Clock& clock_;
  LogFn log_;
  // How backups open their device: the privileged helper under privsep
  // (agent/privsep), else null (ops::Backup opens it itself).
  const DeviceOpener open_device_;
  peerstore::PeerStore* held_ = nullptr;   // set_held, before Plan
  peerstore::ReadHolds* holds_ = nullptr;
  // One log entry at `priority`, with the job's fields.
  void Log(const std::string& line, Priority priority = Priority::kInfo,
           const LogFields& fields = {}) const {
    log_(priority, line, fields);
  }
  // The backup key, unlocked by the first job (Argon2id once per daemon).
  const std::unique_ptr<KeyCache> key_cache_ = ProcessKeyCache();

  mutable Mutex mu_;
  std::optional<directory::DirectoryView> view_ GUARDED_BY(mu_);  // latest read
  std::set<std::string> active_ GUARDED_BY(mu_);  // queued or running, by name
  std::map<std::string, int64_t> last_success_ GUARDED_BY(mu_);  // name -> Unix s (jobs.json)
  std::map<std::string, int64_t> last_failure_ GUARDED_BY(mu_);  // name -> Unix s (this run)
  bool repair_wanted_ GUARDED_BY(mu_) = false;
  // Overdue bookkeeping (jobs.json): when each backup job was first planned,
  // which last successes ran forced, the last failure.
  std::map<std::string, int64_t> first_planned_ GUARDED_BY(mu_);
  std::set<std::string> forced_success_ GUARDED_BY(mu_);  // job names
  std::string last_error_ GUARDED_BY(mu_);
  int64_t last_error_time_ GUARDED_BY(mu_) = 0;
  std::set<std::string> overdue_said_ GUARDED_BY(mu_);    // job names, until a success
  std::map<std::string, uint64_t> queued_id_ GUARDED_BY(mu_);  // name -> controller job id
  std::map<std::string, bool> running_forced_ GUARDED_BY(mu_);  // name -> submitted forced
  NotifyFn notify_ GUARDED_BY(mu_);
  std::set<std::string> policy_warned_ GUARDED_BY(mu_);  // kPolicyDiffers said already
  std::string idle_reason_ GUARDED_BY(mu_);
};

}  // namespace sparetime::daemon

#endif  // SPARETIME_AGENT_DAEMON_SCHEDULED_JOBS_H_
