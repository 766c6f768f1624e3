// `sparetime migrate PID --to HOST` between two agents that are separate
// hosts: network namespaces joined by a bridge (TestNetwork), one shared
// file directory whose example policy lets alpha accept migrations from beta
// only. The target alpha also runs in a PID namespace of its own, so that
// the PID of a process from beta is free there although both "hosts" share
// this kernel. sha256sum over a 200 MB file, caught mid-run on beta, ends on
// alpha with the digest of an uninterrupted run; the source is gone only
// after alpha confirmed; it runs as `nobody` there too. Who may run what:
// alpha has no user `daemon` (its own /etc/passwd, bind-mounted in its mount
// namespace) and no sparetimeMigrationPrivileged, so a process of `daemon`
// and a root process are refused before they are frozen and run on. beta
// refuses a migration from alpha by policy: the process runs on.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../migration/migration_testing.h"
#include "testutil/agent_process.h"
#include "testutil/test_network.h"
#include "testutil/testutil.h"

namespace sparetime::testing {
namespace {

using migration::testing::Child;
using migration::testing::ProcState;
using migration::testing::ReadLines;
using std::chrono::seconds;

class MigrationNetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!TestNetwork::Available()) GTEST_SKIP() << "needs root and ip netns";
    WriteExampleDirectory(ldif_, /*without_keys=*/true);
  }

  // `cmd` in host h's network namespace only (same mount and PID namespace
  // as the test, so the CLI can ptrace what the test started there).
  std::string InNet(const TestNetwork& net, int h, const std::string& cmd) {
    return "nsenter --net=/run/netns/" + net.netns(h) + " -- " + cmd;
  }
  std::string Cli(const std::string& config, const std::string& args) {
    return std::string(SPARETIME_CLI) + " --config " + ShellQuote(config) + " " + args;
  }
  static std::string Slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static uint64_t FdPos(pid_t pid, int fd) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/fdinfo/" + std::to_string(fd));
    std::string key;
    uint64_t pos = 0;
    in >> key >> pos;
    return key == "pos:" ? pos : 0;
  }

  TempDir dir_;
  std::string ldif_ = dir_ / "directory.ldif";
};

