#include "testutil/cli_runner.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <vector>

#ifndef SPARETIME_CLI
#error "SPARETIME_CLI must name the sparetime binary"
#endif

namespace sparetime::testing {

CliRunner::CliRunner(std::string repo, std::string passphrase)
    : repo_(std::move(repo)), passphrase_(std::move(passphrase)) {}

std::string CliRunner::Command(const std::string& args) const {
  return "SPARETIME_PASSPHRASE=" + ShellQuote(passphrase_) + " exec " + SPARETIME_CLI +
         " --repo " + ShellQuote(repo_) + " " + args;
}

CommandResult CliRunner::Run(const std::string& args) const { return RunCommand(Command(args)); }

int CliRunner::Start(const std::string& args, const std::string& log) const {
  pid_t pid = ::fork();
  if (pid == 0) {
    std::string cmd = Command(args) + " >" + ShellQuote(log) + " 2>&1";
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

void CliRunner::Init(const std::string& extra) const {
  CommandResult r = Run("init --kdf min " + extra);
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

nlohmann::json CliRunner::Backup(const std::string& device, const std::string& extra) const {
  CommandResult r = Run("--json backup " + ShellQuote(device) + " " + extra);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return nlohmann::json::object();
  return nlohmann::json::parse(r.out);
}

bool SameBytes(const std::string& a, const std::string& b, uint64_t size) {
  std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
  if (!fa || !fb) return false;
  std::vector<char> ba(1 << 20), bb(1 << 20);
  uint64_t left = size;
  while (left > 0) {
    std::streamsize n = static_cast<std::streamsize>(std::min<uint64_t>(left, ba.size()));
    fa.read(ba.data(), n);
    fb.read(bb.data(), n);
    if (fa.gcount() != n || fb.gcount() != n) return false;
    if (std::memcmp(ba.data(), bb.data(), static_cast<size_t>(n)) != 0) return false;
    left -= static_cast<uint64_t>(n);
  }
  return true;
}

}  // namespace sparetime::testing
