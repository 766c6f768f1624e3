// TestNetwork: `ip netns` + veth pairs + a bridge, built and torn down with
// the ip tool so that what a test does is what an admin would type.
#include "testutil/test_network.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include "testutil/agent_process.h"

namespace sparetime::testing {

namespace {

// Network ids 20..219 name the namespaces ("st<id>-*") and the subnet
// (10.231.<id>.0/24). Test binaries run in parallel, so an id is claimed by
// holding an exclusive flock on its lock file for the network's lifetime; the
// kernel drops the lock when the holder dies, so a crashed run's id is free
// again (and its leftover namespaces are deleted by the next holder).
constexpr int kFirstNetworkId = 20;
constexpr int kNetworkIds = 200;

Fd ClaimNetworkId(int* id) {
  for (int i = 0; i < kNetworkIds; ++i) {
    int candidate = kFirstNetworkId + static_cast<int>((::getpid() + i) % kNetworkIds);
    Result<Fd> lock = OpenFile("/tmp/sparetime-test-net-" + std::to_string(candidate) + ".lock",
                               O_RDWR | O_CREAT, 0600);
    if (!lock.ok()) continue;
    if (::flock(lock->get(), LOCK_EX | LOCK_NB) == 0) {
      *id = candidate;
      return std::move(*lock);
    }
  }
  return Fd();
}

}  // namespace

bool TestNetwork::Available() {
  return IsRoot() && RunCommand("ip netns list >/dev/null 2>&1").exit_code == 0;
}

TestNetwork::TestNetwork(int hosts) {
  int id = 0;
  id_lock_ = ClaimNetworkId(&id);
  if (!id_lock_.valid()) {
    error_ = "every test network id (st20..st219) is in use";
    return;
  }
  prefix_ = "st" + std::to_string(id);
  bridge_ns_ = prefix_ + "-br";
  subnet_ = "10.231." + std::to_string(id);
  for (int i = 0; i < hosts; ++i) namespaces_.push_back(prefix_ + "-h" + std::to_string(i));
  // Leftovers of a crashed run that held the same id.
  DeleteAll();

  ok_ = Sh("ip netns add " + bridge_ns_) &&
        Sh("ip -n " + bridge_ns_ + " link add br0 type bridge") &&
        Sh("ip -n " + bridge_ns_ + " link set br0 up") &&
        Sh("ip -n " + bridge_ns_ + " link set lo up");
  for (int i = 0; ok_ && i < hosts; ++i) {
    const std::string& ns = namespaces_[i];
    std::string port = "p" + std::to_string(i);
    ok_ = Sh("ip netns add " + ns) &&
          Sh("ip -n " + ns + " link add eth0 type veth peer name " + port + " netns " +
             bridge_ns_) &&
          Sh("ip -n " + bridge_ns_ + " link set " + port + " master br0") &&
          Sh("ip -n " + bridge_ns_ + " link set " + port + " up") &&
          Sh("ip -n " + ns + " addr add " + address(i) + "/24 dev eth0") &&
          Sh("ip -n " + ns + " link set eth0 up") && Sh("ip -n " + ns + " link set lo up");
  }
}

TestNetwork::~TestNetwork() {
  if (id_lock_.valid()) DeleteAll();
}

void TestNetwork::DeleteAll() {
  RunCommand("ip link del " + TestHostLink() + " 2>/dev/null");
  for (const auto& ns : namespaces_) RunCommand("ip netns del " + ns + " 2>/dev/null");
  RunCommand("ip netns del " + bridge_ns_ + " 2>/dev/null");
}

std::string TestNetwork::ConnectTestHost() {
  const std::string link = TestHostLink();
  const std::string address = subnet_ + ".254";
  bool ok = Sh("ip link add " + link + " type veth peer name pt netns " + bridge_ns_) &&
            Sh("ip -n " + bridge_ns_ + " link set pt master br0") &&
            Sh("ip -n " + bridge_ns_ + " link set pt up") &&
            Sh("ip addr add " + address + "/24 dev " + link) && Sh("ip link set " + link + " up");
  return ok ? address : "";
}

bool TestNetwork::Sh(const std::string& command) {
  CommandResult r = RunCommand(command + " 2>&1");
  if (r.exit_code == 0) return true;
  error_ = command + ": " + r.out;
  return false;
}

std::string TestNetwork::address(int host) const {
  return subnet_ + "." + std::to_string(host + 1);
}

CommandResult TestNetwork::Run(int host, const std::string& command) const {
  return RunCommand("ip netns exec " + namespaces_[host] + " sh -c " + ShellQuote(command));
}

CommandResult TestNetwork::RunCli(int host, const std::string& config,
                                  const std::string& passphrase, const std::string& args) const {
  return Run(host, "SPARETIME_PASSPHRASE=" + ShellQuote(passphrase) + " " + SPARETIME_CLI +
                       " --config " + ShellQuote(config) + " " + args);
}

::testing::AssertionResult TestNetwork::WaitForDaemonPeers(
    int host, const std::string& config, size_t peers, std::chrono::milliseconds timeout) const {
  CommandResult last;
  auto listed = [&] {
    last = Run(host,
               std::string(SPARETIME_CLI) + " --config " + ShellQuote(config) + " status --json");
    nlohmann::json status = JsonOutput(last);
    return status.is_object() && status["agent"]["peers"].size() == peers;
  };
  if (WaitUntil(listed, timeout)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "the sparetimed of host " << host << " does not list "
                                       << peers << " peers: " << last.out << last.err;
}

nlohmann::json JsonOutput(const CommandResult& r) {
  if (r.exit_code != 0) return nlohmann::json(nlohmann::json::value_t::discarded);
  return nlohmann::json::parse(r.out, nullptr, false);
}

void TestNetwork::SetLinkUp(int host, bool up) {
  Sh("ip -n " + bridge_ns_ + " link set p" + std::to_string(host) + (up ? " up" : " down"));
}

}  // namespace sparetime::testing
