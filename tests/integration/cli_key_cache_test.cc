// The key cache through the real `sparetime` binary: after init or any
// unlock, the next commands skip Argon2id (seen in their peak RSS: "moderate"
// takes 256 MiB), a wrong passphrase is still refused, `--key-cache 0` keeps
// nothing, and `lock` forgets. Shares the user keyring with key_cache_test
// (ctest RESOURCE_LOCK user_keyring).
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "sparetime/base/fd.h"
#include "testutil/cli_runner.h"
#include "testutil/testutil.h"

namespace sparetime::testing {
namespace {

struct Outcome {
  int exit_code;
  long max_rss_mib;
  std::string output;
};

// Runs the CLI and measures its peak RSS (wait4 of its one process).
Outcome RunMeasured(const CliRunner& cli, const std::string& args, const TempDir& tmp) {
  const std::string log = tmp / "out.log";
  int pid = cli.Start(args, log);
  int status = 0;
  struct rusage ru {};
  EXPECT_EQ(::wait4(pid, &status, 0, &ru), pid);
  Result<std::string> output = ReadFileToString(log);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ru.ru_maxrss / 1024,
          output.ok() ? *output : ""};
}

// Argon2id "moderate" is 256 MiB; everything else `snapshots` does is far less.
constexpr long kArgonMiB = 200;

TEST(CliKeyCache, UnlockedKeyIsReusedUntilLocked) {
  TempDir tmp;
  CliRunner cli(tmp / "repo", "the passphrase");
  CommandResult init = cli.Run("init");  // Argon2id moderate
  ASSERT_EQ(init.exit_code, 0) << init.err;

  Outcome cold = RunMeasured(cli, "--key-cache 0 snapshots", tmp);
  ASSERT_EQ(cold.exit_code, 0) << cold.output;
  Outcome warm = RunMeasured(cli, "snapshots", tmp);  // init kept the key
  ASSERT_EQ(warm.exit_code, 0) << warm.output;
  EXPECT_GT(cold.max_rss_mib - warm.max_rss_mib, kArgonMiB)
      << "cold " << cold.max_rss_mib << " MiB, warm " << warm.max_rss_mib << " MiB";

  CliRunner wrong(cli.repo(), "the passphrase.");
  Outcome refused = RunMeasured(wrong, "snapshots", tmp);
  EXPECT_EQ(refused.exit_code, 3) << refused.output;
  EXPECT_NE(refused.output.find("wrong passphrase"), std::string::npos) << refused.output;
  EXPECT_GT(refused.max_rss_mib, kArgonMiB);  // it ran Argon2id, found nothing

  Outcome lock = RunMeasured(cli, "lock", tmp);
  EXPECT_EQ(lock.exit_code, 0) << lock.output;
  EXPECT_NE(lock.output.find("forgot "), std::string::npos) << lock.output;
  Outcome after_lock = RunMeasured(cli, "snapshots", tmp);
  ASSERT_EQ(after_lock.exit_code, 0) << after_lock.output;
  EXPECT_GT(after_lock.max_rss_mib, kArgonMiB);  // cold again; and it kept the key
  Outcome warm_again = RunMeasured(cli, "snapshots", tmp);
  EXPECT_LT(warm_again.max_rss_mib, after_lock.max_rss_mib - kArgonMiB);
}

TEST(CliKeyCache, KeyCacheZeroKeepsNothing) {
  TempDir tmp;
  CliRunner cli(tmp / "repo", "the passphrase");
  CommandResult init = cli.Run("--key-cache 0 init");
  ASSERT_EQ(init.exit_code, 0) << init.err;
  Outcome first = RunMeasured(cli, "--key-cache 0 snapshots", tmp);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_GT(first.max_rss_mib, kArgonMiB);
  Outcome second = RunMeasured(cli, "snapshots", tmp);
  EXPECT_GT(second.max_rss_mib, kArgonMiB);
}

}  // namespace
}  // namespace sparetime::testing
