// IdleJobs: the JobController wiring, and BackupWhenIdle (see idle_jobs.h).
#include "sparetime/ops/idle_jobs.h"

#include <optional>

#include "sparetime/directory/policy.h"
#include "sparetime/ops/directory_policy.h"

namespace sparetime::ops {

IdleSettings AgentIdleSettings(const config::AgentConfig& config,
                               const directory::DirectoryView& view) {
  directory::EffectivePolicy policy = directory::ResolvePolicy(view, config.name);
  return {.policy = AgentIdlePolicy(policy, config),
          .bytes_per_second = JobByteRate(policy),
          .utmp = config.utmp};
}

Result<std::unique_ptr<IdleJobs>> IdleJobs::Create(
    IdleSettings settings, const Clock& clock,
    std::function<void(const scheduler::ControllerEvent&)> on_event,
    const std::function<void(const Warning&)>& warn) {
  ST_RETURN_IF_ERROR(settings.policy.Validate());
  std::unique_ptr<IdleJobs> jobs(new IdleJobs());
  Result<std::unique_ptr<scheduler::InputWatcher>> watcher =
      scheduler::InputWatcher::Create(jobs->system_, clock, settings.utmp);
  if (watcher.ok()) {
    jobs->watcher_ = std::move(watcher).value();
  } else if (warn) {
    warn(Warning::About(Warning::Kind::kNoInputWatcher, watcher.status().message()));
  }
  jobs->logind_ = scheduler::NewLogindIdleHintSource();
  scheduler::JobControllerOptions options;
  options.sensors.user.utmp_path = settings.utmp;
  options.sensors.user.logind = jobs->logind_.get();
  options.watcher = jobs->watcher_.get();
  options.bytes_per_second = settings.bytes_per_second;
  options.on_event = std::move(on_event);
  jobs->controller_ = std::make_unique<scheduler::JobController>(
      jobs->system_, std::move(settings.policy), clock, std::move(options));
  return jobs;
}

IdleJobs::~IdleJobs() = default;

Status IdleJobs::Apply(const IdleSettings& settings) {
  ST_RETURN_IF_ERROR(settings.policy.Validate());
  controller_->SetPolicy(settings.policy);
  controller_->set_rate(settings.bytes_per_second);
  return Status::Ok();
}

Result<Snapshot> BackupWhenIdle(Backups& backups, BackupRequest request, IdleJobs& jobs,
                                const std::atomic<bool>& stop, IdleRunReport* report) {
  const Clock& clock = request.clock ? *request.clock : SystemClock();
  std::optional<Result<Snapshot>> result;
  const auto submitted = clock.MonoNow();
  std::optional<std::chrono::steady_clock::time_point> started;
  scheduler::JobController& controller = jobs.controller();
  const uint64_t id = controller.Submit(
      "backup " + request.device,
      [&](PauseGate& gate, const scheduler::JobProgressFn& progress) -> Status {
        started = clock.MonoNow();
        BackupRequest job = request;
        job.pause = &gate;
        job.progress = [&progress, bar = request.progress](const ProgressInfo& p) {
          if (bar) bar(p);
          progress(p.bytes_done, p.bytes_total);
        };
        result = Backup(backups, job);
        return result->status();
      });
  controller.Run(stop, /*until_done=*/true);
  if (report != nullptr) {
    for (const scheduler::JobInfo& job : controller.Jobs()) {
      if (job.id != id) continue;
      report->pauses = job.pauses;
      report->priority = job.priority;
    }
    report->waited_seconds =
        std::chrono::duration<double>(started.value_or(clock.MonoNow()) - submitted).count();
  }
  if (result) return std::move(*result);
  return Cancelled("interrupted while waiting for the box to be idle; nothing was read");
}

}  // namespace sparetime::ops
