// `sparetime checkpoint` / `restore-process` with real, unmodified Debian
// programs caught mid-run: sha256sum over a 200 MB file, gzip writing a
// file, perl with signal handlers and an itimer. Each is checkpointed to a
// file (left stopped), killed, restored with `--wait`, and must produce
// exactly what an uninterrupted run produces. Also: refusals leave the
// source running, --leave-running, a taken PID, and a second checkpoint of
// a similar process storing far fewer bytes (dedup in the migration store).
// Needs root (ptrace, clone3 set_tid); skipped otherwise.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <functional>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>

#include "../migration/migration_testing.h"
#include "testutil/testutil.h"

namespace sparetime::testing {
namespace {

using migration::testing::Child;
using migration::testing::HasLineStartingWith;
using migration::testing::ProcState;
using migration::testing::ReadLines;
using namespace std::chrono_literals;

// A perl job with a USR1 handler printing a counter, a 10 ms ITIMER_REAL
// counting alarms, and 200k hash entries built before the first signal. It
// ends after the third USR1, once the timer has ticked five more times, with
// a digest of the hash: all of its output is deterministic.
constexpr char kPerlJob[] = R"(use strict; use warnings; use Time::HiRes qw(setitimer ITIMER_REAL);
$| = 1;
my ($usr1, $alarms) = (0, 0);
$SIG{USR1} = sub { $usr1++; print "usr1 $usr1\n"; };
$SIG{ALRM} = sub { $alarms++; };
setitimer(ITIMER_REAL, 0.01, 0.01);
my %h; my $x = 1;
for my $i (1 .. 200000) { $x = ($x * 1103515245 + 12345) % 2147483648; $h{$i} = $x; }
print "ready\n";
select(undef, undef, undef, 0.01) while $usr1 < 3;
my $t = $alarms;
select(undef, undef, undef, 0.01) while $alarms < $t + 5;
setitimer(ITIMER_REAL, 0, 0);  # no SIGALRM once perl drops its handlers at exit
my $sum = 0;
$sum = ($sum * 31 + $h{$_}) % 1000000007 for sort { $a <=> $b } keys %h;
print "sum $sum\ntimer still ticking\n";
)";

// Holds the first 16 MiB of the file named by its argument, then sleeps.
constexpr char kPerlHolder[] =
    R"($| = 1; open(my $f, '<', $ARGV[0]) or die; read($f, my $s, 16 << 20); close $f; print "ready\n"; sleep 1 while 1;)";

class MigrationCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!IsRoot()) GTEST_SKIP() << "needs root (ptrace, clone3 set_tid)";
  }

  std::string Cli(const std::string& args) {
    return std::string(SPARETIME_CLI) + " " + args + " --store " + ShellQuote(tmp_ / "store");
  }
  CommandResult Checkpoint(pid_t pid, const std::string& image, const std::string& extra = "") {
    return RunCommand(Cli("checkpoint " + std::to_string(pid) + " --to " + ShellQuote(image) + " --json " + extra));
  }
  CommandResult RestoreAndWait(const std::string& image) {
    return RunCommand(Cli("restore-process " + ShellQuote(image) + " --wait"));
  }
  // Kills a source that a checkpoint left stopped, so that its PID is free.
  void KillStopped(Child& child) {
    EXPECT_EQ(ProcState(child.pid()), 'T') << "checkpoint leaves the source stopped";
    ASSERT_EQ(::kill(child.pid(), SIGKILL), 0);
    ASSERT_NE(child.WaitExit(5000ms), -1);
  }
  void CheckpointAndKill(Child& child, const std::string& image) {
    CommandResult r = Checkpoint(child.pid(), image);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    KillStopped(child);
  }
  // Starts `program args > out` and checkpoints it (left stopped, then killed
  // so that its PID is free) once `started` holds. `mid_run`, asked of the
  // stopped source, says whether it was caught before its end. On a busy
  // machine the program can finish before `sparetime checkpoint` attaches;
  // that is no fault of the checkpoint, so it starts over, 3 times at most.
  void CheckpointMidRun(const std::string& program, const std::vector<std::string>& args,
                        const std::string& out, const std::function<bool(pid_t)>& started,
                        const std::function<bool(pid_t)>& mid_run, const std::string& image) {
    for (int attempt = 1; attempt <= 3; ++attempt) {
      std::filesystem::remove(image);
      Child child(program, args, out);
      const pid_t pid = child.pid();
      auto ended = [&] { return ProcState(pid) == 'Z'; };
      ASSERT_TRUE(migration::testing::WaitUntil([&] { return started(pid) || ended(); }, 10000ms));
      if (ended()) continue;
      CommandResult r = Checkpoint(pid, image);
      if (r.exit_code != 0 && ended()) continue;
      ASSERT_EQ(r.exit_code, 0) << r.err;
      const bool caught = mid_run(pid);
      KillStopped(child);
      if (caught || HasFatalFailure()) return;
    }
    FAIL() << program << " ran to its end before the checkpoint caught it, 3 times";
  }
  static uint64_t FdPos(pid_t pid, int fd) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/fdinfo/" + std::to_string(fd));
    std::string key;
    uint64_t pos = 0;
    in >> key >> pos;
    return key == "pos:" ? pos : 0;
  }
  static std::string Slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  // `pid` runs `exe` and has no tracer: a restore of it is finished.
  static bool Restored(pid_t pid, const std::string& exe) {
    const std::string dir = "/proc/" + std::to_string(pid);
    std::error_code ec;
    if (std::filesystem::read_symlink(dir + "/exe", ec) != exe || ec) return false;
    return Slurp(dir + "/status").find("TracerPid:\t0\n") != std::string::npos;
  }

  TempDir tmp_;
};

