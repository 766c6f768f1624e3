// JobController (see job_controller.h): the loop thread decides and opens or
// closes the gate; job threads pass through the gate.
//
// Invariants: idle_ (the gate) changes only in Decide() on the loop thread;
// at most one job thread exists, and only the loop thread starts and joins
// it; JobInfo fields are written under mu_ and events are emitted outside it.
#include "sparetime/scheduler/job_controller.h"

#include <algorithm>
#include <future>
#include <stop_token>
#include <thread>

#include "sparetime/base/allocator.h"
#include "sparetime/base/mutex.h"
#include "sparetime/base/token_bucket.h"
#include "sparetime/scheduler/job_priority.h"

namespace sparetime::scheduler {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

std::string_view JobStateName(JobState state) {
  switch (state) {
    case JobState::kQueued: return "queued";
    case JobState::kRunning: return "running";
    case JobState::kPaused: return "paused";
    case JobState::kSucceeded: return "succeeded";
    case JobState::kFailed: return "failed";
    case JobState::kCancelled: return "cancelled";
  }
  return "unknown";
}

class JobController::Impl final : public PauseGate {
 public:
  Impl(const SystemReader& reader, IdlePolicy policy, const Clock& clock,
       JobControllerOptions options)
      : clock_(clock),
        options_(WithWatcher(std::move(options))),
        sensors_(reader, clock, options_.sensors),
        detector_(std::move(policy), clock),
        bucket_(options_.bytes_per_second, 0, clock) {}

  ~Impl() override { StopJobThread(); }

  uint64_t Submit(std::string name, JobFn fn, bool forced) EXCLUDES(mu_) {
    MutexLock l(mu_);
    Job job;
    job.info.id = ++last_id_;
    job.info.name = std::move(name);
    job.info.forced = forced;
    job.info.since = clock_.WallNow();
    job.fn = std::move(fn);
    jobs_.push_back(std::move(job));
    return jobs_.back().info.id;
  }

  void Run(const std::atomic<bool>& stop, bool until_done);

  bool SetRunWhenBusy(uint64_t id) EXCLUDES(mu_) {
    {
      MutexLock l(mu_);
      auto it = std::find_if(jobs_.begin(), jobs_.end(), [id](const Job& j) { return j.info.id == id; });
      if (it == jobs_.end() || it->info.state != JobState::kQueued) return false;
      it->info.forced = true;
    }
    Wake();
    return true;
  }

  std::vector<JobInfo> Jobs() const EXCLUDES(mu_) {
    MutexLock l(mu_);
    std::vector<JobInfo> out;
    for (const Job& j : jobs_) out.push_back(j.info);
    return out;
  }
  std::optional<Decision> LastDecision() const EXCLUDES(mu_) {
    MutexLock l(mu_);
    return last_decision_;
  }
  void SetPolicy(IdlePolicy policy) EXCLUDES(mu_) {
    MutexLock l(mu_);
    pending_policy_ = std::move(policy);
  }
  void set_rate(uint64_t bytes_per_second) { bucket_.set_rate(bytes_per_second); }
  void Wake() EXCLUDES(mu_) {
    {
      MutexLock l(mu_);
      wake_ = true;
    }
    wake_cv_.notify_all();
    if (options_.watcher) options_.watcher->Wake();
  }

  Status WaitWhilePaused(uint64_t bytes) override EXCLUDES(mu_);

 private:
  // The gate of an overdue job: the byte-rate limit and stop, not idleness.
  class ForcedGate final : public PauseGate {
   public:
    explicit ForcedGate(Impl& impl) : impl_(impl) {}
    Status WaitWhilePaused(uint64_t bytes) override {
      if (!impl_.bucket_.Acquire(bytes, impl_.stop_.get_token())) return StoppingError();
      MutexLock l(impl_.mu_);
      if (impl_.stopping_) return StoppingError();
      return Status::Ok();
    }

   private:
    Impl& impl_;
  };

  struct Job {
    JobInfo info;
    JobFn fn;
  };

