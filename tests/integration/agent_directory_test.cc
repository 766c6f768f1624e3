// sparetimed and the directory CLI over the embedded file directory: the
// agent registers and heartbeats, `sparetime peers` sees it, `policy`
// explains each value, `status` reports a directory that went away (cached
// copy in use) and came back, a bad config is refused with exit 9.
// Real binaries, a real LDIF file; no LDAP server needed here (the LDAP
// backend has its own tests against a real slapd).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "sparetime/base/fd.h"
#include "testutil/agent_process.h"
#include "testutil/testutil.h"

namespace sparetime::testing {
namespace {

using std::chrono::seconds;
using nlohmann::json;

constexpr char kBase[] = "ou=sparetime,dc=example,dc=org";

class AgentDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override { UseExample(false); }
  void UseExample(bool without_keys) { WriteExampleDirectory(ldif_, without_keys); }
  std::string WriteConfig(const std::string& name, const std::string& extra = "") {
    return WriteAgentConfig(dir_.path(), name, ldif_, "127.0.0.1:0", extra);
  }

  CommandResult Cli(const std::string& config, const std::string& args) {
    return RunCommand(std::string(SPARETIME_CLI) + " --config " + ShellQuote(config) + " " + args);
  }

  json CliJson(const std::string& config, const std::string& args, int expect_exit = 0) {
    CommandResult r = Cli(config, args + " --json");
    EXPECT_EQ(r.exit_code, expect_exit) << args << "\n" << r.err;
    return json::parse(r.out, nullptr, false);
  }

  TempDir dir_;
  std::string ldif_ = dir_ / "directory.ldif";
};

TEST_F(AgentDirectoryTest, StaleAgentsAreNotPeersAndSayWhy) {
  std::string alpha = WriteConfig("alpha");
  json peers = CliJson(alpha, "peers");
  ASSERT_FALSE(peers.is_discarded());
  EXPECT_EQ(peers["self"], "alpha");
  EXPECT_FALSE(peers["from_cache"].get<bool>());
  EXPECT_TRUE(peers["peers"].empty()) << peers.dump(2);
  // beta's heartbeat in the example is long past; alpha is this host.
  std::map<std::string, std::string> reasons;
  for (const auto& n : peers["not_peers"]) reasons[n["name"]] = n["reason"];
  EXPECT_EQ(reasons["alpha"], "this host");
  EXPECT_NE(reasons["beta"].find("last seen"), std::string::npos) << reasons["beta"];
}

TEST_F(AgentDirectoryTest, PolicyShowsValuesAndWhereTheyCameFrom) {
  std::string alpha = WriteConfig("alpha");
  json p = CliJson(alpha, "policy");
  ASSERT_FALSE(p.is_discarded());
  const json& s = p["settings"];
  const std::string pol = std::string(",ou=policies,") + kBase;
  // default < group (lab) < host (host-alpha)
  EXPECT_EQ(s["sparetimeIdleMinutes"]["value"], 15);
  EXPECT_EQ(s["sparetimeIdleMinutes"]["source"], "cn=default" + pol);
  EXPECT_EQ(s["sparetimeReplicas"]["value"], 3);
  EXPECT_EQ(s["sparetimeReplicas"]["source"], "cn=lab" + pol);
  EXPECT_EQ(s["sparetimeAcOnly"]["value"], false);
  EXPECT_EQ(s["sparetimeWindow"]["value"], json::array({"Mon-Sun 00:00-24:00"}));
  EXPECT_EQ(s["sparetimeBandwidthLimit"]["value"], 50000000);
  EXPECT_EQ(s["sparetimeBandwidthLimit"]["source"], "cn=host-alpha" + pol);
  EXPECT_EQ(s["sparetimeMigrationFrom"]["value"], json::array({"beta"}));
  EXPECT_EQ(s["sparetimePeerMaxAgeMinutes"]["source"], "built-in default");
  ASSERT_EQ(p["applied"].size(), 3u) << p.dump(2);
  EXPECT_EQ(p["applied"][0], "cn=default" + pol);
  EXPECT_EQ(p["applied"][2], "cn=host-alpha" + pol);

  // Another host: beta is in the lab group but has no host policy.
  json b = CliJson(alpha, "policy --host beta");
  EXPECT_EQ(b["settings"]["sparetimeBandwidthLimit"]["value"], 10000000);
  EXPECT_EQ(b["settings"]["sparetimeReplicas"]["value"], 3);

  // Human output names the sources too.
  CommandResult text = Cli(alpha, "policy");
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("sparetimeReplicas"), std::string::npos);
  EXPECT_NE(text.out.find("from cn=lab"), std::string::npos) << text.out;
}