TEST_F(MigrationCliTest, Sha256sumOfALargeFileGivesTheSameDigest) {
  const std::string big = tmp_ / "big";
  ASSERT_EQ(RunCommand("head -c 200M /dev/urandom > " + ShellQuote(big)).exit_code, 0);
  ASSERT_EQ(RunCommand("sha256sum " + ShellQuote(big) + " > " + ShellQuote(tmp_ / "ref")).exit_code, 0);

  ASSERT_NO_FATAL_FAILURE(CheckpointMidRun(
      "/usr/bin/sha256sum", {big}, tmp_ / "out", [&](pid_t pid) { return FdPos(pid, 3) > 0; },
      [&](pid_t pid) { return FdPos(pid, 3) < std::filesystem::file_size(big); }, tmp_ / "image"));
  CommandResult r = RestoreAndWait(tmp_ / "image");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(Slurp(tmp_ / "ref").empty());
  EXPECT_EQ(Slurp(tmp_ / "out"), Slurp(tmp_ / "ref"));
}

TEST_F(MigrationCliTest, GzipWritingAFileProducesTheSameBytes) {
  const std::string text = tmp_ / "text";
  ASSERT_EQ(RunCommand("head -c 18M /dev/urandom | base64 > " + ShellQuote(text)).exit_code, 0);
  ASSERT_EQ(RunCommand("gzip -c " + ShellQuote(text) + " > " + ShellQuote(tmp_ / "ref.gz")).exit_code, 0);

  const std::string out = tmp_ / "out.gz";
  auto written = [&] { return std::filesystem::exists(out) ? std::filesystem::file_size(out) : 0; };
  ASSERT_NO_FATAL_FAILURE(CheckpointMidRun(
      "/usr/bin/gzip", {"-c", text}, out, [&](pid_t) { return written() > 0; },
      [&](pid_t) { return written() < std::filesystem::file_size(tmp_ / "ref.gz"); },
      tmp_ / "image"));
  CommandResult r = RestoreAndWait(tmp_ / "image");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Slurp(tmp_ / "out.gz") == Slurp(tmp_ / "ref.gz")) << "restored gzip output differs";
}

TEST_F(MigrationCliTest, PerlWithSignalHandlersAndATimerCarriesOn) {
  const std::string script = tmp_ / "job.pl";
  std::ofstream(script) << kPerlJob;
  auto usr1_lines = [](const std::string& out, int n) {
    return migration::testing::WaitUntil([&] { return HasLineStartingWith(out, "usr1 " + std::to_string(n)); },
                                         10000ms);
  };
  // Reference: the same signals, no migration.
  {
    Child ref("/usr/bin/perl", {script}, tmp_ / "ref");
    ASSERT_TRUE(migration::testing::WaitUntil([&] { return HasLineStartingWith(tmp_ / "ref", "ready"); }, 10000ms));
    for (int n = 1; n <= 3; ++n) {
      ASSERT_EQ(::kill(ref.pid(), SIGUSR1), 0);
      ASSERT_TRUE(usr1_lines(tmp_ / "ref", n));
    }
    int status = ref.WaitExit(10000ms);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }

  Child child("/usr/bin/perl", {script}, tmp_ / "out");
  ASSERT_TRUE(migration::testing::WaitUntil([&] { return HasLineStartingWith(tmp_ / "out", "ready"); }, 10000ms));
  ASSERT_EQ(::kill(child.pid(), SIGUSR1), 0);
  ASSERT_TRUE(usr1_lines(tmp_ / "out", 1));
  ASSERT_NO_FATAL_FAILURE(CheckpointAndKill(child, tmp_ / "image"));
  auto restored = std::async(std::launch::async, [&] { return RestoreAndWait(tmp_ / "image"); });
  const pid_t pid = child.pid();
  // Restored: perl again (PR_SET_MM_MAP) and no longer traced by the restorer
  // (before that, a USR1 could hit the stub, which has no handler).
  ASSERT_TRUE(migration::testing::WaitUntil([&] { return Restored(pid, "/usr/bin/perl"); }, 20000ms));
  for (int n = 2; n <= 3; ++n) {
    ASSERT_EQ(::kill(pid, SIGUSR1), 0);
    ASSERT_TRUE(usr1_lines(tmp_ / "out", n)) << "the restored perl lost its USR1 handler";
  }
  ASSERT_EQ(restored.wait_for(20s), std::future_status::ready);
  CommandResult r = restored.get();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Slurp(tmp_ / "out"), Slurp(tmp_ / "ref"));
  EXPECT_TRUE(HasLineStartingWith(tmp_ / "out", "timer still ticking"));
}

