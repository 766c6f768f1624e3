// Preflight refusals, each with a real process holding the obstacle: the
// checkpoint must refuse with a reason naming it, before stopping anything,
// and the process must keep running (its "tick" lines keep coming).
#include <gtest/gtest.h>
#include <sys/ptrace.h>
#include <sys/stat.h>

#include <fstream>

#include "migration_testing.h"
#include "sparetime/base/fd.h"
#include "sparetime/migration/checkpoint.h"
#include "testutil/testutil.h"

namespace sparetime::migration {
namespace {

using namespace std::chrono_literals;
using sparetime::testing::TempDir;
using testing::Child;
using testing::ProgramPath;
using testing::ReadLines;
using testing::WaitUntil;

struct Refusal {
  const char* mode;
  const char* reason;  // expected in the message
};

class PreflightRefusalTest : public ::testing::TestWithParam<Refusal> {};

void ExpectStillTicking(const std::string& out, pid_t pid) {
  const size_t now = ReadLines(out).size();
  EXPECT_TRUE(WaitUntil([&] { return ReadLines(out).size() >= now + 3; })) << "process stopped after a refusal";
  EXPECT_NE(testing::ProcState(pid), 't');
  EXPECT_NE(testing::ProcState(pid), 'T');
}

TEST_P(PreflightRefusalTest, RefusesBeforeStoppingAndTheProcessRunsOn) {
  if (!sparetime::testing::IsRoot()) GTEST_SKIP() << "needs root";
  TempDir tmp;
  const std::string out = tmp / "refuse.log";
  Child child(ProgramPath("mig_refuse"), {out, GetParam().mode});
  ASSERT_TRUE(WaitUntil([&] { return ReadLines(out).size() >= 2; }))
      << "mig_refuse " << GetParam().mode << " did not start";

  Status s = Preflight(child.pid());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), ErrorCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("cannot checkpoint process " + std::to_string(child.pid())), std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find(GetParam().reason), std::string::npos) << s.message();

  auto image = Checkpoint(child.pid());
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.error().code(), ErrorCode::kFailedPrecondition);
  ExpectStillTicking(out, child.pid());
}

INSTANTIATE_TEST_SUITE_P(
    Stage1, PreflightRefusalTest,
    ::testing::Values(Refusal{"threadcreds", "has other credentials than the leader (Gid"}, Refusal{"child", "child processes"},
                      Refusal{"socket", "is a socket"}, Refusal{"eventfd", "an eventfd"},
                      Refusal{"epoll", "an epoll instance"}, Refusal{"signalfd", "a signalfd"},
                      Refusal{"timerfd", "a timerfd"}, Refusal{"inotify", "an inotify instance"},
                      Refusal{"pidfd", "a pidfd"}, Refusal{"io_uring", "io_uring"}, Refusal{"memfd", "memfd"},
                      Refusal{"deleted", "deleted file"}, Refusal{"sysvshm", "System V shared memory"},
                      Refusal{"device", "is a device"}, Refusal{"seccomp", "seccomp"},
                      Refusal{"halfpipe", "other end is not in the process"}),
    [](const ::testing::TestParamInfo<Refusal>& info) { return std::string(info.param.mode); });

TEST(PreflightTest, RefusesAProcessThatIsAlreadyTraced) {
  if (!sparetime::testing::IsRoot()) GTEST_SKIP() << "needs root";
  TempDir tmp;
  const std::string out = tmp / "counter.log";
  Child child(ProgramPath("mig_counter"), {out});
  ASSERT_TRUE(WaitUntil([&] { return ReadLines(out).size() >= 3; }));
  ASSERT_EQ(::ptrace(PTRACE_SEIZE, child.pid(), 0, 0), 0);  // we play the debugger
  Status s = Preflight(child.pid());
  EXPECT_EQ(s.code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("already traced by process " + std::to_string(::getpid())), std::string::npos)
      << s.message();
  // Detaching needs a ptrace stop.
  ASSERT_EQ(::ptrace(PTRACE_INTERRUPT, child.pid(), 0, 0), 0);
  int st = 0;
  ASSERT_TRUE(WaitUntil([&] { return ::waitpid(child.pid(), &st, __WALL | WNOHANG) == child.pid(); }));
  ASSERT_EQ(::ptrace(PTRACE_DETACH, child.pid(), 0, 0), 0);
  EXPECT_TRUE(Preflight(child.pid()).ok());
}

TEST(PreflightTest, AcceptsAPlainProcessAndRejectsMissingOnes) {
  TempDir tmp;
  const std::string out = tmp / "counter.log";
  Child child(ProgramPath("mig_counter"), {out});
  ASSERT_TRUE(WaitUntil([&] { return ReadLines(out).size() >= 3; }));
  Status ok = Preflight(child.pid());
  EXPECT_TRUE(ok.ok()) << ok.ToString();
  EXPECT_EQ(Preflight(::getpid()).code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(Preflight(999999).code(), ErrorCode::kNotFound);
}

// A process in a mount namespace of its own (as every `ip netns exec`
// makes): the refusal names the command that was run and the way out.
TEST(PreflightTest, AnotherMountNamespaceNamesTheCommandAndNsenter) {
  if (!sparetime::testing::IsRoot()) GTEST_SKIP() << "needs root";
  Child child("/usr/bin/unshare", {"--mount", "--propagation", "slave", "/usr/bin/sleep", "60"});
  auto comm = [&] {
    auto c = ReadFileToString("/proc/" + std::to_string(child.pid()) + "/comm");
    return c.ok() ? *c : std::string();
  };
  ASSERT_TRUE(WaitUntil([&] { return comm() == "sleep\n"; }));
  Status s = Preflight(child.pid(), {.command = "migrate"});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), ErrorCode::kFailedPrecondition) << s.ToString();
  EXPECT_EQ(s.message().rfind("cannot migrate process " + std::to_string(child.pid()) +
                                  " (sleep): it lives in another mnt namespace",
                              0),
            0u)
      << s.message();
  EXPECT_NE(s.message().find("nsenter -t PID -m -n -p sparetime"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("`ip netns exec` makes a new mount namespace"), std::string::npos)
      << s.message();
  // The checkpoint command's own wording is unchanged.
  EXPECT_NE(Preflight(child.pid()).message().find("cannot checkpoint process"), std::string::npos);
}

// Things the kernel here cannot produce (shadow stacks) through a fake /proc.
TEST(PreflightTest, RefusesShadowStacksFromAFakeProc) {
  TempDir tmp;
  const std::string out = tmp / "counter.log";
  Child child(ProgramPath("mig_counter"), {out});
  ASSERT_TRUE(WaitUntil([&] { return ReadLines(out).size() >= 3; }));
  const std::string fake = tmp / "proc";
  ASSERT_EQ(sparetime::testing::RunCommand("mkdir -p " + fake + " && ln -s /proc/self " + fake + "/self").exit_code, 0);
  const std::string dir = fake + "/" + std::to_string(child.pid());
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  std::ofstream(dir + "/status") << "Name:\tmig_counter\nState:\tS (sleeping)\nThreads:\t1\nTracerPid:\t0\n"
                                 << "Seccomp:\t0\nx86_Thread_features:\tshstk wrss\n";
  std::ofstream(dir + "/comm") << "mig_counter\n";
  PreflightOptions options;
  options.proc_root = fake;
  Status s = Preflight(child.pid(), options);
  EXPECT_EQ(s.code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("shadow stacks"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace sparetime::migration