  static JobControllerOptions WithWatcher(JobControllerOptions o) {
    o.sensors.user.input_watcher = o.watcher;
    return o;
  }
  static Status StoppingError() {
    return Cancelled(
        "the job controller is stopping; the job resumes from its last checkpoint when run again");
  }

  // Loop-thread steps. Each returns the events to emit (outside mu_).
  steady_clock::time_point Decide(std::vector<ControllerEvent>* events) EXCLUDES(mu_);
  void StartNextJob(std::vector<ControllerEvent>* events) EXCLUDES(mu_);
  void ReapJob(std::vector<ControllerEvent>* events) EXCLUDES(mu_);
  void CancelAll(std::vector<ControllerEvent>* events) EXCLUDES(mu_);
  // Waits up to `d` for input (true), a Wake() or the time to pass (false).
  bool WaitForInput(steady_clock::duration d) EXCLUDES(mu_);
  void StopJobThread() EXCLUDES(mu_);
  void Emit(const std::vector<ControllerEvent>& events) const;
  // Moves a job (an element of jobs_) to `state` and returns its event.
  ControllerEvent SetState(Job& job, JobState state, std::string detail) REQUIRES(mu_);
  bool AllFinished() const EXCLUDES(mu_);

  const Clock& clock_;
  const JobControllerOptions options_;
  SensorSet sensors_;       // loop thread only
  IdleDetector detector_;   // loop thread only
  TokenBucket bucket_;
  std::stop_source stop_;   // stops the job's gate
  std::string watcher_error_;  // loop thread only; set once the watcher failed
  std::jthread job_thread_;    // loop thread (and destructor) only

