// End-to-end checkpoint + restore of real processes on this host: the probe
// programs of tests/migration/programs and an unmodified Debian binary.
// Needs root (clone3 set_tid); skipped otherwise.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <fstream>
#include <thread>

#include "migration_testing.h"
#include "sparetime/imaging/pack_store.h"
#include "sparetime/migration/checkpoint.h"
#include "sparetime/migration/image_store.h"
#include "sparetime/migration/restore.h"
#include "testutil/testutil.h"

namespace sparetime::migration {
namespace {

using namespace std::chrono_literals;
using sparetime::PackStore;
using sparetime::testing::TempDir;
using testing::Child;
using testing::HasLineStartingWith;
using testing::ProgramPath;
using testing::ReadLines;
using testing::WaitUntil;

class CheckpointRestoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!sparetime::testing::IsRoot()) GTEST_SKIP() << "needs root (clone3 set_tid, ptrace)";
  }
  TempDir tmp_;
};

size_t LineCount(const std::string& path) { return ReadLines(path).size(); }

// What zdtm compares before and after: the maps, the fds with their flags,
// and a few /proc attributes.
std::string VisibleState(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid);
  std::string state;
  for (std::string l : ReadLines(dir + "/maps")) {
    // A shared anonymous mapping is a new shmem object: only its inode differs.
    if (l.find("/dev/zero (deleted)") != std::string::npos) l = l.substr(0, l.find(" 00:")) + " shmem";
    state += l + "\n";
  }
  for (int fd = 0; fd < 64; ++fd) {
    char link[512];
    ssize_t n = ::readlink((dir + "/fd/" + std::to_string(fd)).c_str(), link, sizeof link);
    if (n < 0) continue;
    state += "fd " + std::to_string(fd) + " " + std::string(link, static_cast<size_t>(n));
    for (const auto& l : ReadLines(dir + "/fdinfo/" + std::to_string(fd)))
      if (l.rfind("flags:", 0) == 0) state += " " + l;
    state += "\n";
  }
  char exe[512];
  ssize_t n = ::readlink((dir + "/exe").c_str(), exe, sizeof exe);
  state += "exe " + std::string(exe, n > 0 ? static_cast<size_t>(n) : 0) + "\n";
  for (const auto& l : ReadLines(dir + "/status"))
    for (const char* key : {"Name:", "Umask:", "Uid:", "Gid:", "SigBlk:", "SigIgn:", "SigCgt:", "CapEff:"})
      if (l.rfind(key, 0) == 0) state += l + "\n";
  for (const auto& l : ReadLines(dir + "/cmdline")) state += "cmdline " + l + "\n";
  return state;
}

// The counter's lines are 0, 1, 2, ... with "usr1 N" and a final "done N heap-ok".
void ExpectCounterLog(const std::string& path, bool expect_usr1) {
  auto lines = ReadLines(path);
  ASSERT_FALSE(lines.empty());
  unsigned long next = 0;
  bool saw_usr1 = false, saw_done = false;
  for (const auto& l : lines) {
    if (l.rfind("usr1 ", 0) == 0) {
      saw_usr1 = true;
    } else if (l.rfind("done ", 0) == 0) {
      saw_done = true;
      EXPECT_NE(l.find("heap-ok"), std::string::npos) << l;
    } else {
      ASSERT_EQ(l, std::to_string(next)) << "counter log of " << path << " is not sequential";
      ++next;
    }
  }
  EXPECT_TRUE(saw_done);
  EXPECT_EQ(saw_usr1, expect_usr1);
}

