// `sparetime backup --when-idle` with real signals: a real pseudo-terminal
// of a logged-in user (named in a utmp file given with --utmp) and a real
// loop device (an image file when not root). Typing into the terminal pauses
// the running backup within a second — seen in its state line and in its
// device reads (the reader thread's /proc/PID/task/TID/io rchar) stopping — it resumes after the idle period
// and the snapshot restores byte-identical and equals an uninterrupted
// backup's; interrupted while paused, a rerun resumes from the journal. With
// the load checks on, others' CPU load backs the job off after --load-grace.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utmp.h>

#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include "scheduler/scheduler_testing.h"
#include "sparetime/base/fd.h"
#include "testutil/cli_runner.h"
#include "testutil/testutil.h"

namespace sparetime {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;
using testing::CliRunner;
using testing::CommandResult;
using testing::LoopDevice;
using testing::TempDir;

constexpr uint64_t kImageBytes = 8ull << 20;
// 64 KiB chunks at 2 MiB/s: 32 reads a second, ~3 s for the whole image.

std::string ReadText(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Bytes read so far (rchar) by /proc/PID/io or /proc/PID/task/TID/io; -1
// once it is gone.
int64_t ReadChars(const std::string& io_path) {
  std::ifstream f(io_path);
  std::string key;
  int64_t value = 0;
  while (f >> key >> value) {
    if (key == "rchar:") return value;
  }
  return -1;
}

// The io files of the process's threads, with their rchar now.
std::map<std::string, int64_t> ThreadReads(int pid) {
  std::string task_dir = "/proc/" + std::to_string(pid) + "/task";
  std::map<std::string, int64_t> out;
  Result<std::vector<std::string>> tids = scheduler::SystemReader("/").ListDir(task_dir);
  if (!tids.ok()) return out;
  for (const std::string& tid : *tids) {
    std::string io = task_dir + "/" + tid + "/io";
    out[io] = ReadChars(io);
  }
  return out;
}

// Waits up to `limit` until one thread of `pid` has read `bytes` more than at
// the call: the imager's reader thread, the only one reading the device
// (others read /proc and the repository's index). Its io file, or "" on
// timeout. Polls, because on a loaded box the job (SCHED_IDLE) may be slow
// to get a CPU.
std::string WaitForReader(int pid, int64_t bytes, milliseconds limit) {
  std::map<std::string, int64_t> start = ThreadReads(pid);
  auto end = steady_clock::now() + limit;
  while (steady_clock::now() < end) {
    std::this_thread::sleep_for(milliseconds(10));
    for (const auto& [io, n] : ThreadReads(pid)) {
      auto it = start.find(io);
      if (n - (it == start.end() ? 0 : it->second) >= bytes) return io;
    }
  }
  return "";
}

// Polls every 5 ms until the log holds `needle` (after byte `from`); the time
// it was first seen, or nullopt after `limit`.
std::optional<steady_clock::time_point> WaitForLine(const std::string& log, const std::string& needle,
                                                    milliseconds limit, size_t from = 0) {
  auto end = steady_clock::now() + limit;
  while (steady_clock::now() < end) {
    std::string text = ReadText(log);
    if (text.size() > from && text.find(needle, from) != std::string::npos) {
      return steady_clock::now();
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
  return std::nullopt;
}

// Waits up to `limit` for the child to exit; its exit code, or -1.
int WaitExit(int pid, milliseconds limit) {
  auto end = steady_clock::now() + limit;
  while (steady_clock::now() < end) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::this_thread::sleep_for(milliseconds(20));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  return -1;
}

using scheduler::testing::Pty;

class IdleBackup : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!pty_.ok()) GTEST_SKIP() << "no pseudo-terminals here";
    image_ = tmp_ / "disk.img";
    testing::WriteFileOrDie(image_, testing::RandomBytes(kImageBytes, 5));
    if (testing::IsRoot()) {
      loop_ = std::make_unique<LoopDevice>(image_);
      device_ = loop_->path();
    } else {
      device_ = image_;
    }
    // The test's user is logged in on the pty.
    std::ofstream(utmp_, std::ios::binary)
        << scheduler::testing::UtmpRecord(USER_PROCESS, pty_.line(), "tester");
    cli_.Init("--chunk-size 65536");
  }
  // `load`: how the job treats others' load (by default it ignores it).
  std::string IdleBackupArgs(int idle_after_seconds = 2, const std::string& bwlimit = "2M",
                             const std::string& load = "--ignore-load") const {
    return "backup " + device_ + " --when-idle " + load + " --idle-after " +
           std::to_string(idle_after_seconds) + " --bwlimit " + bwlimit +
           " --checkpoint-mib 1 --utmp " + utmp_;
  }

  Pty pty_;
  TempDir tmp_;
  std::string image_, device_;
  std::unique_ptr<LoopDevice> loop_;
  std::string utmp_ = tmp_ / "utmp";
  CliRunner cli_{tmp_ / "repo", "idle test passphrase"};
};

TEST_F(IdleBackup, TypingPausesWithinASecondThenItResumesAndCompletes) {
  std::string log = tmp_ / "backup.log";
  int pid = cli_.Start(IdleBackupArgs(), log);
  ASSERT_TRUE(WaitForLine(log, ": running (", seconds(30))) << ReadText(log);
  // Running: its device reads advance.
  std::string reader_io = WaitForReader(pid, 512 << 10, seconds(60));
  ASSERT_FALSE(reader_io.empty()) << "no device reads within 60 s\n" << ReadText(log);
  size_t log_size = ReadText(log).size();
  auto typed = steady_clock::now();
  pty_.Type("ls\n");
  // The reader thread's rchar every 2 ms for 1.5 s: when did the device reads stop?
  steady_clock::time_point last_read = typed;
  int64_t last = ReadChars(reader_io);
  while (steady_clock::now() - typed < milliseconds(1500)) {
    std::this_thread::sleep_for(milliseconds(2));
    int64_t now = ReadChars(reader_io);
    if (now > last) last_read = steady_clock::now();
    last = now;
  }
  std::string text = ReadText(log);
  ASSERT_NE(text.find(": paused at ", log_size), std::string::npos) << text;
  EXPECT_NE(text.find("user active on " + pty_.line(), log_size), std::string::npos) << text;
  auto stopped_after = std::chrono::duration_cast<milliseconds>(last_read - typed);
  EXPECT_LT(stopped_after, milliseconds(1000)) << "reads went on after the keystroke";
  std::printf("back-off: device reads stopped %lld ms after the keystroke\n",
              static_cast<long long>(stopped_after.count()));

  // Idle again 2 s after the keystroke: it resumes where it stopped and completes.
  auto resumed = WaitForLine(log, ": running again at ", seconds(30), log_size);
  ASSERT_TRUE(resumed) << ReadText(log);
  EXPECT_GE(*resumed - typed, milliseconds(1900));
  ASSERT_EQ(WaitExit(pid, seconds(120)), 0) << ReadText(log);
  text = ReadText(log);
  EXPECT_NE(text.find(": succeeded"), std::string::npos) << text;
  EXPECT_NE(text.find("I/O class idle, nice 19"), std::string::npos) << text;

  CommandResult r = cli_.Run("restore latest --to " + tmp_ / "restored.img");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(testing::SameBytes(tmp_ / "restored.img", image_, kImageBytes));
  // The same snapshot as an uninterrupted backup of the same device.
  nlohmann::json plain = cli_.Backup(device_);
  r = cli_.Run("--json snapshots");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json snaps = nlohmann::json::parse(r.out);
  ASSERT_EQ(snaps.size(), 2u);
  EXPECT_EQ(snaps[0]["manifest"], snaps[1]["manifest"]);
  EXPECT_EQ(plain["manifest"], snaps[0]["manifest"]);
}

TEST_F(IdleBackup, InterruptedWhilePausedARerunResumesFromTheJournal) {
  std::string log = tmp_ / "backup.log";
  int pid = cli_.Start(IdleBackupArgs(), log);
  ASSERT_TRUE(WaitForLine(log, ": running (", seconds(30))) << ReadText(log);
  // Well past the 1 MiB checkpoint: some progress is journaled.
  ASSERT_FALSE(WaitForReader(pid, 3 << 20, seconds(60)).empty()) << ReadText(log);
  pty_.Type("x\n");
  ASSERT_TRUE(WaitForLine(log, ": paused at ", seconds(5))) << ReadText(log);
  ::kill(pid, SIGINT);
  EXPECT_EQ(WaitExit(pid, seconds(10)), 8) << ReadText(log);  // interrupted; rerun to resume

  CommandResult r = cli_.Run("--json " + IdleBackupArgs(0, "0"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json snap = nlohmann::json::parse(r.out);
  EXPECT_GT(snap["stats"]["resumed_chunks"].get<uint64_t>(), 0u);
  EXPECT_EQ(snap["idle"]["pauses"], 0);
  r = cli_.Run("restore latest --to " + tmp_ / "restored.img");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(testing::SameBytes(tmp_ / "restored.img", image_, kImageBytes));
}

// Spins on every core at normal priority until killed: others' CPU load.
class CpuHog {
 public:
  CpuHog() {
    for (unsigned i = 0; i < std::max(1u, std::thread::hardware_concurrency()); ++i) {
      pid_t pid = ::fork();
      if (pid == 0) {
        volatile uint64_t spins = 0;
        for (;;) spins = spins + 1;
      }
      if (pid > 0) pids_.push_back(pid);
    }
  }
  ~CpuHog() { Stop(); }
  void Stop() {
    for (pid_t pid : pids_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    pids_.clear();
  }

 private:
  std::vector<pid_t> pids_;
};

// Without --ignore-load: the job runs while the box is quiet, others' CPU
// load over the threshold backs it off once --load-grace has passed (not at
// once), it resumes when the load is gone and the snapshot is whole. Runs
// alone (RUN_SERIAL): other tests' CPU would be load too.
TEST_F(IdleBackup, OthersLoadBacksTheJobOffAfterTheLoadGrace) {
  std::string log = tmp_ / "backup.log";
  int pid = cli_.Start(IdleBackupArgs(0, "1M", "--load-grace 2"), log);
  ASSERT_TRUE(WaitForLine(log, ": running (", seconds(60))) << ReadText(log);
  size_t log_size = ReadText(log).size();
  auto loaded = steady_clock::now();
  CpuHog hog;
  auto paused = WaitForLine(log, ": paused at ", seconds(15), log_size);
  ASSERT_TRUE(paused) << ReadText(log);
  std::string text = ReadText(log);
  EXPECT_NE(text.find("cpu ", log_size), std::string::npos) << text;
  EXPECT_GE(*paused - loaded, milliseconds(1900)) << "backed off before the 2 s grace\n" << text;
  std::printf("back-off on CPU load: paused %lld ms after the load started\n",
              static_cast<long long>(
                  std::chrono::duration_cast<milliseconds>(*paused - loaded).count()));
  hog.Stop();
  ASSERT_TRUE(WaitForLine(log, ": running again at ", seconds(60), log_size)) << ReadText(log);
  ASSERT_EQ(WaitExit(pid, seconds(120)), 0) << ReadText(log);
  CommandResult r = cli_.Run("restore latest --to " + tmp_ / "restored.img");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(testing::SameBytes(tmp_ / "restored.img", image_, kImageBytes));
}

}  // namespace
}  // namespace sparetime
