// JobController over a fake tree, a fake clock and a FIFO standing in for
// an input device: a job waits while the box is busy, starts when idle,
// pauses within a second of input (measured on the job's own I/O calls),
// resumes where it left off; a busy box is not re-sampled in a loop; the
// byte rate, policy changes, failures, stop and the job thread's priority.
#include "sparetime/scheduler/job_controller.h"

#include <gtest/gtest.h>
#include <linux/input.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <sched.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <thread>

#include "../../scheduler/src/ioprio_abi.h"
#include "scheduler_testing.h"

namespace sparetime::scheduler {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;
using std::chrono::system_clock;
using testing::FakeClock;
using testing::FakeTree;

// Polls `pred` every 5 ms for up to `limit`.
bool WaitFor(const std::function<bool()>& pred, milliseconds limit = milliseconds(3000)) {
  auto end = steady_clock::now() + limit;
  while (steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return pred();
}

// Counts how often the sensors are read (each SensorSet::Read asks logind once).
class CountingHint final : public IdleHintSource {
 public:
  Result<std::optional<IdleHint>> Read() override {
    ++reads;
    return std::optional<IdleHint>();
  }
  std::atomic<int> reads{0};
};

// A job of `units` steps; records when each step passed the gate. The state
// is shared with the job function, so a test that fails early cannot leave
// the job thread writing to a destroyed object.
class StepJob {
 public:
  explicit StepJob(int units, uint64_t bytes_per_unit = 1)
      : s_(std::make_shared<State>(units, bytes_per_unit)) {}
  JobFn Fn() {
    return [s = s_](PauseGate& gate, const JobProgressFn& progress) -> Status {
      for (int i = 0; i < s->units; ++i) {
        ST_RETURN_IF_ERROR(gate.WaitWhilePaused(s->bytes));
        {
          std::lock_guard l(s->mu);
          s->passes.push_back(steady_clock::now());
        }
        progress(static_cast<uint64_t>(i + 1), static_cast<uint64_t>(s->units));
        std::this_thread::sleep_for(s->step);
      }
      return Status::Ok();
    };
  }
  void set_step(milliseconds d) { s_->step = d; }
  size_t passes() const {
    std::lock_guard l(s_->mu);
    return s_->passes.size();
  }
  steady_clock::time_point last_pass() const {
    std::lock_guard l(s_->mu);
    return s_->passes.empty() ? steady_clock::time_point() : s_->passes.back();
  }

 private:
  struct State {
    State(int u, uint64_t b) : units(u), bytes(b) {}
    const int units;
    const uint64_t bytes;
    milliseconds step{2};  // set before the job starts
    std::mutex mu;
    std::vector<steady_clock::time_point> passes;
  };
  std::shared_ptr<State> s_;
};

class JobControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_.MkFifo("/dev/input/event0");
    auto w = InputWatcher::Create(tree_.reader(), clock_);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    watcher_ = std::move(w).value();
    auto writer = OpenFile(tree_.HostPath("/dev/input/event0"), O_WRONLY | O_NONBLOCK);
    ASSERT_TRUE(writer.ok()) << writer.status().ToString();
    keyboard_ = std::move(writer).value();
    policy_.idle_after = seconds(10);
    policy_.settle = seconds(0);
    policy_.resume_delay = seconds(0);
  }
  void TearDown() override { StopLoop(); }
  // Tests call this before their jobs' captures go out of scope.
  void StopLoop() {
    stop_ = true;
    if (controller_) controller_->Wake();
    if (loop_.joinable()) loop_.join();
  }

  JobController& Make(uint64_t rate = 0) {
    JobControllerOptions o;
    o.sensors.user.logind = &hint_;
    o.watcher = watcher_.get();
    o.bytes_per_second = rate;
    o.max_wait = milliseconds(20);
    o.on_event = [this](const ControllerEvent& e) {
      std::lock_guard l(events_mu_);
      if (e.kind == ControllerEvent::Kind::kJob) {
        events_.push_back(e.job.name + " " + std::string(JobStateName(e.job.state)));
      } else {
        events_.push_back(e.decision.idle ? "idle" : "busy");
      }
    };
    controller_ = std::make_unique<JobController>(tree_.reader(), policy_, clock_, std::move(o));
    return *controller_;
  }
  void Start(bool until_done = true) {
    loop_ = std::thread([this, until_done] { controller_->Run(stop_, until_done); });
  }
  JobInfo Job(size_t i = 0) const { return controller_->Jobs().at(i); }
  void Type() {
    struct input_event ev {};
    ev.type = EV_KEY;
    ev.code = KEY_A;
    ev.value = 1;
    ASSERT_EQ(::write(keyboard_.get(), &ev, sizeof ev), static_cast<ssize_t>(sizeof ev));
  }
  std::vector<std::string> Events() {
    std::lock_guard l(events_mu_);
    return events_;
  }