TEST_F(CheckpointRestoreTest, CounterContinuesWithSamePidFileOffsetAndHandler) {
  const std::string out = tmp_ / "counter.log";
  Child child(ProgramPath("mig_counter"), {out});
  ASSERT_GT(child.pid(), 0);
  ASSERT_TRUE(WaitUntil([&] { return LineCount(out) >= 20; }));
  const std::string before = VisibleState(child.pid());

  auto image = Checkpoint(child.pid());
  ASSERT_TRUE(image.ok()) << image.error().ToString();
  EXPECT_EQ(image->pid, child.pid());
  EXPECT_EQ(testing::ProcState(child.pid()), '?') << "the source must be gone after a checkpoint";
  const size_t at_checkpoint = LineCount(out);

  // Through chunks and the image file, as the CLI does.
  auto loaded = testing::ThroughImageFile(*image, tmp_.path());
  ASSERT_TRUE(loaded.ok()) << loaded.error().ToString();

  auto pid = Restore(*loaded);
  ASSERT_TRUE(pid.ok()) << pid.error().ToString();
  EXPECT_EQ(*pid, child.pid());
  ASSERT_TRUE(WaitUntil([&] { return LineCount(out) >= at_checkpoint + 20; }))
      << "restored counter does not count (state " << testing::ProcState(*pid) << ")";
  EXPECT_EQ(VisibleState(*pid), before);
  ASSERT_EQ(::kill(*pid, SIGUSR1), 0);
  ASSERT_TRUE(WaitUntil([&] { return HasLineStartingWith(out, "usr1 "); })) << "SIGUSR1 handler lost";
  ASSERT_EQ(::kill(*pid, SIGTERM), 0);
  int status = child.WaitExit(5000ms);
  ASSERT_TRUE(WIFEXITED(status)) << "wait status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  ExpectCounterLog(out, /*expect_usr1=*/true);
}

TEST_F(CheckpointRestoreTest, ItimerAndReadBlockedInSyscallResume) {
  const std::string out = tmp_ / "timer.log";
  Child child(ProgramPath("mig_timer"), {out});
  ASSERT_TRUE(WaitUntil([&] { return LineCount(out) >= 10; }));
  auto image = Checkpoint(child.pid());
  ASSERT_TRUE(image.ok()) << image.error().ToString();
  EXPECT_NE(image->itimers[ITIMER_REAL].interval_usec, 0) << "the itimer was not saved";
  const size_t at_checkpoint = LineCount(out);
  auto pid = Restore(*image);
  ASSERT_TRUE(pid.ok()) << pid.error().ToString();
  // Ticks only come from the restored itimer through the restored handler
  // and pipe, read by the restarted read(2).
  ASSERT_TRUE(WaitUntil([&] { return LineCount(out) >= at_checkpoint + 10; }))
      << sparetime::testing::RunCommand("cat /proc/" + std::to_string(*pid) + "/status /proc/" +
                                        std::to_string(*pid) + "/wchan; tail -3 " + out).out;
  ASSERT_EQ(::kill(*pid, SIGUSR1), 0);
  ASSERT_TRUE(WaitUntil([&] { return HasLineStartingWith(out, "usr1"); }));
  ASSERT_EQ(::kill(*pid, SIGTERM), 0);
  int status = child.WaitExit(5000ms);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  EXPECT_FALSE(HasLineStartingWith(out, "read-error"));
  EXPECT_TRUE(HasLineStartingWith(out, "done "));
}

TEST_F(CheckpointRestoreTest, PipeKeepsItsBufferedData) {
  const std::string out = tmp_ / "pipe.log";
  Child child(ProgramPath("mig_pipe"), {out});
  ASSERT_TRUE(WaitUntil([&] { return LineCount(out) >= 10; }));
  auto image = Checkpoint(child.pid());
  ASSERT_TRUE(image.ok()) << image.error().ToString();
  ASSERT_EQ(image->pipes.size(), 1u);
  EXPECT_GE(image->pipes[0].data.size(), 2900u) << "the buffered pipe data was not saved";
  const size_t at_checkpoint = LineCount(out);
  auto pid = Restore(*image);
  ASSERT_TRUE(pid.ok()) << pid.error().ToString();
  ASSERT_TRUE(WaitUntil([&] { return LineCount(out) >= at_checkpoint + 10; }));
  ASSERT_EQ(::kill(*pid, SIGTERM), 0);
  int status = child.WaitExit(5000ms);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  auto lines = ReadLines(out);
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(lines.back().find(" ok"), std::string::npos) << lines.back();
}