TEST_F(MigrationNetnsTest, ProcessMovesToAnAllowedAgentAndIsRefusedByAnother) {
  TestNetwork net(2);
  ASSERT_TRUE(net.ok()) << net.error();
  const std::string alpha = WriteAgentConfig(dir_.path(), "alpha", ldif_, net.address(0) + ":7401",
                                             "advertise_address = " + net.address(0) + "\n");
  const std::string beta = WriteAgentConfig(dir_.path(), "beta", ldif_, net.address(1) + ":7401",
                                            "advertise_address = " + net.address(1) + "\n");
  // alpha: its own network, mount and PID namespaces (it is PID 1 there;
  // killing unshare kills that whole namespace), and a user database
  // without `daemon`.
  const std::string passwd = dir_ / "alpha-passwd";
  ASSERT_EQ(RunCommand("grep -v '^daemon:' /etc/passwd > " + ShellQuote(passwd)).exit_code, 0);
  Child alpha_agent("/bin/sh",
                    {"-c", "exec ip netns exec " + net.netns(0) +
                               " unshare --pid --fork --kill-child=SIGKILL --mount-proc --propagation slave "
                               "/bin/sh -c " +
                               ShellQuote("mount --bind " + ShellQuote(passwd) + " /etc/passwd && exec " +
                                          SPARETIME_DAEMON + " --config " + ShellQuote(alpha)) +
                               " 2>&1"},
                    dir_ / "alpha.log");
  AgentProcess beta_agent(beta, dir_ / "beta.log", net.netns(1));
  auto logs = [&] { return "\nalpha:\n" + Slurp(dir_ / "alpha.log") + "\nbeta:\n" + beta_agent.Log(); };
  // Both registered their keys, and each has read the other's (sessions work).
  auto reachable = [&](int h, const std::string& config) {
    CommandResult r = RunCommand(InNet(net, h, Cli(config, "peers --probe --json")));
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    return r.exit_code == 0 && !j.is_discarded() && j["peers"].size() == 1 &&
           j["peers"][0]["probe"]["reachable"] == true;
  };
  ASSERT_TRUE(WaitUntil([&] { return reachable(1, beta) && reachable(0, alpha); }, seconds(30))) << logs();

  const std::string big = dir_ / "big";
  ASSERT_EQ(RunCommand("head -c 200M /dev/urandom > " + ShellQuote(big) + " && chmod 755 " +
                       ShellQuote(dir_.path())).exit_code, 0);
  ASSERT_EQ(RunCommand("sha256sum " + ShellQuote(big) + " > " + ShellQuote(dir_ / "ref")).exit_code, 0);

  // beta -> alpha: allowed, as user nobody.
  Child job("/usr/bin/nsenter",
            {"--net=/run/netns/" + net.netns(1), "--", "/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup",
             "--clear-groups", "/usr/bin/sha256sum", big},
            dir_ / "out");
  ASSERT_TRUE(migration::testing::WaitUntil([&] { return FdPos(job.pid(), 3) > 0; },
                                            std::chrono::milliseconds(5000)));
  CommandResult r = RunCommand(InNet(net, 1, Cli(beta, "migrate " + std::to_string(job.pid()) + " --to alpha --json")));
  ASSERT_EQ(r.exit_code, 0) << r.err << logs();
  auto out = nlohmann::json::parse(r.out);
  EXPECT_EQ(out["to"], "alpha");
  EXPECT_EQ(out["target_pid"], job.pid()) << "the PID is kept";
  EXPECT_GT(out["sent_chunks"].get<uint64_t>(), 0u);
  EXPECT_NE(Slurp("/proc/" + std::to_string(job.pid()) + "/status").find("Uid:\t65534\t65534\t65534\t65534"),
            std::string::npos)
      << "runs as nobody on alpha";
  int status = job.WaitExit(std::chrono::milliseconds(5000));
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "the source is killed after the confirmation";
  const std::string done = "migrated process " + std::to_string(job.pid()) + " (sha256sum) from beta exited with status 0";
  ASSERT_TRUE(WaitUntil([&] { return Slurp(dir_ / "alpha.log").find(done) != std::string::npos; }, seconds(30)))
      << logs();
  EXPECT_EQ(Slurp(dir_ / "out"), Slurp(dir_ / "ref"));
  EXPECT_FALSE(Slurp(dir_ / "ref").empty());

  // beta -> alpha as a user alpha lacks, and as root without alpha's
  // policy allowing it: refused before the freeze, the process runs on.
  struct Refused {
    std::vector<std::string> as;
    std::string why, log;
  };
  for (const Refused& c : {Refused{{"/usr/bin/setpriv", "--reuid=daemon", "--regid=daemon", "--clear-groups"},
                                   "user daemon (real uid) does not exist on alpha",
                                   "refused a migration from beta: user daemon (real uid) does not exist on alpha"},
                           Refused{{}, "runs as root",
                                   "refused a migration from beta: a process of user root from beta runs as root"}}) {
    const std::string ticks = dir_ / "refused-ticks";
    std::vector<std::string> args{"--net=/run/netns/" + net.netns(1), "--"};
    args.insert(args.end(), c.as.begin(), c.as.end());
    for (const char* a : {"/usr/bin/perl", "-e", "$| = 1; while (1) { print \"tick\\n\"; select(undef, undef, undef, 0.02) }"})
      args.push_back(a);
    Child refused("/usr/bin/nsenter", args, ticks);
    ASSERT_TRUE(migration::testing::WaitUntil([&] { return ReadLines(ticks).size() >= 2; },
                                              std::chrono::milliseconds(5000)));
    r = RunCommand(InNet(net, 1, Cli(beta, "migrate " + std::to_string(refused.pid()) + " --to alpha")));
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("alpha refused process " + std::to_string(refused.pid()) + ": "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(c.why), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("runs on unchanged"), std::string::npos) << r.err;
    EXPECT_TRUE(WaitUntil([&] { return Slurp(dir_ / "alpha.log").find(c.log) != std::string::npos; }, seconds(5)))
        << logs();
    const size_t n = ReadLines(ticks).size();
    EXPECT_TRUE(migration::testing::WaitUntil([&] { return ReadLines(ticks).size() >= n + 3; },
                                              std::chrono::milliseconds(5000)))
        << "the refused process must keep running";
    EXPECT_NE(ProcState(refused.pid()), 'T');
    EXPECT_NE(ProcState(refused.pid()), 't');
  }

  // alpha -> beta: beta's policy refuses; the process runs on.
  Child ticker("/usr/bin/nsenter",
               {"--net=/run/netns/" + net.netns(0), "--", "/usr/bin/perl", "-e",
                "$| = 1; while (1) { print \"tick\\n\"; select(undef, undef, undef, 0.02) }"},
               dir_ / "ticks");
  ASSERT_TRUE(migration::testing::WaitUntil([&] { return ReadLines(dir_ / "ticks").size() >= 2; },
                                            std::chrono::milliseconds(5000)));
  r = RunCommand(InNet(net, 0, Cli(alpha, "migrate " + std::to_string(ticker.pid()) + " --to beta")));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("does not accept process migrations"), std::string::npos) << r.err;
  // The target says so in its log, one line (issue 27 item 8).
  EXPECT_TRUE(WaitUntil(
      [&] {
        return beta_agent.Log().find("refused a migration from alpha: beta does not accept process "
                                     "migrations") != std::string::npos;
      },
      seconds(5)))
      << logs();
  const size_t ticks = ReadLines(dir_ / "ticks").size();
  EXPECT_TRUE(migration::testing::WaitUntil([&] { return ReadLines(dir_ / "ticks").size() >= ticks + 3; },
                                            std::chrono::milliseconds(5000)))
      << "the refused process must keep running";
  EXPECT_NE(ProcState(ticker.pid()), 'T');

  // alpha is PID 1 in its own PID namespace: `status` run here finds its
  // PID in ours (issue 27 item 9).
  r = RunCommand(Cli(alpha, "status --json"));
  EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
  auto st = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(st.is_discarded()) << r.out;
  EXPECT_EQ(st["running"], true);
  EXPECT_EQ(st["agent"]["pid"], 1);
  const int64_t here = st["pid_here"];
  EXPECT_GT(here, 1);
  EXPECT_EQ(Slurp("/proc/" + std::to_string(here) + "/comm"), "sparetimed\n");
  r = RunCommand(Cli(alpha, "status"));
  EXPECT_NE(r.out.find("(pid " + std::to_string(here) + " here, pid 1 in PID namespace pid:["),
            std::string::npos)
      << r.out;
}

}  // namespace
}  // namespace sparetime::testing