  FakeTree tree_;
  // Starts at the real time: the FIFO's times are "just now" (user active).
  FakeClock clock_{system_clock::now()};
  std::unique_ptr<InputWatcher> watcher_;
  Fd keyboard_;
  CountingHint hint_;
  IdlePolicy policy_;
  std::unique_ptr<JobController> controller_;
  std::atomic<bool> stop_{false};
  std::thread loop_;
  std::mutex events_mu_;
  std::vector<std::string> events_;
};

TEST_F(JobControllerTest, WaitsWhileBusyRunsWhenIdlePausesOnInputAndResumes) {
  StepJob job(400);
  JobController& c = Make();
  c.Submit("backup test", job.Fn());
  Start();

  // Busy: the input device was touched "just now".
  ASSERT_TRUE(WaitFor([&] { return c.LastDecision().has_value(); }));
  EXPECT_FALSE(c.LastDecision()->idle);
  EXPECT_NE(c.LastDecision()->reasons.at(0).find("user active on input/event0"),
            std::string::npos);
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(Job().state, JobState::kQueued);
  EXPECT_EQ(job.passes(), 0u);

  clock_.Advance(seconds(11));
  ASSERT_TRUE(WaitFor([&] { return Job().state == JobState::kRunning && job.passes() > 10; }));
  EXPECT_TRUE(c.LastDecision()->idle);

  auto typed = steady_clock::now();
  Type();
  ASSERT_TRUE(WaitFor([&] { return Job().state == JobState::kPaused; }));
  auto paused_seen = steady_clock::now();
  EXPECT_LT(paused_seen - typed, seconds(1));
  size_t passes_at_pause = job.passes();
  std::this_thread::sleep_for(milliseconds(300));
  // The job's I/O stopped within a second of the input, and stays stopped.
  EXPECT_EQ(job.passes(), passes_at_pause);
  EXPECT_LT(job.last_pass() - typed, seconds(1));
  JobInfo paused = Job();
  EXPECT_EQ(paused.pauses, 1);
  EXPECT_NE(paused.detail.find("user active on input/event0"), std::string::npos);
  EXPECT_LT(paused.bytes_done, 400u);
  EXPECT_EQ(paused.bytes_total, 400u);

  clock_.Advance(seconds(11));  // quiet for idle_after again
  ASSERT_TRUE(WaitFor([&] { return Job().finished(); }, milliseconds(10000)));
  loop_.join();
  JobInfo done = Job();
  EXPECT_EQ(done.state, JobState::kSucceeded) << done.detail;
  EXPECT_TRUE(done.result.ok());
  EXPECT_EQ(done.bytes_done, 400u);
  EXPECT_EQ(job.passes(), 400u);  // resumed where it stopped: no step repeated or lost
  EXPECT_EQ(Events(), (std::vector<std::string>{"busy", "idle", "backup test running", "busy",
                                                "backup test paused", "idle",
                                                "backup test running",
                                                "backup test succeeded"}));
}

TEST_F(JobControllerTest, ABusyBoxIsNotResampledInALoop) {
  StepJob job(1);
  JobController& c = Make();
  c.Submit("j", job.Fn());
  Start();
  ASSERT_TRUE(WaitFor([&] { return c.LastDecision().has_value(); }));
  // Busy until 10 s (fake) from now: the loop waits in 20 ms slices but
  // samples only at the decision's next_check.
  std::this_thread::sleep_for(milliseconds(400));
  EXPECT_EQ(hint_.reads.load(), 1);
  // Input while busy does not trigger sampling either.
  Type();
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(hint_.reads.load(), 1);
  clock_.Advance(seconds(11));
  ASSERT_TRUE(WaitFor([&] { return Job().finished(); }));
  EXPECT_GE(hint_.reads.load(), 2);
}

TEST_F(JobControllerTest, IdleBoxIsResampledAtTheIdleInterval) {
  clock_.Advance(seconds(11));
  StepJob job(1000000);
  job.set_step(milliseconds(1));
  JobController& c = Make();
  c.Submit("j", job.Fn());
  Start(false);
  ASSERT_TRUE(WaitFor([&] { return Job().state == JobState::kRunning; }));
  int reads = hint_.reads.load();
  std::this_thread::sleep_for(milliseconds(200));
  EXPECT_EQ(hint_.reads.load(), reads);  // the fake second has not passed
  clock_.Advance(seconds(1));
  EXPECT_TRUE(WaitFor([&] { return hint_.reads.load() > reads; }));
  StopLoop();
}