TEST_F(CheckpointRestoreTest, LeaveRunningKeepsTheSourceGoingAndThePidTaken) {
  const std::string out = tmp_ / "counter.log";
  Child child(ProgramPath("mig_counter"), {out});
  ASSERT_TRUE(WaitUntil([&] { return LineCount(out) >= 10; }));
  CheckpointOptions options;
  options.leave_running = true;
  auto image = Checkpoint(child.pid(), options);
  ASSERT_TRUE(image.ok()) << image.error().ToString();
  const size_t after = LineCount(out);
  ASSERT_TRUE(WaitUntil([&] { return LineCount(out) >= after + 10; })) << "the source stopped counting";
  EXPECT_NE(testing::ProcState(child.pid()), 't');

  RestoreOptions restore_options;
  restore_options.check_files = false;  // the running source keeps writing its log
  auto restored = Restore(*image, restore_options);
  ASSERT_FALSE(restored.ok());
  EXPECT_EQ(restored.error().code(), ErrorCode::kAlreadyExists) << restored.error().ToString();
  EXPECT_NE(restored.error().message().find("PID " + std::to_string(child.pid()) + " is in use"), std::string::npos);

  ASSERT_EQ(::kill(child.pid(), SIGTERM), 0);
  int status = child.WaitExit(5000ms);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  ExpectCounterLog(out, /*expect_usr1=*/false);
}

// A failure at any step of the dump leaves the source running as before.
TEST_F(CheckpointRestoreTest, FailureAtAnyStepResumesTheSourceIntact) {
  const std::string out = tmp_ / "counter.log";
  Child child(ProgramPath("mig_counter"), {out});
  ASSERT_TRUE(WaitUntil([&] { return LineCount(out) >= 10; }));
  for (const char* step : {"registers", "memory", "injected", "signals", "files", "attributes", "done"}) {
    CheckpointOptions options;
    options.step_hook = [&](std::string_view s) {
      return s == step ? Cancelled(std::string("injected failure at ") + step) : Status::Ok();
    };
    auto image = Checkpoint(child.pid(), options);
    ASSERT_FALSE(image.ok()) << step;
    EXPECT_EQ(image.error().code(), ErrorCode::kCancelled) << image.error().ToString();
    const size_t after = LineCount(out);
    ASSERT_TRUE(WaitUntil([&] { return LineCount(out) >= after + 5; })) << "source stuck after failure at " << step;
  }
  ASSERT_EQ(::kill(child.pid(), SIGUSR1), 0);
  ASSERT_TRUE(WaitUntil([&] { return HasLineStartingWith(out, "usr1 "); })) << "handler lost after failed dumps";
  ASSERT_EQ(::kill(child.pid(), SIGTERM), 0);
  int status = child.WaitExit(5000ms);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  ExpectCounterLog(out, /*expect_usr1=*/true);
}

