// Bad input through the real `sparetime` binary: each case gets its
// documented exit code, a message that says what to do, and loses nothing.
// Needs root for loop devices and tmpfs mounts.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "testutil/cli_runner.h"
#include "testutil/testutil.h"

namespace sparetime::testing {
namespace {

void Sh(const std::string& cmd) {
  CommandResult r = RunCommand(cmd);
  ASSERT_EQ(r.exit_code, 0) << cmd << "\n" << r.err;
}

class CliErrors : public ::testing::Test {
 protected:
  void SetUp() override { cli_.Init(); }

  // A file of `mib` MiB of random data.
  std::string RandomImage(const std::string& name, int mib) {
    std::string path = tmp_ / name;
    Sh("head -c " + std::to_string(mib) + "M /dev/urandom > " + path);
    return path;
  }
  std::vector<std::string> Packs() { return PackFiles(cli_.repo() + "/store"); }

  TempDir tmp_;
  CliRunner cli_{tmp_ / "repo", "right passphrase"};
};

TEST_F(CliErrors, WrongPassphraseHasItsOwnExitCode) {
  CliRunner other(cli_.repo(), "wrong passphrase");
  CommandResult r = other.Run("snapshots");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("wrong passphrase"), std::string::npos) << r.err;
  r = other.Run("backup " + RandomImage("d.img", 1));
  EXPECT_EQ(r.exit_code, 3);
}

TEST_F(CliErrors, MissingPassphraseSaysHowToGiveOne) {
  CommandResult r = RunCommand(std::string("env -u SPARETIME_PASSPHRASE ") + SPARETIME_CLI +
                               " --repo " + cli_.repo() + " snapshots");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("SPARETIME_PASSPHRASE"), std::string::npos) << r.err;
}

TEST_F(CliErrors, MissingOrNonRepository) {
  CliRunner missing(tmp_ / "nowhere", "x");
  CommandResult r = missing.Run("snapshots");
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_NE(r.err.find("init"), std::string::npos) << r.err;
  Sh("mkdir " + tmp_ / "empty");
  CliRunner empty(tmp_ / "empty", "x");
  r = empty.Run("snapshots");
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_NE(r.err.find("not a sparetime repository"), std::string::npos) << r.err;
  r = cli_.Run("init --kdf min");
  EXPECT_NE(r.exit_code, 0) << "init must not overwrite a repository";
}

TEST_F(CliErrors, MissingDevice) {
  CommandResult r = cli_.Run("backup " + tmp_ / "no-such-disk");
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_NE(r.err.find("no-such-disk"), std::string::npos) << r.err;
}

TEST_F(CliErrors, TargetTooSmallOrReadOnly) {
  std::string image = RandomImage("d.img", 4);
  ASSERT_EQ(cli_.Run("backup " + image).exit_code, 0);
  Sh("truncate -s 1M " + tmp_ / "small.img");
  CommandResult r = cli_.Run("restore latest --to " + tmp_ / "small.img");
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_NE(r.err.find("smaller"), std::string::npos) << r.err;
  if (!IsRoot()) return;
  LoopDevice small(tmp_ / "small.img");
  r = cli_.Run("restore latest --to " + small.path());
  EXPECT_EQ(r.exit_code, 5) << r.err;
  Sh("truncate -s 8M " + tmp_ / "ro.img");
  LoopDevice ro(tmp_ / "ro.img", /*read_only=*/true);
  ASSERT_FALSE(ro.path().empty());
  r = cli_.Run("restore latest --to " + ro.path());
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_NE(r.err.find("read-only"), std::string::npos) << r.err;
}

