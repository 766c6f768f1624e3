// Agents as separate hosts: sparetimed in its own network namespace per
// host, joined through a bridge (TestNetwork), one shared file directory.
// Each agent registers the address and port it really listens on, the other
// finds it, opens an authenticated session to it (`peers --probe`), loses it
// when the link is cut (a bounded, clear UNREACHABLE) and finds it again when
// the link comes back.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "testutil/agent_process.h"
#include "testutil/test_network.h"
#include "testutil/testutil.h"

namespace sparetime::testing {
namespace {

using nlohmann::json;
using std::chrono::seconds;

class AgentNetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!TestNetwork::Available()) GTEST_SKIP() << "needs root and ip netns";
    WriteExampleDirectory(ldif_, /*without_keys=*/true);
  }

  // `sparetime peers --probe --json` as host `h` (discarded JSON on failure,
  // with the error kept in last_error_).
  json Probe(const TestNetwork& net, int h, const std::string& config) {
    CommandResult r = net.Run(h, std::string(SPARETIME_CLI) + " --config " + ShellQuote(config) +
                                     " peers --probe --json");
    last_error_ = r.err;
    if (r.exit_code != 0) return json(json::value_t::discarded);
    return json::parse(r.out, nullptr, false);
  }

  std::string last_error_;

  TempDir dir_;
  std::string ldif_ = dir_ / "directory.ldif";
};

// Test binaries run in parallel; two live networks must never share names or
// a subnet (one's teardown would delete the other's hosts).
TEST_F(AgentNetnsTest, LiveNetworksGetDistinctNamesAndSubnets) {
  TestNetwork first(1);
  TestNetwork second(1);
  ASSERT_TRUE(first.ok()) << first.error();
  ASSERT_TRUE(second.ok()) << second.error();
  EXPECT_NE(first.netns(0), second.netns(0));
  EXPECT_NE(first.address(0), second.address(0));
  EXPECT_EQ(second.Run(0, "ip -o addr show eth0").exit_code, 0);
  {
    TestNetwork third(1);
    ASSERT_TRUE(third.ok()) << third.error();
  }
  // The third one's teardown left the others' namespaces alone.
  EXPECT_EQ(first.Run(0, "true").exit_code, 0);
  EXPECT_EQ(second.Run(0, "true").exit_code, 0);
}

TEST_F(AgentNetnsTest, AgentsFindAndReachEachOtherAcrossHosts) {
  TestNetwork net(2);
  ASSERT_TRUE(net.ok()) << net.error();
  std::string alpha = WriteAgentConfig(dir_.path(), "alpha", ldif_, net.address(0) + ":7401",
                                       "advertise_address = " + net.address(0) + "\n");
  std::string beta = WriteAgentConfig(dir_.path(), "beta", ldif_, net.address(1) + ":7401",
                                      "advertise_address = " + net.address(1) + "\n");
  AgentProcess a(alpha, dir_ / "alpha.log", net.netns(0));
  AgentProcess b(beta, dir_ / "beta.log", net.netns(1));
  // Both have created their keys and published their first status.
  ASSERT_TRUE(WaitUntil(
      [&] {
        return std::filesystem::exists(dir_ / "state-alpha/status.json") &&
               std::filesystem::exists(dir_ / "state-beta/status.json");
      },
      seconds(15)))
      << a.Log() << b.Log();

  json seen;
  auto beta_reachable = [&] {
    seen = Probe(net, 0, alpha);
    return !seen.is_discarded() && seen["peers"].size() == 1 &&
           seen["peers"][0]["probe"]["reachable"] == true;
  };
  ASSERT_TRUE(WaitUntil(beta_reachable, seconds(15)))
      << seen.dump(2) << last_error_ << "\nalpha:\n" << a.Log() << "\nbeta:\n" << b.Log();
  EXPECT_EQ(seen["peers"][0]["name"], "beta");
  EXPECT_EQ(seen["peers"][0]["address"], net.address(1));
  EXPECT_EQ(seen["peers"][0]["probe"]["held_bytes"], 0);
  EXPECT_EQ(seen["peers"][0]["probe"]["quota_bytes"], 1 << 30);
  // And the other way round, once alpha has read beta's registration (until
  // then alpha refuses beta's key: it is not in alpha's view of the directory).
  json back;
  EXPECT_TRUE(WaitUntil(
      [&] {
        back = Probe(net, 1, beta);
        return !back.is_discarded() && back["peers"].size() == 1 &&
               back["peers"][0]["probe"]["reachable"] == true;
      },
      seconds(10)))
      << back.dump(2) << last_error_;

  // Cut beta's link: alpha's probe fails within its timeouts, and says why.
  net.SetLinkUp(1, false);
  auto start = std::chrono::steady_clock::now();
  json cut = Probe(net, 0, alpha);
  ASSERT_FALSE(cut.is_discarded()) << last_error_;
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(12));
  ASSERT_EQ(cut["peers"].size(), 1u) << cut.dump(2);
  EXPECT_EQ(cut["peers"][0]["probe"]["reachable"], false);
  EXPECT_NE(cut["peers"][0]["probe"]["error"].get<std::string>().find("beta"),
            std::string::npos)
      << cut.dump(2);
  // Back up: reachable again, nothing to restart.
  net.SetLinkUp(1, true);
  ASSERT_TRUE(WaitUntil(beta_reachable, seconds(10))) << seen.dump(2);

  EXPECT_EQ(a.Stop(), 0) << a.Log();
  EXPECT_EQ(b.Stop(), 0) << b.Log();
}

}  // namespace
}  // namespace sparetime::testing