TEST_F(CheckpointRestoreTest, RestoreRefusesAChangedFile) {
  const std::string out = tmp_ / "counter.log";
  Child child(ProgramPath("mig_counter"), {out});
  ASSERT_TRUE(WaitUntil([&] { return LineCount(out) >= 10; }));
  auto image = Checkpoint(child.pid());
  ASSERT_TRUE(image.ok()) << image.error().ToString();
  {
    std::ofstream append(out, std::ios::app);
    append << "tampered\n";
  }
  auto pid = Restore(*image);
  ASSERT_FALSE(pid.ok());
  EXPECT_EQ(pid.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(pid.error().message().find(out), std::string::npos) << pid.error().ToString();
  EXPECT_NE(pid.error().message().find("changed since the checkpoint"), std::string::npos);
  EXPECT_EQ(testing::ProcState(child.pid()), '?') << "nothing may be left behind";
}

TEST_F(CheckpointRestoreTest, MappingsProtectionsXstateAndTaskStateSurvive) {
  const std::string out = tmp_ / "state.log";
  ASSERT_EQ(::mkdir((tmp_ / "workdir").c_str(), 0755), 0);
  for (const char* f : {"private.dat", "shared.dat"})
    sparetime::testing::WriteFileOrDie(tmp_ / f, sparetime::testing::RandomBytes(3 * 4096, 7));
  Child child(ProgramPath("mig_state"), {out, tmp_ / "workdir", tmp_ / "private.dat", tmp_ / "shared.dat"});
  ASSERT_TRUE(WaitUntil([&] { return LineCount(out) >= 5; }));
  const std::string before = VisibleState(child.pid());
  auto image = Checkpoint(child.pid());
  ASSERT_TRUE(image.ok()) << image.error().ToString();
  EXPECT_NE(image->rseq_addr, 0u);
  const size_t at_checkpoint = LineCount(out);
  auto pid = Restore(*image);
  ASSERT_TRUE(pid.ok()) << pid.error().ToString();
  ASSERT_TRUE(WaitUntil([&] { return LineCount(out) >= at_checkpoint + 5; }));
  EXPECT_EQ(VisibleState(*pid), before);
  ASSERT_EQ(::kill(*pid, SIGUSR2), 0);
  std::this_thread::sleep_for(20ms);
  ASSERT_EQ(::kill(*pid, SIGTERM), 0);
  int status = child.WaitExit(5000ms);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  auto lines = ReadLines(out);
  for (const auto& l : lines) EXPECT_EQ(l.find("bad"), std::string::npos) << l;
  EXPECT_EQ(lines.back(), "done ok");
  // The shared file mapping wrote through to the file, once.
  EXPECT_EQ(static_cast<char>(sparetime::testing::ReadFileOrDie(tmp_ / "shared.dat")[0]), 'W');
}

// A different kernel (vDSO) or CPU (xsave layout) is refused before anything
// runs, and the half-built process is gone (the PID is free again).
TEST_F(CheckpointRestoreTest, RestoreRefusesAnotherVdsoOrXsaveLayout) {
  const std::string out = tmp_ / "counter.log";
  Child child(ProgramPath("mig_counter"), {out});
  ASSERT_TRUE(WaitUntil([&] { return LineCount(out) >= 5; }));
  auto image = Checkpoint(child.pid());
  ASSERT_TRUE(image.ok()) << image.error().ToString();

  ProcessImage other_kernel = *image;
  other_kernel.pages[other_kernel.vdso.code.first * 4096 + 100] ^= std::byte{1};
  auto r1 = Restore(other_kernel);
  ASSERT_FALSE(r1.ok());
  EXPECT_EQ(r1.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(r1.error().message().find("vDSO differs"), std::string::npos) << r1.error().ToString();
  EXPECT_EQ(testing::ProcState(child.pid()), '?');

  ProcessImage other_cpu = *image;
  other_cpu.xcr0 ^= 0x4;
  auto r2 = Restore(other_cpu);
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.error().message().find("xsave layout"), std::string::npos) << r2.error().ToString();
  EXPECT_EQ(testing::ProcState(child.pid()), '?');

  // The untouched image still restores afterwards.
  auto pid = Restore(*image);
  ASSERT_TRUE(pid.ok()) << pid.error().ToString();
  ASSERT_EQ(::kill(*pid, SIGTERM), 0);
  int status = child.WaitExit(5000ms);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  ExpectCounterLog(out, /*expect_usr1=*/false);
}

// An unmodified Debian program stopped inside clock_nanosleep.
TEST_F(CheckpointRestoreTest, DebianSleepResumesAndExitsNormally) {
  Child child("/bin/sleep", {"0.6"});
  ASSERT_TRUE(WaitUntil([&] { return testing::ProcState(child.pid()) == 'S'; }));
  std::this_thread::sleep_for(100ms);
  auto image = Checkpoint(child.pid());
  ASSERT_TRUE(image.ok()) << image.error().ToString();
  auto start = std::chrono::steady_clock::now();
  auto pid = Restore(*image);
  ASSERT_TRUE(pid.ok()) << pid.error().ToString();
  int status = child.WaitExit(5000ms);
  ASSERT_TRUE(WIFEXITED(status)) << "wait status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // The interrupted sleep restarts (EINTR -> coreutils sleeps again).
  EXPECT_GE(std::chrono::steady_clock::now() - start, 200ms);
}

}  // namespace
}  // namespace sparetime::migration