TEST_F(CliErrors, FlippedByteInAPackIsNamedBySnapshotAndOffset) {
  std::string image = RandomImage("d.img", 4);
  nlohmann::json snap = cli_.Backup(image);
  std::vector<std::string> packs = Packs();
  ASSERT_FALSE(packs.empty());
  {
    std::fstream f(packs[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(0, std::ios::end);
    std::streamoff mid = f.tellg() / 2;
    f.seekg(mid);
    char c;
    f.get(c);
    f.seekp(mid);
    f.put(static_cast<char>(c ^ 0x40));
  }
  CommandResult r = cli_.Run("verify");
  EXPECT_EQ(r.exit_code, 6);
  EXPECT_NE(r.err.find(snap["id"].get<std::string>()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("offset"), std::string::npos) << r.err;
  r = cli_.Run("restore latest --to " + tmp_ / "out.img");
  EXPECT_EQ(r.exit_code, 6);
  EXPECT_NE(r.err.find("offset"), std::string::npos) << r.err;
}

TEST_F(CliErrors, TruncatedPackIsReported) {
  std::string image = RandomImage("d.img", 4);
  (void)cli_.Backup(image);
  std::vector<std::string> packs = Packs();
  ASSERT_FALSE(packs.empty());
  std::filesystem::resize_file(packs[0], std::filesystem::file_size(packs[0]) / 2);
  CommandResult r = cli_.Run("verify");
  EXPECT_EQ(r.exit_code, 6) << r.err;
  r = cli_.Run("restore latest --to " + tmp_ / "out.img");
  EXPECT_EQ(r.exit_code, 6) << r.err;
}

TEST_F(CliErrors, DiskFullKeepsTheStoreAndTheNextRunContinues) {
  if (!IsRoot()) GTEST_SKIP() << "needs root for a tmpfs mount";
  std::string image = RandomImage("d.img", 24);
  std::string small = tmp_ / "small";
  Sh("mkdir " + small + " && mount -t tmpfs -o size=12m tmpfs " + small);
  CliRunner cli(small + "/repo", "p");
  cli.Init("--compression 0");
  CommandResult r = cli.Run("backup --checkpoint-mib 2 " + image);
  EXPECT_EQ(r.exit_code, 7) << r.err;
  EXPECT_NE(r.err.find("space"), std::string::npos) << r.err;
  Sh("mount -o remount,size=64m " + small);
  r = cli.Run("--json backup --checkpoint-mib 2 " + image);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json snap = nlohmann::json::parse(r.out);
  EXPECT_GT(snap["stats"]["resumed_chunks"].get<uint64_t>(), 0u);
  EXPECT_EQ(cli.Run("verify").exit_code, 0);
  r = cli.Run("restore latest --to " + tmp_ / "out.img");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(SameBytes(tmp_ / "out.img", image, 24ull << 20));
  Sh("umount " + small);
}

TEST_F(CliErrors, RestoreOntoAFullFilesystemFailsBeforeWritingAndKeepsNoRoom) {
  if (!IsRoot()) GTEST_SKIP() << "needs root for a tmpfs mount";
  std::string image = RandomImage("d.img", 16);
  ASSERT_EQ(cli_.Run("backup " + image).exit_code, 0);
  std::string small = tmp_ / "small";
  Sh("mkdir " + small + " && mount -t tmpfs -o size=8m tmpfs " + small);
  std::string out = small + "/out.img";
  CommandResult r = cli_.Run("restore latest --to " + out);
  EXPECT_EQ(r.exit_code, 7) << r.err;
  EXPECT_NE(r.err.find("no room for the image's data"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("16777216 bytes of data"), std::string::npos) << r.err;
  struct stat sb;
  ASSERT_EQ(::stat(out.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_blocks, 0) << "the failed reservation must give its room back";
  // With room, the same command over the same file succeeds.
  Sh("mount -o remount,size=32m " + small);
  r = cli_.Run("restore latest --to " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(SameBytes(out, image, 16ull << 20));
  Sh("umount " + small);
}

// Starts a backup, waits until it has journaled progress, then sends `sig`.
int InterruptedBackup(const CliRunner& cli, const std::string& image, const std::string& log,
                      int sig) {
  int pid = cli.Start("backup --checkpoint-mib 4 " + image, log);
  std::string db = cli.repo() + "/catalog.db";
  for (int i = 0; i < 2000; ++i) {  // at most 20 s
    CommandResult r = RunCommand("sqlite3 " + db + " 'select count(*) from progress' 2>/dev/null");
    if (r.exit_code == 0 && std::atoi(r.out.c_str()) > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid, sig);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

TEST_F(CliErrors, KillNineMidBackupThenRerunResumesAndVerifies) {
  std::string image = RandomImage("big.img", 384);
  int status = InterruptedBackup(cli_, image, tmp_ / "log", SIGKILL);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the backup finished before it could be killed";
  CommandResult r = cli_.Run("--json backup --checkpoint-mib 4 " + image);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json snap = nlohmann::json::parse(r.out);
  EXPECT_GT(snap["stats"]["resumed_chunks"].get<uint64_t>(), 0u);
  EXPECT_LT(snap["stats"]["resumed_chunks"].get<uint64_t>(), snap["stats"]["chunks"].get<uint64_t>());
  EXPECT_EQ(cli_.Run("verify").exit_code, 0);
  r = cli_.Run("restore latest --to " + tmp_ / "out.img");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(SameBytes(tmp_ / "out.img", image, 384ull << 20));
}

TEST_F(CliErrors, InterruptStopsCleanlyWithItsExitCode) {
  std::string image = RandomImage("big.img", 384);
  int status = InterruptedBackup(cli_, image, tmp_ / "log", SIGINT);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 8);
  CommandResult r = cli_.Run("--json backup " + image);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GT(nlohmann::json::parse(r.out)["stats"]["resumed_chunks"].get<uint64_t>(), 0u);
}

}  // namespace
}  // namespace sparetime::testing
