// ops::RunNotifyCommand / Notifier with real /bin/sh commands: the event is
// in the environment; a failing command is reported with its status; a
// hanging one is killed at the timeout together with its children (the
// bad-input rows "the notify command failing or hanging (bounded)"); the
// Notifier never blocks its caller and bounds the commands in flight.
#include "sparetime/ops/notify.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <thread>
#include <vector>

#include "sparetime/base/fd.h"
#include "sparetime/base/mutex.h"
#include "testutil/testutil.h"

namespace sparetime::ops {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;
using sparetime::testing::ShellQuote;
using sparetime::testing::TempDir;

TEST(Notify, TheEventIsInTheEnvironment) {
  TempDir dir;
  const std::string out = dir / "env";
  Status s = RunNotifyCommand(
      "printf '%s|%s|%s' \"$SPARETIME_HOST\" \"$SPARETIME_DEVICE\" \"$SPARETIME_REASON\" > " +
          ShellQuote(out),
      {"alpha", "/dev/vdb", "overdue: last successful backup 80 h ago"}, seconds(5));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(*ReadFileToString(out), "alpha|/dev/vdb|overdue: last successful backup 80 h ago");
}

TEST(Notify, AFailingCommandIsReportedWithItsStatus) {
  Status s = RunNotifyCommand("exit 3", {"alpha", "", "failed"}, seconds(5));
  EXPECT_EQ(s.code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(s.message(), "notify command \"exit 3\" exited with status 3");
  s = RunNotifyCommand("kill -TERM $$", {"alpha", "", "failed"}, seconds(5));
  EXPECT_EQ(s.message(), "notify command \"kill -TERM $$\" was killed by signal 15");
  s = RunNotifyCommand("/nonexistent/notify", {"alpha", "", "failed"}, seconds(5));
  EXPECT_EQ(s.code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(s.message(), "notify command \"/nonexistent/notify\" exited with status 127");
}

TEST(Notify, AHangingCommandIsKilledWithItsChildrenAtTheTimeout) {
  TempDir dir;
  const std::string pid_file = dir / "child.pid";
  auto start = steady_clock::now();
  Status s = RunNotifyCommand("sleep 60 & echo $! > " + ShellQuote(pid_file) + "; wait",
                              {"alpha", "", "failed"}, milliseconds(1000));
  auto took = steady_clock::now() - start;
  EXPECT_EQ(s.code(), ErrorCode::kUnavailable);
  EXPECT_NE(s.message().find("did not finish within 1 s; killed it"), std::string::npos)
      << s.message();
  EXPECT_GE(took, milliseconds(1000));
  EXPECT_LT(took, seconds(5));
  Result<std::string> pid = ReadFileToString(pid_file);
  ASSERT_TRUE(pid.ok());
  const pid_t child = static_cast<pid_t>(std::stol(*pid));
  // The background sleep was in the command's process group: killed too
  // (reaped by init once its parent shell died, so wait a little).
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    Result<std::string> stat = ReadFileToString("/proc/" + std::to_string(child) + "/stat");
    gone = !stat.ok() || stat->find(") Z ") != std::string::npos;
    if (!gone) std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_TRUE(gone) << "pid " << child << " survived the timeout";
}

TEST(Notify, TheNotifierNeverBlocksAndBoundsWhatRuns) {
  Mutex mu;
  std::vector<std::pair<std::string, bool>> lines;
  {
    Notifier n("sleep 2", seconds(1), [&](const std::string& line, bool failed) {
      MutexLock l(mu);
      lines.emplace_back(line, failed);
    });
    auto start = steady_clock::now();
    for (size_t i = 0; i < Notifier::kMaxInFlight + 1; ++i) {
      n.Notify({"alpha", "/dev/vdb", "failed: " + std::to_string(i)});
    }
    EXPECT_LT(steady_clock::now() - start, milliseconds(500));  // never waits for a command
    {
      MutexLock l(mu);
      ASSERT_EQ(lines.size(), 1u);  // the fifth, dropped at once
      EXPECT_EQ(lines[0].first,
                "notify (failed: 4, /dev/vdb): dropped, 4 notify commands are still running "
                "(each is killed after 1 s)");
      EXPECT_TRUE(lines[0].second);
    }
  }  // the destructor waits for the four, each killed at 1 s
  MutexLock l(mu);
  ASSERT_EQ(lines.size(), 5u);
  for (size_t i = 1; i < lines.size(); ++i) {
    EXPECT_NE(lines[i].first.find("did not finish within 1 s; killed it"), std::string::npos)
        << lines[i].first;
    EXPECT_TRUE(lines[i].second);
  }
  // An empty command is no notifier at all.
  Notifier none("", seconds(1), [&](const std::string&, bool) { ADD_FAILURE(); });
  none.Notify({"alpha", "", "failed"});
}

}  // namespace
}  // namespace sparetime::ops