TEST_F(AgentDirectoryTest, AgentRegistersHeartbeatsAndBecomesAPeer) {
  UseExample(/*without_keys=*/true);
  std::string alpha = WriteConfig("alpha");
  std::string beta = WriteConfig("beta", "advertise_address = 127.0.0.2\nsite = building-b\n");
  AgentProcess agent(beta, dir_ / "beta.log");
  // beta registers: alpha now sees it live, with the address and a fresh key.
  json seen;
  ASSERT_TRUE(WaitUntil(
      [&] {
        seen = CliJson(alpha, "peers");
        return !seen.is_discarded() && seen["peers"].size() == 1;
      },
      seconds(10)))
      << agent.Log() << "\n" << seen.dump(2);
  EXPECT_EQ(seen["peers"][0]["name"], "beta");
  EXPECT_EQ(seen["peers"][0]["address"], "127.0.0.2");
  EXPECT_GT(seen["peers"][0]["port"].get<int>(), 0);  // the port it picked
  // The key it published is the one in its state directory.
  Result<std::string> log = ReadFileToString(dir_ / "beta.log");
  ASSERT_TRUE(log.ok());
  std::string key = seen["peers"][0]["public_key"];
  EXPECT_NE(log->find("key " + key), std::string::npos) << *log;

  // The agent registers before it writes its first status.
  ASSERT_TRUE(WaitUntil(
      [&] { return std::filesystem::exists(dir_ / "state-beta/status.json"); }, seconds(5)));
  json st = CliJson(beta, "status");
  EXPECT_TRUE(st["running"].get<bool>()) << st.dump(2);
  EXPECT_TRUE(st["agent"]["registration"]["ok"].get<bool>()) << st.dump(2);
  EXPECT_FALSE(st["agent"]["directory"]["from_cache"].get<bool>());

  // Heartbeats move last-seen forward.
  std::string first = seen["peers"][0]["last_seen"];
  ASSERT_TRUE(WaitUntil(
      [&] {
        json again = CliJson(alpha, "peers");
        return again["peers"].size() == 1 && again["peers"][0]["last_seen"] != first;
      },
      seconds(5)));

  // The directory goes away: the agent keeps its cached copy and says so.
  std::filesystem::rename(ldif_, ldif_ + ".away");
  ASSERT_TRUE(WaitUntil(
      [&] {
        json s = CliJson(beta, "status");
        return s["agent"]["directory"]["from_cache"] == true;
      },
      seconds(5)))
      << agent.Log();
  CommandResult human = Cli(beta, "status");
  EXPECT_NE(human.out.find("UNREACHABLE"), std::string::npos) << human.out;
  // ... and comes back.
  std::filesystem::rename(ldif_ + ".away", ldif_);
  ASSERT_TRUE(WaitUntil(
      [&] {
        json s = CliJson(beta, "status");
        return s["agent"]["directory"]["from_cache"] == false &&
               s["agent"]["registration"]["ok"] == true;
      },
      seconds(5)))
      << agent.Log();

  EXPECT_EQ(agent.Stop(seconds(3)), 0) << agent.Log();
  EXPECT_NE(CliJson(beta, "status", 10)["running"], true);
}

