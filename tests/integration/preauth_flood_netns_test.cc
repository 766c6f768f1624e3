// Strangers cannot starve a daemon (issue 26, defect 3), end to end: three
// real sparetimed agents (alpha, beta, gamma) in their own network
// namespaces, and a fourth namespace, mallory, with no agent: from its one
// address it holds 200 idle and 40 trickling TCP connections open against
// each of beta and gamma, reconnecting whatever the daemons close, for the
// whole test. Meanwhile alpha's `peers --probe`, a backup of a real loop
// device to R=2 peers and a restore must all succeed, byte for byte; the
// daemons log the flood in a few rate-limited lines, not one per
// connection.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "testutil/agent_process.h"
#include "testutil/test_network.h"
#include "testutil/testutil.h"

namespace sparetime::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

const char* const kHosts[] = {"alpha", "beta", "gamma"};
constexpr int kAlpha = 0, kBeta = 1, kGamma = 2, kMallory = 3;
constexpr char kPassphrase[] = "correct horse battery staple";
constexpr int kIdle = 200, kTrickling = 40;

// mallory: a thread in another network namespace (setns applies to the
// calling thread only) that keeps kIdle idle and kTrickling trickling
// connections open to each target, reconnecting each one the target closes.
class Flood {
 public:
  Flood(const std::string& netns, std::vector<std::string> targets)
      : netns_(netns), targets_(std::move(targets)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Flood() { Stop(); }
  void Stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  uint64_t connects() const { return connects_.load(); }
  uint64_t closed_by_server() const { return closed_.load(); }
  bool started() const { return started_.load(); }
  bool failed() const { return failed_.load(); }
  // Valid once failed() is true.
  const std::string& error() const { return error_; }

 private:
  struct Conn {
    Fd fd;
    size_t target;
    bool trickle;
    int sent = 0;
  };

  Fd Connect(const std::string& host) {
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(7401);
    ::inet_pton(AF_INET, host.c_str(), &to.sin_addr);
    (void)::connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof to);  // EINPROGRESS
    ++connects_;
    return fd;
  }

  void Run() {
    Fd ns(::open(("/run/netns/" + netns_).c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns.valid() || ::setns(ns.get(), CLONE_NEWNET) != 0) {
      error_ = "cannot enter " + netns_ + ": " + std::strerror(errno);
      failed_.store(true);  // publishes error_
      return;
    }
    std::vector<Conn> conns;
    for (size_t t = 0; t < targets_.size(); ++t) {
      for (int i = 0; i < kIdle + kTrickling; ++i) conns.push_back({Connect(targets_[t]), t, i >= kIdle});
    }
    started_.store(true);
    while (!stop_.load()) {
      for (Conn& c : conns) {
        pollfd p{c.fd.get(), POLLIN, 0};
        char buf[64];
        if (::poll(&p, 1, 0) == 1 && ::recv(c.fd.get(), buf, sizeof buf, MSG_DONTWAIT) <= 0) {
          ++closed_;
          c.fd = Connect(targets_[c.target]);  // and again
          c.sent = 0;
          continue;
        }
        // A plausible HELLO length (64), then one byte per round.
        if (c.trickle) {
          const char* byte = c.sent == 0 ? "\x40" : c.sent == 1 ? "\x00" : "\x01";
          if (::send(c.fd.get(), byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1) ++c.sent;
        }
      }
      // One round a second: ~470 connections a second per target, which
      // keeps the TIME_WAIT ports within the range for a minute's test.
      std::this_thread::sleep_for(milliseconds(1000));
    }
  }

  std::string netns_;
  std::vector<std::string> targets_;
  std::thread thread_;
  std::atomic<bool> stop_{false}, started_{false}, failed_{false};
  std::atomic<uint64_t> connects_{0}, closed_{0};
  std::string error_;
};

class PreauthFloodNetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!TestNetwork::Available()) GTEST_SKIP() << "needs root and ip netns";
  }

  CommandResult Run(int h, const std::string& args) {
    return last_ = net_->RunCli(h, configs_[h], kPassphrase, args);
  }
  json Cli(int h, const std::string& args) { return JsonOutput(Run(h, args + " --json")); }

  std::string Logs() const {
    std::string out;
    for (int h = 0; h < 3; ++h) {
      if (agents_[h]) out += std::string("\n--- ") + kHosts[h] + ":\n" + agents_[h]->Log();
    }
    return out;
  }

  // Peers alpha's probe finds reachable.
  int Reachable() {
    json peers = Cli(kAlpha, "peers --probe");
    int n = 0;
    if (peers.is_object()) {
      for (const json& p : peers["peers"]) n += p["probe"]["reachable"] == true;
    }
    return n;
  }

  TempDir dir_;
  std::string ldif_ = dir_ / "directory.ldif";
  std::unique_ptr<TestNetwork> net_;
  std::string configs_[3];
  std::unique_ptr<AgentProcess> agents_[3];
  CommandResult last_;
};

