// sparetimed with privilege separation (--user), the real binary: the main
// process runs as nobody with no capability, its helper (a child) as root;
// SIGHUP re-reads the configuration (a broken file is refused at priority
// err and the agent runs on); the helper killed -> sparetimed reports it at
// priority err and exits 1; an unknown user is a configuration error (9).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <regex>

#include "sparetime/base/fd.h"
#include "testutil/agent_process.h"
#include "testutil/testutil.h"

namespace sparetime::testing {
namespace {

using std::chrono::seconds;

std::string ProcField(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return line.substr(field.size() + 1);
  }
  return "";
}

class PrivsepDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    // nobody reads the directory file and the configuration.
    ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
    WriteExampleDirectory(ldif_, /*without_keys=*/false);
    ASSERT_EQ(::chmod(ldif_.c_str(), 0644), 0);
    config_ = WriteAgentConfig(dir_.path(), "alpha", ldif_, "127.0.0.1:0");
    ASSERT_EQ(::chmod(config_.c_str(), 0644), 0);
  }

  TempDir dir_;
  std::string ldif_ = dir_ / "directory.ldif";
  std::string config_;
};

TEST_F(PrivsepDaemonTest, RunsAsNobodyReloadsAndExitsWhenItsHelperDies) {
  AgentProcess agent(config_, dir_ / "alpha.log", "", {"env", "SPARETIME_USER=nobody"});
  ASSERT_TRUE(WaitUntil([&] { return agent.Log().find("serving peers on") != std::string::npos; },
                        seconds(30)))
      << agent.Log();
  // `env` execs sparetimed: the same pid.
  const pid_t pid = agent.pid();
  std::smatch m;
  const std::string log = agent.Log();
  ASSERT_TRUE(std::regex_search(
      log, m, std::regex("<6>sparetimed: running as nobody \\(uid 65534\\), privileged helper pid "
                         "([0-9]+)\n")))
      << log;
  const pid_t helper = std::stoi(m[1]);
  EXPECT_EQ(ProcField(pid, "Uid"), "\t65534\t65534\t65534\t65534");
  EXPECT_EQ(ProcField(pid, "CapEff"), "\t0000000000000000");
  EXPECT_EQ(ProcField(pid, "CapPrm"), "\t0000000000000000");
  EXPECT_EQ(ProcField(pid, "NoNewPrivs"), "\t1");
  EXPECT_EQ(ProcField(helper, "Uid"), "\t0\t0\t0\t0");
  EXPECT_EQ(ProcField(helper, "Name"), "\tsparetime-priv");
  EXPECT_EQ(ProcField(helper, "PPid"), "\t" + std::to_string(pid));
  struct stat st;
  ASSERT_EQ(::stat((dir_ / "state-alpha/identity.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);

  // SIGHUP: re-read, logged.
  ASSERT_EQ(::kill(pid, SIGHUP), 0);
  ASSERT_TRUE(WaitUntil([&] { return agent.Log().find("reload: done") != std::string::npos; },
                        seconds(10)))
      << agent.Log();
  EXPECT_NE(agent.Log().find("<6>sparetimed: reload: re-reading " + config_), std::string::npos);

  // A broken file: refused at priority err, the agent runs on.
  {
    std::ofstream(config_, std::ios::app) << "[agent]\nnmae = typo\n";
  }
  ASSERT_EQ(::kill(pid, SIGHUP), 0);
  ASSERT_TRUE(WaitUntil(
      [&] {
        return agent.Log().find("; the running configuration stays") != std::string::npos;
      },
      seconds(10)))
      << agent.Log();
  EXPECT_NE(agent.Log().find("<3>sparetimed: reload: " + config_ + ":"), std::string::npos)
      << agent.Log();
  EXPECT_EQ(agent.WaitExit(std::chrono::milliseconds(0)), -2);

  // The helper killed: reported, exit 1 (systemd restarts the unit).
  ASSERT_EQ(::kill(helper, SIGKILL), 0);
  EXPECT_EQ(agent.WaitExit(seconds(10)), 1) << agent.Log();
  EXPECT_NE(agent.Log().find("<3>sparetimed: the privileged helper (pid " +
                             std::to_string(helper) + ") is gone: killed by signal 9; stopping"),
            std::string::npos)
      << agent.Log();
  EXPECT_NE(agent.Log().find("<3>sparetimed: stopped: the privileged helper died"),
            std::string::npos);
}

TEST_F(PrivsepDaemonTest, StopEndsTheHelperToo) {
  AgentProcess agent(config_, dir_ / "alpha.log", "", {"env", "SPARETIME_USER=nobody"});
  ASSERT_TRUE(WaitUntil([&] { return agent.Log().find("serving peers on") != std::string::npos; },
                        seconds(30)))
      << agent.Log();
  std::smatch m;
  const std::string log = agent.Log();
  ASSERT_TRUE(std::regex_search(log, m, std::regex("privileged helper pid ([0-9]+)\n"))) << log;
  const pid_t helper = std::stoi(m[1]);
  EXPECT_EQ(agent.Stop(seconds(10)), 0) << agent.Log();
  EXPECT_NE(agent.Log().find("<6>sparetimed: stopped\n"), std::string::npos) << agent.Log();
  // The helper exits once sparetimed's end closes (it was sparetimed's child,
  // reaped by init or the test's subreaper now): gone within seconds.
  EXPECT_TRUE(WaitUntil([&] { return ::kill(helper, 0) != 0 || ProcField(helper, "State").find("Z") != std::string::npos; },
                        seconds(5)));
}

TEST_F(PrivsepDaemonTest, AnUnknownUserIsAConfigurationError) {
  CommandResult r = RunCommand("SPARETIME_USER=no-such-user-st " + std::string(SPARETIME_DAEMON) +
                               " --config " + ShellQuote(config_));
  EXPECT_EQ(r.exit_code, 9) << r.err;
  EXPECT_NE(r.err.find("<3>sparetimed: no user no-such-user-st on this system: create it"),
            std::string::npos)
      << r.err;
}

}  // namespace
}  // namespace sparetime::testing