TEST_F(AgentDirectoryTest, KeyMismatchIsRefusedAndReported) {
  // The example's beta entry carries an admin-set key that is not this
  // agent's: registration must fail, loudly, and not overwrite it.
  std::string beta = WriteConfig("beta");
  AgentProcess agent(beta, dir_ / "beta.log");
  std::string status_path = dir_ / "state-beta/status.json";
  ASSERT_TRUE(WaitUntil([&] { return std::filesystem::exists(status_path); }, seconds(5)))
      << agent.Log();
  json st = CliJson(beta, "status");
  EXPECT_FALSE(st["agent"]["registration"]["ok"].get<bool>()) << st.dump(2);
  std::string error = st["agent"]["registration"]["error"];
  EXPECT_NE(error.find("Pd/t4BS7E5Vrtvpnc0nOXOKmsd+MOO8+mHkeSK6O8T0="), std::string::npos) << error;
  Result<std::string> ldif = ReadFileToString(ldif_);
  ASSERT_TRUE(ldif.ok());
  EXPECT_NE(ldif->find("Pd/t4BS7E5Vrtvpnc0nOXOKmsd+MOO8+mHkeSK6O8T0="), std::string::npos);
  EXPECT_EQ(agent.Stop(), 0);
}

TEST_F(AgentDirectoryTest, BadConfigIsRefusedWithItsLine) {
  std::string path = dir_ / "bad.conf";
  ASSERT_TRUE(WriteFileAtomic(path, "[agent]\nnmae = beta\n").ok());
  AgentProcess agent(path, dir_ / "bad.log");
  EXPECT_EQ(agent.WaitExit(seconds(5)), 9);
  EXPECT_NE(agent.Log().find("bad.conf:2: unknown key 'nmae'"), std::string::npos) << agent.Log();
  CommandResult r = Cli(path, "peers");
  EXPECT_EQ(r.exit_code, 9);
  EXPECT_NE(r.err.find("bad.conf:2"), std::string::npos) << r.err;
  r = Cli(dir_ / "missing.conf", "peers");
  EXPECT_EQ(r.exit_code, 9);
  EXPECT_NE(r.err.find("missing.conf"), std::string::npos) << r.err;
}

// A sparetimed in a PID namespace of its own whose /proc is still the
// host's (`unshare --pid --fork` without --mount-proc): it says at start that
// it refuses migrations, and why (issue 27 item 7); `status` still finds it
// (item 9).
TEST_F(AgentDirectoryTest, ForeignProcIsDetectedAtStartAndStatusFindsThePid) {
  if (!IsRoot()) GTEST_SKIP() << "needs root";
  std::string alpha = WriteConfig("alpha");
  AgentProcess agent(alpha, dir_ / "alpha.log", "", {"unshare", "--pid", "--fork", "--kill-child"});
  ASSERT_TRUE(WaitUntil([&] { return Cli(alpha, "status").exit_code == 0; }, seconds(20)))
      << agent.Log();
  EXPECT_NE(agent.Log().find("sparetimed: migrations refused: /proc does not belong to "
                             "sparetimed's PID namespace (/proc/self is \""),
            std::string::npos)
      << agent.Log();
  EXPECT_NE(agent.Log().find("sparetimed's PID is 1), so it cannot restore processes"),
            std::string::npos)
      << agent.Log();
  json st = CliJson(alpha, "status");
  ASSERT_FALSE(st.is_discarded());
  EXPECT_EQ(st["agent"]["pid"], 1);
  ASSERT_EQ(st["agent"]["ns_pids"].size(), 2u) << st.dump(2);
  EXPECT_EQ(st["agent"]["ns_pids"][1], 1);
  EXPECT_EQ(st["pid_here"], st["agent"]["ns_pids"][0]);
  Result<std::string> comm =
      ReadFileToString("/proc/" + std::to_string(st["pid_here"].get<int64_t>()) + "/comm");
  EXPECT_EQ(comm.ok() ? *comm : "", "sparetimed\n");
}

}  // namespace
}  // namespace sparetime::testing
