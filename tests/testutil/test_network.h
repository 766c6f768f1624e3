// TestNetwork: N network namespaces joined through a bridge, for tests that
// run several agents as separate hosts on this machine. Host i (0-based)
// lives in namespace "<prefix>-h<i>" with address 10.<net>.<subnet>.<i+1>/24
// on its interface "eth0"; the bridge sits in its own namespace, so nothing
// touches the machine's real interfaces and no traffic leaves it. Everything
// is deleted on destruction (also what an earlier crashed run left behind
// under the same names). Networks of test binaries running in parallel get
// distinct names and subnets: each claims its id with a lock file.
#ifndef SPARETIME_TESTS_TEST_NETWORK_H_
#define SPARETIME_TESTS_TEST_NETWORK_H_

#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sparetime/base/fd.h"
#include "testutil/testutil.h"

namespace sparetime::testing {

// A command's stdout as JSON; a discarded value when it failed or is not JSON.
nlohmann::json JsonOutput(const CommandResult& r);

class TestNetwork {
 public:
  // True when `ip` exists and network namespaces can be created (root).
  static bool Available();

  explicit TestNetwork(int hosts);
  ~TestNetwork();
  TestNetwork(const TestNetwork&) = delete;
  TestNetwork& operator=(const TestNetwork&) = delete;

  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  const std::string& netns(int host) const { return namespaces_[host]; }
  std::string address(int host) const;
  // Runs a shell command inside host's namespace.
  CommandResult Run(int host, const std::string& command) const;
  // Runs `sparetime --config CONFIG ARGS` inside host's namespace, with
  // SPARETIME_PASSPHRASE set (ARGS go to the shell as they are).
  CommandResult RunCli(int host, const std::string& config, const std::string& passphrase,
                       const std::string& args) const;
  // Waits up to `timeout` until the sparetimed of `host` lists `peers` peers
  // in its status (`sparetime status`: the daemon's own last directory read,
  // so it knows their keys and accepts their sessions; `sparetime peers`
  // reads the directory itself and can be ahead of the daemon).
  ::testing::AssertionResult WaitForDaemonPeers(int host, const std::string& config, size_t peers,
                                                std::chrono::milliseconds timeout) const;
  // Cuts / restores host's link (its end of the veth pair goes down / up).
  void SetLinkUp(int host, bool up);
  // Joins the test's own namespace to the bridge with address <subnet>.254,
  // so a server the test runs (slapd) is reachable from every host. Returns
  // that address, or "" with error() set.
  std::string ConnectTestHost();

 private:
  bool Sh(const std::string& command);
  void DeleteAll();
  // The test namespace's end of the ConnectTestHost veth pair.
  std::string TestHostLink() const { return prefix_ + "-t"; }
  Fd id_lock_;  // flock held on the claimed network id
  std::string prefix_;
  std::string bridge_ns_;
  std::string subnet_;  // "10.231.17"
  std::vector<std::string> namespaces_;
  bool ok_ = false;
  std::string error_;
};

}  // namespace sparetime::testing

#endif  // SPARETIME_TESTS_TEST_NETWORK_H_