  mutable Mutex mu_;
  std::condition_variable_any gate_cv_;  // idle_ or stopping_ changed
  std::condition_variable_any wake_cv_;  // wake_ set
  bool wake_ GUARDED_BY(mu_) = false;
  bool idle_ GUARDED_BY(mu_) = false;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::optional<Decision> last_decision_ GUARDED_BY(mu_);
  std::optional<IdlePolicy> pending_policy_ GUARDED_BY(mu_);
  // Every queued job, the active one and the kKeepFinished newest finished
  // ones (older finished jobs are dropped when a job finishes).
  std::vector<Job> jobs_ GUARDED_BY(mu_);
  uint64_t last_id_ GUARDED_BY(mu_) = 0;
  std::optional<size_t> active_ GUARDED_BY(mu_);  // index into jobs_
  bool active_returned_ GUARDED_BY(mu_) = false;
  ForcedGate forced_gate_{*this};
};

ControllerEvent JobController::Impl::SetState(Job& job, JobState state, std::string detail) {
  job.info.state = state;
  job.info.since = clock_.WallNow();
  job.info.detail = std::move(detail);
  if (state == JobState::kPaused) ++job.info.pauses;
  ControllerEvent e;
  e.kind = ControllerEvent::Kind::kJob;
  e.job = job.info;
  return e;
}

void JobController::Impl::Emit(const std::vector<ControllerEvent>& events) const {
  if (!options_.on_event) return;
  for (const ControllerEvent& e : events) options_.on_event(e);
}

bool JobController::Impl::AllFinished() const {
  MutexLock l(mu_);
  for (const Job& j : jobs_) {
    if (!j.info.finished()) return false;
  }
  return true;
}

steady_clock::time_point JobController::Impl::Decide(std::vector<ControllerEvent>* events) {
  {
    MutexLock l(mu_);
    if (pending_policy_) {
      detector_.SetPolicy(std::move(*pending_policy_));
      pending_policy_.reset();
    }
  }
  Sample sample = sensors_.Read();
  Decision d = detector_.Decide(sample);
  if (!watcher_error_.empty()) d.warnings.push_back(watcher_error_);
  bool opened = false;
  {
    MutexLock l(mu_);
    bool flipped = !last_decision_ || last_decision_->idle != d.idle;
    last_decision_ = d;
    if (flipped) {
      ControllerEvent e;
      e.decision = d;
      events->push_back(std::move(e));
    }
    if (d.idle != idle_) {
      idle_ = d.idle;
      opened = idle_;
      if (active_ && !active_returned_ && !jobs_[*active_].info.forced) {
        Job& job = jobs_[*active_];
        std::string why = d.reasons.empty() ? "" : d.reasons.front();
        events->push_back(idle_ ? SetState(job, JobState::kRunning, "")
                                : SetState(job, JobState::kPaused, why));
      }
    }
  }
  if (opened) gate_cv_.notify_all();
  return d.next_check;
}

void JobController::Impl::StartNextJob(std::vector<ControllerEvent>* events) {
  size_t index = 0;
  JobFn fn;
  bool forced = false;
  {
    MutexLock l(mu_);
    if (active_) return;
    // While busy only an overdue job may start.
    while (index < jobs_.size() && (jobs_[index].info.state != JobState::kQueued ||
                                    (!idle_ && !jobs_[index].info.forced))) {
      ++index;
    }
    if (index == jobs_.size()) return;
    active_ = index;
    active_returned_ = false;
    fn = std::move(jobs_[index].fn);
    forced = jobs_[index].info.forced;
  }
  std::promise<PriorityReport> lowered;
  std::future<PriorityReport> report = lowered.get_future();
  bool lower = options_.lower_priority || forced;
  PauseGate* gate = forced ? static_cast<PauseGate*>(&forced_gate_) : this;
  job_thread_ = std::jthread([this, index, fn = std::move(fn), lower, gate,
                              lowered = std::move(lowered)]() mutable {
    lowered.set_value(lower ? LowerCurrentThreadPriority() : PriorityReport{});
    JobProgressFn progress = [this, index](uint64_t done, uint64_t total) {
      MutexLock l(mu_);
      jobs_[index].info.bytes_done = done;
      jobs_[index].info.bytes_total = total;
    };
    Status result = fn(*gate, progress);
    {
      MutexLock l(mu_);
      jobs_[index].info.result = std::move(result);
      active_returned_ = true;
    }
    Wake();
  });
  std::string priority = report.get().Describe();  // at once: the thread's first step
  MutexLock l(mu_);
  Job& job = jobs_[index];
  job.info.priority = std::move(priority);
  // Still idle unless the job already finished (Decide runs on this thread).
  if (!active_returned_) events->push_back(SetState(job, JobState::kRunning, ""));
}

void JobController::Impl::ReapJob(std::vector<ControllerEvent>* events) {
  {
    MutexLock l(mu_);
    if (!active_ || !active_returned_) return;
  }
  if (job_thread_.joinable()) job_thread_.join();
  // The job's chunk buffers are free now; the allocator keeps freed buffers
  // while work runs (base/allocator.h), an idle daemon should not.
  ReleaseFreeMemory();
  MutexLock l(mu_);
  Job& job = jobs_[*active_];
  const Status& r = job.info.result;
  JobState state = r.ok()                                ? JobState::kSucceeded
                   : r.code() == ErrorCode::kCancelled ? JobState::kCancelled
                                                         : JobState::kFailed;
  events->push_back(SetState(job, state, r.ok() ? "" : r.message()));
  active_.reset();
  // No job thread now, so no index into jobs_ is held: drop old history.
  size_t finished = 0;
  for (const Job& j : jobs_) finished += j.info.finished() ? 1 : 0;
  for (auto it = jobs_.begin(); finished > kKeepFinished && it != jobs_.end();) {
    if (it->info.finished()) {
      it = jobs_.erase(it);
      --finished;
    } else {
      ++it;
    }
  }
}

void JobController::Impl::StopJobThread() {
  {
    MutexLock l(mu_);
    stopping_ = true;
  }
  stop_.request_stop();
  gate_cv_.notify_all();
  if (job_thread_.joinable()) job_thread_.join();
}

void JobController::Impl::CancelAll(std::vector<ControllerEvent>* events) {
  StopJobThread();
  {
    MutexLock l(mu_);
    if (active_) active_returned_ = true;  // joined: it has returned
  }
  ReapJob(events);
  MutexLock l(mu_);
  for (Job& job : jobs_) {
    if (job.info.state == JobState::kQueued) {
      events->push_back(SetState(job, JobState::kCancelled, "stopped before the box was idle"));
      job.info.result = Cancelled(job.info.name + " was stopped before the box was idle");
    }
  }
}

bool JobController::Impl::WaitForInput(steady_clock::duration d) {
  auto timeout = std::chrono::duration_cast<milliseconds>(d);
  if (options_.watcher && watcher_error_.empty()) {
    Result<bool> input = options_.watcher->Wait(timeout);
    {
      MutexLock l(mu_);
      wake_ = false;
    }
    if (input.ok()) return *input;
    watcher_error_ = "input watcher: " + input.status().ToString() +
                     "; input is now seen only at the periodic checks";
    return false;
  }
  MutexLock l(mu_);
  l.WaitFor(wake_cv_, timeout, [this]() REQUIRES(mu_) { return wake_; });
  wake_ = false;
  return false;
}

void JobController::Impl::Run(const std::atomic<bool>& stop, bool until_done) {
  steady_clock::time_point next_check = clock_.MonoNow();
  bool decide_now = true;
  while (!stop.load()) {
    std::vector<ControllerEvent> events;
    if (decide_now || clock_.MonoNow() >= next_check) {
      next_check = Decide(&events);
      decide_now = false;
    }
    ReapJob(&events);
    StartNextJob(&events);
    Emit(events);
    if (until_done && AllFinished()) return;
    auto left = std::clamp<steady_clock::duration>(next_check - clock_.MonoNow(),
                                                   steady_clock::duration::zero(),
                                                   options_.max_wait);
    bool input = WaitForInput(left);
    MutexLock l(mu_);
    // Input while idle: decide now, which sees it and backs off. While busy
    // the decision's next_check already accounts for new input.
    if (input && idle_) decide_now = true;
  }
  std::vector<ControllerEvent> events;
  CancelAll(&events);
  Emit(events);
}

Status JobController::Impl::WaitWhilePaused(uint64_t bytes) {
  for (;;) {
    {
      MutexLock l(mu_);
      // Bounded slices: stopping_ is also re-checked without a notification.
      while (!idle_ && !stopping_) {
        l.WaitFor(gate_cv_, std::chrono::seconds(1), [this]() REQUIRES(mu_) { return idle_ || stopping_; });
      }
      if (stopping_) return StoppingError();
    }
    if (!bucket_.Acquire(bytes, stop_.get_token())) return StoppingError();
    MutexLock l(mu_);
    if (stopping_) return StoppingError();
    if (idle_) return Status::Ok();
    // Paused while waiting for the rate limit: wait for the gate again.
  }
}

JobController::JobController(const SystemReader& reader, IdlePolicy policy, const Clock& clock,
                             JobControllerOptions options)
    : impl_(std::make_unique<Impl>(reader, std::move(policy), clock, std::move(options))) {}
JobController::~JobController() = default;
bool JobController::SetRunWhenBusy(uint64_t id) { return impl_->SetRunWhenBusy(id); }
uint64_t JobController::Submit(std::string name, JobFn fn, bool run_when_busy) {
  return impl_->Submit(std::move(name), std::move(fn), run_when_busy);
}
void JobController::Run(const std::atomic<bool>& stop, bool until_done) {
  impl_->Run(stop, until_done);
}
std::vector<JobInfo> JobController::Jobs() const { return impl_->Jobs(); }
std::optional<Decision> JobController::LastDecision() const { return impl_->LastDecision(); }
void JobController::SetPolicy(IdlePolicy policy) { impl_->SetPolicy(std::move(policy)); }
void JobController::set_rate(uint64_t bytes_per_second) { impl_->set_rate(bytes_per_second); }
void JobController::Wake() { impl_->Wake(); }

}  // namespace sparetime::scheduler
