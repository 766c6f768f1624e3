// CliRunner: runs the real `sparetime` binary against a repository in a
// temporary directory, for integration tests.
#ifndef SPARETIME_TESTS_CLI_RUNNER_H_
#define SPARETIME_TESTS_CLI_RUNNER_H_

#include <nlohmann/json.hpp>
#include <string>

#include "testutil/testutil.h"

namespace sparetime::testing {

class CliRunner {
 public:
  // Uses `repo` as the repository and `passphrase` via SPARETIME_PASSPHRASE.
  CliRunner(std::string repo, std::string passphrase);

  // Runs `sparetime --repo REPO <args>` (args are passed to the shell as is).
  CommandResult Run(const std::string& args) const;
  // Same, in the background: returns the PID of the sparetime process, whose
  // stdout and stderr go to `log`.
  int Start(const std::string& args, const std::string& log) const;

  // init with the cheapest KDF; fails the test when init fails.
  void Init(const std::string& extra = "") const;
  // backup --json; fails the test on error and returns the snapshot JSON.
  nlohmann::json Backup(const std::string& device, const std::string& extra = "") const;

  const std::string& repo() const { return repo_; }
  void set_passphrase(std::string p) { passphrase_ = std::move(p); }

 private:
  std::string Command(const std::string& args) const;
  std::string repo_;
  std::string passphrase_;
};

// True when the two files/devices hold the same bytes over `size` bytes.
bool SameBytes(const std::string& a, const std::string& b, uint64_t size);

}  // namespace sparetime::testing

#endif  // SPARETIME_TESTS_CLI_RUNNER_H_