TEST_F(PreauthFloodNetnsTest, IdleAndTricklingFloodLeavesProbeBackupAndRestoreWorking) {
  net_ = std::make_unique<TestNetwork>(4);
  ASSERT_TRUE(net_->ok()) << net_->error();
  std::string ldif = DomainLdif({std::begin(kHosts), std::end(kHosts)}, [](const std::string& h) {
    return "sparetimeSite: site-" + h + "\n";
  });
  ldif += "dn: cn=default,ou=policies,ou=sparetime,dc=example,dc=org\n"
          "objectClass: sparetimePolicy\ncn: default\nsparetimeDomainDefault: TRUE\n"
          "sparetimeReplicas: 2\n";
  std::ofstream(ldif_, std::ios::trunc) << ldif;
  for (int h = 0; h < 3; ++h) {
    configs_[h] = WriteAgentConfig(dir_.path(), kHosts[h], ldif_, net_->address(h) + ":7401",
                                   "advertise_address = " + net_->address(h) + "\npeer_timeout = 5s\n");
    agents_[h] = std::make_unique<AgentProcess>(configs_[h], dir_ / (std::string(kHosts[h]) + ".log"),
                                                net_->netns(h));
  }
  ASSERT_TRUE(WaitUntil([&] { return Reachable() == 2; }, seconds(30))) << last_.err << Logs();
  for (int h : {kBeta, kGamma}) ASSERT_TRUE(net_->WaitForDaemonPeers(h, configs_[h], 2, seconds(20))) << Logs();
  ASSERT_EQ(Run(kAlpha, "init --kdf min").exit_code, 0) << last_.err;

  // 6 MiB of random data: 6 chunks of 1 MiB.
  std::string image = dir_ / "disk.img";
  std::vector<std::byte> data = RandomBytes(6 << 20, 7);
  std::ofstream(image, std::ios::binary)
      .write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  LoopDevice loop(image);

  Flood flood(net_->netns(kMallory), {net_->address(kBeta), net_->address(kGamma)});
  ASSERT_TRUE(WaitUntil([&] { return flood.started() || flood.failed(); }, seconds(10)));
  ASSERT_FALSE(flood.failed()) << flood.error();
  // The daemons have closed what is over mallory's per-address limit (and
  // mallory has reconnected) before the peers' turn comes.
  ASSERT_TRUE(WaitUntil([&] { return flood.closed_by_server() >= 2 * (kIdle + kTrickling) - 2 * 8; },
                        seconds(20)))
      << flood.closed_by_server();
  auto flood_start = std::chrono::steady_clock::now();

  EXPECT_EQ(Reachable(), 2) << last_.out << last_.err << Logs();
  json snap = Cli(kAlpha, "backup " + loop.path() + " --label flooded");
  ASSERT_TRUE(snap.is_object()) << last_.err << Logs();
  EXPECT_EQ(snap["stats"]["new_chunks"], 6);
  std::string restored = dir_ / "restored.img";
  ASSERT_EQ(Run(kAlpha, "restore latest --to " + restored).exit_code, 0) << last_.err << Logs();
  EXPECT_EQ(RunCommand("cmp " + ShellQuote(restored) + " " + ShellQuote(image)).exit_code, 0);
  EXPECT_EQ(Reachable(), 2) << last_.out << last_.err;

  // The flood went on all along: mallory kept reconnecting.
  EXPECT_GT(flood.connects(), uint64_t{4 * (kIdle + kTrickling)});
  flood.Stop();
  auto flood_seconds = std::chrono::duration_cast<seconds>(std::chrono::steady_clock::now() - flood_start).count();

  // Thousands of refusals, a few lines: per daemon one at once and one
  // summary per minute (and one more at shutdown).
  for (int h : {kBeta, kGamma}) {
    EXPECT_EQ(agents_[h]->Stop(), 0);
    std::string log = agents_[h]->Log();
    size_t lines = 0;
    std::istringstream in(log);
    for (std::string line; std::getline(in, line);) lines += line.find("refus") != std::string::npos;
    EXPECT_GE(lines, 2u) << log;
    EXPECT_LE(lines, 2u + static_cast<size_t>(flood_seconds / 60) + 1) << log;
    EXPECT_NE(log.find("over the per-address limit of pending handshakes"), std::string::npos) << log;
    EXPECT_NE(log.find("from " + net_->address(kMallory) + " ("), std::string::npos) << log;
  }
}

}  // namespace
}  // namespace sparetime::testing