TEST_F(JobControllerTest, JobBytesFollowTheRateLimit) {
  clock_.Advance(seconds(11));
  StepJob job(10, 500);
  job.set_step(milliseconds(0));
  JobController& c = Make(/*rate=*/1000);
  c.Submit("j", job.Fn());
  auto start = clock_.MonoNow();
  Start();
  ASSERT_TRUE(WaitFor([&] { return Job().finished(); }));
  // 5000 bytes at 1000 B/s with a 1000-byte burst: 4 s of (fake) waiting.
  double waited = std::chrono::duration<double>(clock_.MonoNow() - start).count();
  EXPECT_NEAR(waited, 4.0, 0.2);
  EXPECT_EQ(Job().state, JobState::kSucceeded);
}

TEST_F(JobControllerTest, APolicyChangeAppliesAtTheNextDecision) {
  clock_.Advance(seconds(11));
  StepJob job(1000000);
  job.set_step(milliseconds(1));
  JobController& c = Make();
  c.Submit("j", job.Fn());
  Start(false);
  ASSERT_TRUE(WaitFor([&] { return Job().state == JobState::kRunning; }));
  IdlePolicy strict = policy_;
  strict.idle_after = std::chrono::hours(1);
  c.SetPolicy(strict);
  clock_.Advance(seconds(1));  // the next idle check
  EXPECT_TRUE(WaitFor([&] { return Job().state == JobState::kPaused; }));
  EXPECT_NE(Job().detail.find("user active"), std::string::npos);
  StopLoop();
}

TEST_F(JobControllerTest, StopCancelsThePausedJobAndTheQueuedOnes) {
  clock_.Advance(seconds(11));
  StepJob first(1000000), second(1);
  first.set_step(milliseconds(1));
  JobController& c = Make();
  c.Submit("first", first.Fn());
  c.Submit("second", second.Fn());
  Start(false);
  EXPECT_TRUE(WaitFor([&] { return Job(0).state == JobState::kRunning; }));
  Type();
  EXPECT_TRUE(WaitFor([&] { return Job(0).state == JobState::kPaused; }));
  auto stop_at = steady_clock::now();
  StopLoop();
  EXPECT_LT(steady_clock::now() - stop_at, seconds(2));
  JobInfo a = Job(0), b = Job(1);
  EXPECT_EQ(a.state, JobState::kCancelled);
  EXPECT_EQ(a.result.code(), ErrorCode::kCancelled);
  EXPECT_NE(a.detail.find("resumes from its last checkpoint"), std::string::npos);
  EXPECT_EQ(b.state, JobState::kCancelled);
  EXPECT_EQ(b.result.code(), ErrorCode::kCancelled);
  EXPECT_EQ(second.passes(), 0u);
}

TEST_F(JobControllerTest, AFailedJobReportsItsErrorAndTheNextOneRuns) {
  clock_.Advance(seconds(11));
  StepJob second(3);
  JobController& c = Make();
  c.Submit("broken", [](PauseGate& gate, const JobProgressFn&) -> Status {
    ST_RETURN_IF_ERROR(gate.WaitWhilePaused(1));
    return IoError("/dev/sdz: read at offset 4096: Input/output error");
  });
  c.Submit("second", second.Fn());
  Start();
  ASSERT_TRUE(WaitFor([&] { return Job(1).finished(); }));
  EXPECT_EQ(Job(0).state, JobState::kFailed);
  EXPECT_EQ(Job(0).detail, "/dev/sdz: read at offset 4096: Input/output error");
  EXPECT_EQ(Job(1).state, JobState::kSucceeded);
}

// A daemon runs jobs for months: only the newest finished ones are kept
// (with ids that keep counting), never the queued ones.
TEST_F(JobControllerTest, OnlyTheNewestFinishedJobsAreKept) {
  clock_.Advance(seconds(11));
  JobController& c = Make();
  const size_t total = JobController::kKeepFinished + 5;
  for (size_t i = 0; i < total; ++i) {
    c.Submit("job " + std::to_string(i),
             [](PauseGate& gate, const JobProgressFn&) { return gate.WaitWhilePaused(1); });
  }
  Start();
  ASSERT_TRUE(WaitFor([&] {
    std::vector<JobInfo> jobs = c.Jobs();
    return !jobs.empty() && jobs.back().finished() && jobs.back().id == total;
  }));
  StopLoop();
  std::vector<JobInfo> jobs = c.Jobs();
  ASSERT_EQ(jobs.size(), JobController::kKeepFinished);
  EXPECT_EQ(jobs.front().name, "job 5");
  EXPECT_EQ(jobs.front().id, 6u);
  for (const JobInfo& j : jobs) EXPECT_EQ(j.state, JobState::kSucceeded) << j.name;
  EXPECT_EQ(c.Submit("one more", [](PauseGate&, const JobProgressFn&) { return Status::Ok(); }),
            total + 1);
}