TEST_F(MigrationCliTest, RefusalsLeaveTheSourceRunning) {
  // A shell waiting for its child, and a perl holding a socket.
  Child parent("/bin/sh", {"-c", "sleep 30; :"});
  Child socket_holder("/usr/bin/perl",
                      {"-MSocket", "-e",
                       "socket(my $s, AF_INET, SOCK_STREAM, 0) or die; $| = 1;"
                       "while (1) { print \"tick\\n\"; select(undef, undef, undef, 0.02) }"},
                      tmp_ / "ticks");
  ASSERT_TRUE(migration::testing::WaitUntil([&] { return ReadLines(tmp_ / "ticks").size() >= 2; }, 5000ms));
  ASSERT_TRUE(migration::testing::WaitUntil(
      [&] { return std::filesystem::exists("/proc/" + std::to_string(parent.pid()) + "/task/" +
                                           std::to_string(parent.pid()) + "/children") &&
                   !Slurp("/proc/" + std::to_string(parent.pid()) + "/task/" + std::to_string(parent.pid()) +
                          "/children").empty(); },
      5000ms));

  CommandResult r = Checkpoint(parent.pid(), tmp_ / "parent.img");
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("child"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(tmp_ / "parent.img"));
  EXPECT_NE(ProcState(parent.pid()), 'T');

  r = Checkpoint(socket_holder.pid(), tmp_ / "socket.img");
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("socket"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(tmp_ / "socket.img"));
  const size_t ticks = ReadLines(tmp_ / "ticks").size();
  EXPECT_TRUE(migration::testing::WaitUntil([&] { return ReadLines(tmp_ / "ticks").size() >= ticks + 3; }, 5000ms))
      << "the refused process must keep running";

  // No such process.
  r = Checkpoint(999999, tmp_ / "none.img");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("999999"), std::string::npos) << r.err;
}

TEST_F(MigrationCliTest, LeaveRunningKeepsTheSourceAndItsPidTaken) {
  WriteFileOrDie(tmp_ / "data", RandomBytes(1 << 20, 3));
  Child holder("/usr/bin/perl", {"-e", kPerlHolder, tmp_ / "data"}, tmp_ / "holder");
  ASSERT_TRUE(migration::testing::WaitUntil([&] { return HasLineStartingWith(tmp_ / "holder", "ready"); }, 10000ms));
  CommandResult r = Checkpoint(holder.pid(), tmp_ / "image", "--leave-running");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto out = nlohmann::json::parse(r.out);
  EXPECT_EQ(out["source"], "running");
  EXPECT_EQ(out["pid"], holder.pid());
  EXPECT_NE(ProcState(holder.pid()), 'T');
  r = RestoreAndWait(tmp_ / "image");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("in use"), std::string::npos) << r.err;
  EXPECT_NE(ProcState(holder.pid()), '?');
}

TEST_F(MigrationCliTest, ASecondSimilarProcessStoresFarFewerBytes) {
  WriteFileOrDie(tmp_ / "data", RandomBytes(16 << 20, 5));
  uint64_t new_bytes[2] = {0, 0};
  for (int i = 0; i < 2; ++i) {
    const std::string out = tmp_ / ("holder" + std::to_string(i));
    Child holder("/usr/bin/perl", {"-e", kPerlHolder, tmp_ / "data"}, out);
    ASSERT_TRUE(migration::testing::WaitUntil([&] { return HasLineStartingWith(out, "ready"); }, 10000ms));
    CommandResult r = Checkpoint(holder.pid(), tmp_ / ("image" + std::to_string(i)), "--leave-running");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto stats = nlohmann::json::parse(r.out);
    new_bytes[i] = stats["new_bytes"];
    EXPECT_GE(stats["pages"].get<uint64_t>(), 4096u) << "16 MiB of text are resident";
  }
  EXPECT_LT(new_bytes[1] * 4, new_bytes[0]) << "first " << new_bytes[0] << " bytes, second " << new_bytes[1];
}

}  // namespace
}  // namespace sparetime::testing
