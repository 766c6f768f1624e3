// ops::IdleJobs: the one wiring of the scheduler's JobController — the
// system reader, the input watcher on /dev/input and the users' terminals,
// logind's idle hint, the idle policy and the byte rate. sparetimed
// (agent/daemon/agent_loop.cc) keeps one for its lifetime;
// `sparetime backup --when-idle` makes one for its single job
// (BackupWhenIdle).
//
// IdleSettings are what the idle policy, byte rate and utmp file are for
// an agent: the directory's effective policy for it plus sparetime.conf's
// [scheduler] (AgentIdleSettings), or the built-in defaults without an
// agent config.
//
// Invariants: the controller's policy always passes IdlePolicy::Validate()
// (Create and Apply refuse one that does not); the watcher and logind
// source outlive the controller (declared before it).
//
// Thread safety: controller() is thread safe (see job_controller.h); Apply
// from any thread.
#ifndef SPARETIME_OPS_IDLE_JOBS_H_
#define SPARETIME_OPS_IDLE_JOBS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "sparetime/base/clock.h"
#include "sparetime/base/status.h"
#include "sparetime/config/config.h"
#include "sparetime/directory/records.h"
#include "sparetime/imaging/catalog.h"
#include "sparetime/ops/backup.h"
#include "sparetime/ops/backups.h"
#include "sparetime/scheduler/idle_policy.h"
#include "sparetime/scheduler/input_watcher.h"
#include "sparetime/scheduler/job_controller.h"
#include "sparetime/scheduler/logind.h"

namespace sparetime::ops {

struct IdleSettings {
  scheduler::IdlePolicy policy;
  uint64_t bytes_per_second = 0;  // 0: unlimited
  std::string utmp = "/run/utmp";
};

// The directory's policy for `config.name` with the config's [scheduler].
IdleSettings AgentIdleSettings(const config::AgentConfig& config,
                               const directory::DirectoryView& view);

class IdleJobs {
 public:
  // `warn` gets kNoInputWatcher when input cannot be watched (the jobs
  // still run; input is seen at the periodic checks). `on_event` (may be
  // empty) sees every decision and job state change.
  static Result<std::unique_ptr<IdleJobs>> Create(
      IdleSettings settings, const Clock& clock,
      std::function<void(const scheduler::ControllerEvent&)> on_event,
      const std::function<void(const Warning&)>& warn);
  ~IdleJobs();

  scheduler::JobController& controller() { return *controller_; }
  // A new policy and rate (the directory changed).
  Status Apply(const IdleSettings& settings);

 private:
  IdleJobs() = default;
  scheduler::SystemReader system_;
  std::unique_ptr<scheduler::InputWatcher> watcher_;  // null when unavailable
  std::unique_ptr<scheduler::IdleHintSource> logind_;
  std::unique_ptr<scheduler::JobController> controller_;
};

// What happened while a --when-idle backup was scheduled.
struct IdleRunReport {
  int pauses = 0;
  std::string priority;       // "I/O class idle, nice 19, SCHED_IDLE"
  double waited_seconds = 0;  // until the box was first idle
};

// Runs Backup(backups, request) as the only job of `jobs` until it ends or
// `stop` is set (kCancelled "nothing was read" when that happens before
// it started). The job's gate replaces request.pause.
Result<Snapshot> BackupWhenIdle(Backups& backups, BackupRequest request, IdleJobs& jobs,
                                const std::atomic<bool>& stop, IdleRunReport* report);

}  // namespace sparetime::ops

#endif  // SPARETIME_OPS_IDLE_JOBS_H_