TEST_F(JobControllerTest, JobsRunAtTheLowestPriority) {
  clock_.Advance(seconds(11));
  int nice = 0, policy = -1, io_priority = -1;
  JobController& c = Make();
  c.Submit("probe", [&](PauseGate&, const JobProgressFn&) -> Status {
    errno = 0;
    nice = ::getpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()));
    policy = ::sched_getscheduler(0);
    io_priority = static_cast<int>(::syscall(SYS_ioprio_get, ioprio::kWhoProcess, 0));
    return Status::Ok();
  });
  Start();
  ASSERT_TRUE(WaitFor([&] { return Job().finished(); }));
  std::string priority = Job().priority;
  // Lowering the nice value is always allowed; the I/O class and SCHED_IDLE
  // may be refused (seccomp), which the report then says.
  EXPECT_EQ(nice, 19) << priority;
  if (priority.find("not set") == std::string::npos) {
    EXPECT_EQ(priority, "I/O class idle, nice 19, SCHED_IDLE");
    EXPECT_EQ(policy, SCHED_IDLE);
    EXPECT_EQ(ioprio::ClassOf(io_priority), ioprio::kClassIdle);
  }
  // The controller's own thread keeps its priority.
  EXPECT_EQ(::getpriority(PRIO_PROCESS, 0), 0);
}

// Issue 23 part 6: a never-idle box. An overdue job (run_when_busy) starts
// while the box is busy, is not paused by input, keeps the byte-rate limit
// and runs at idle I/O priority, nice 19; an ordinary job queued beside it
// still waits for idle. A queued job promoted later (SetRunWhenBusy) starts.
TEST_F(JobControllerTest, AnOverdueJobRunsOnABusyBoxAtTheLowestPriorityAndRate) {
  StepJob waiting(1);
  StepJob overdue(10, 500);
  overdue.set_step(milliseconds(0));
  int nice = 0, io_priority = -1;
  JobController& c = Make(/*rate=*/1000);
  c.Submit("ordinary", waiting.Fn());
  c.Submit("backup overdue",
           [&, fn = overdue.Fn()](PauseGate& gate, const JobProgressFn& progress) -> Status {
             nice = ::getpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()));
             io_priority = static_cast<int>(::syscall(SYS_ioprio_get, ioprio::kWhoProcess, 0));
             return fn(gate, progress);
           },
           /*run_when_busy=*/true);
  auto start = clock_.MonoNow();
  Start(false);
  ASSERT_TRUE(WaitFor([&] { return c.LastDecision().has_value(); }));
  Type();  // and more input while it runs: never a pause
  ASSERT_TRUE(WaitFor([&] { return Job(1).finished(); }, milliseconds(10000)));
  EXPECT_FALSE(c.LastDecision()->idle);
  JobInfo done = Job(1);
  EXPECT_EQ(done.state, JobState::kSucceeded) << done.detail;
  EXPECT_TRUE(done.forced);
  EXPECT_EQ(done.pauses, 0);
  EXPECT_EQ(overdue.passes(), 10u);
  // 5000 bytes at 1000 B/s with a 1000-byte burst: 4 s of (fake) waiting.
  EXPECT_NEAR(std::chrono::duration<double>(clock_.MonoNow() - start).count(), 4.0, 0.2);
  EXPECT_EQ(nice, 19) << done.priority;
  if (done.priority.find("not set") == std::string::npos) {
    EXPECT_EQ(ioprio::ClassOf(io_priority), ioprio::kClassIdle);
  }
  // The ordinary job still waits for an idle box.
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(Job(0).state, JobState::kQueued);
  EXPECT_FALSE(Job(0).forced);
  EXPECT_EQ(waiting.passes(), 0u);
  // It becomes overdue too: promoted, it runs on the busy box.
  EXPECT_TRUE(c.SetRunWhenBusy(Job(0).id));
  ASSERT_TRUE(WaitFor([&] { return Job(0).finished(); }));
  EXPECT_EQ(Job(0).state, JobState::kSucceeded);
  EXPECT_EQ(waiting.passes(), 1u);
  EXPECT_FALSE(c.SetRunWhenBusy(Job(0).id));  // finished: nothing to promote
  EXPECT_FALSE(c.LastDecision()->idle);
  StopLoop();
}

}  // namespace
}  // namespace sparetime::scheduler
