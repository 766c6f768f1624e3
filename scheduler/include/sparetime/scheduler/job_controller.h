// JobController: runs background jobs (a device backup; later scrub, repair,
// prune) only while the box is idle, and gets them out of the way within a
// second when someone comes back.
//
// One controller loop (Run) samples the sensors and asks the IdleDetector,
// at the decision's next_check. In between it waits on the InputWatcher, so
// input wakes it at once: while idle, any input event triggers a fresh
// decision, which sees the input and backs off. A busy box is re-sampled only
// at next_check (bounded by the detector: 1 s .. 10 min), never in a tight
// loop; the loop itself wakes at most every `max_wait` to look at stop and
// job completion, without sampling.
//
// Jobs run one at a time, in submission order, each on its own thread with
// the lowest CPU and I/O priority (job_priority.h), started at the first idle
// decision. A job calls gate.WaitWhilePaused(bytes) before each unit of I/O:
// the gate is open while idle and closed while busy, and passes bytes at the
// byte-rate limit (a TokenBucket; 0 = unlimited). Pausing therefore stops the
// job's I/O after at most the read in progress; resuming continues in the
// same run where it stopped. (The imager also journals its progress, so a
// job interrupted by a stop or an agent restart resumes from its last
// checkpoint on the next run.)
//
// An overdue job (Submit with run_when_busy: a device whose last backup is
// older than the policy's max age on a box that is never idle) starts even
// while the box is busy, when no other job is active, and is never paused
// for activity: its gate applies only the byte-rate limit. It runs at the
// same lowest priority (idle I/O class, nice 19, SCHED_IDLE) whatever
// lower_priority says. JobInfo::forced marks it.
//
// States: queued -> running <-> paused -> succeeded | failed | cancelled.
// Stopping the loop cancels the running job (its gate returns kCancelled)
// and the queued ones, and joins the job thread.
//
// Thread safety: Run once, from one thread. Submit, Jobs, LastDecision,
// SetPolicy, set_rate and Wake from any thread. on_event is called from the
// loop thread only.
#ifndef SPARETIME_SCHEDULER_JOB_CONTROLLER_H_
#define SPARETIME_SCHEDULER_JOB_CONTROLLER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sparetime/base/clock.h"
#include "sparetime/base/pause_gate.h"
#include "sparetime/base/status.h"
#include "sparetime/scheduler/idle_detector.h"
#include "sparetime/scheduler/idle_policy.h"
#include "sparetime/scheduler/input_watcher.h"
#include "sparetime/scheduler/sample.h"
#include "sparetime/scheduler/system_reader.h"

namespace sparetime::scheduler {

enum class JobState { kQueued, kRunning, kPaused, kSucceeded, kFailed, kCancelled };
std::string_view JobStateName(JobState state);  // "queued", "running", ...

struct JobInfo {
  uint64_t id = 0;
  std::string name;  // "backup /dev/sdb"
  JobState state = JobState::kQueued;
  std::chrono::system_clock::time_point since;  // when it entered `state`
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  int pauses = 0;
  std::string priority;  // PriorityReport::Describe() once started
  bool forced = false;   // run_when_busy: not held back by a busy box
  // paused: the first reason the box is busy; failed/cancelled: the error.
  std::string detail;
  Status result;  // the job's return value once finished
  bool finished() const { return state >= JobState::kSucceeded; }
};

// Reports the job's progress in bytes; cheap, call it as often as convenient.
using JobProgressFn = std::function<void(uint64_t done, uint64_t total)>;
// The work. Runs on the job thread; calls gate.WaitWhilePaused before each
// unit of I/O and returns its error (kCancelled) when it fails.
using JobFn = std::function<Status(PauseGate& gate, const JobProgressFn& progress)>;

struct ControllerEvent {
  enum class Kind { kDecision, kJob };
  Kind kind = Kind::kDecision;
  Decision decision;  // kDecision: the idle state changed (idle <-> busy)
  JobInfo job;        // kJob: a job changed state
};

struct JobControllerOptions {
  SensorSetOptions sensors;  // sensors.user.input_watcher is set to `watcher`
  // Woken on input (may be null: then only periodic decisions, which still
  // see input through tty and /dev/input access times, 8 s granular).
  InputWatcher* watcher = nullptr;
  uint64_t bytes_per_second = 0;  // 0: unlimited
  bool lower_priority = true;     // idle I/O class, nice 19, SCHED_IDLE for jobs
  // Longest single wait of the loop (stop and job completion are seen
  // sooner through Wake()).
  std::chrono::milliseconds max_wait{1000};
  std::function<void(const ControllerEvent&)> on_event;
};

class JobController {
 public:
  // REQUIRES: policy.Validate().ok().
  JobController(const SystemReader& reader, IdlePolicy policy, const Clock& clock,
                JobControllerOptions options);
  ~JobController();  // cancels and joins a running job
  JobController(const JobController&) = delete;
  JobController& operator=(const JobController&) = delete;

  // Queues a job; returns its id.
  // With `run_when_busy`, see "An overdue job" above.
  uint64_t Submit(std::string name, JobFn fn, bool run_when_busy = false);
  // Makes a queued job run_when_busy (it became overdue while waiting for an
  // idle box); false when it is not queued any more.
  bool SetRunWhenBusy(uint64_t id);

  // The loop. Returns when `stop` becomes true, or, with `until_done`, once
  // every submitted job has finished.
  void Run(const std::atomic<bool>& stop, bool until_done);

  // Queued, running and paused jobs, and the kKeepFinished newest finished
  // ones, in submission order.
  static constexpr size_t kKeepFinished = 16;
  std::vector<JobInfo> Jobs() const;
  // The latest decision, if any was made.
  std::optional<Decision> LastDecision() const;
  // Applied at the next decision (the hysteresis state is kept).
  void SetPolicy(IdlePolicy policy);
  void set_rate(uint64_t bytes_per_second);
  // Makes the loop look at its state (and stop) now.
  void Wake();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sparetime::scheduler

#endif  // SPARETIME_SCHEDULER_JOB_CONTROLLER_H_
