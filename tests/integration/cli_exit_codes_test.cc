// docs/cli.md's exit-code table, row by row, through the real `sparetime`
// binary (issue 26): each row's cases exit with its code and say what to
// do. Rows 6 (damaged data) and 8 (interrupted) have more cases in
// cli_errors_test.cc (a truncated pack; kill -9 and SIGINT mid-backup).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

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

bool Has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class CliExitCodes : public ::testing::Test {
 protected:
  void SetUp() override { cli_.Init(); }

  std::string RandomImage(const std::string& name, int mib) {
    std::string path = tmp_ / name;
    Sh("head -c " + std::to_string(mib) + "M /dev/urandom > " + path);
    return path;
  }
  std::vector<std::string> Packs() { return PackFiles(cli_.repo() + "/store"); }
  // Flips one byte of the first record of the only pack (a data chunk).
  void FlipAByte() {
    std::vector<std::string> packs = Packs();
    ASSERT_EQ(packs.size(), 1u);
    std::fstream f(packs[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(4096);
    char c;
    f.get(c);
    f.seekp(4096);
    f.put(static_cast<char>(c ^ 0x40));
  }
  // `sparetime --repo REPO --passphrase-file FILE <args>`, no SPARETIME_PASSPHRASE.
  CommandResult WithPassphraseFile(const std::string& file, const std::string& args) {
    return RunCommand(std::string("env -u SPARETIME_PASSPHRASE ") + SPARETIME_CLI + " --repo " +
                      cli_.repo() + " --key-cache 0 --passphrase-file " + file + " " + args);
  }

  TempDir tmp_;
  CliRunner cli_{tmp_ / "repo", "right passphrase"};
};

TEST_F(CliExitCodes, Row0Success) {
  CommandResult r = cli_.Run("snapshots");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
}

TEST_F(CliExitCodes, Row1OtherFailureIsAnIoError) {
  // A directory where the first pack is to be created: opening it for
  // writing fails with EISDIR, an I/O error that is none of the other rows.
  const std::string pack = cli_.repo() + "/store/packs/01/00000001.pack";
  Sh("mkdir -p " + pack);
  CommandResult r = cli_.Run("backup " + RandomImage("d.img", 1));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(Has(r.err, pack)) << r.err;
  EXPECT_TRUE(Has(r.err, "Is a directory")) << r.err;
}

TEST_F(CliExitCodes, Row2UsageAndPassphraseProblems) {
  CommandResult r = cli_.Run("no-such-command");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = cli_.Run("restore latest");  // --to missing
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = RunCommand(std::string("env -u SPARETIME_PASSPHRASE ") + SPARETIME_CLI + " --repo " +
                 cli_.repo() + " snapshots");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(Has(r.err, "SPARETIME_PASSPHRASE")) << r.err;
  // A passphrase file readable by others, or missing: 2 (was 4), saying what to do.
  const std::string file = tmp_ / "pass";
  Sh("printf 'right passphrase' > " + file + " && chmod 644 " + file);
  r = WithPassphraseFile(file, "snapshots");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(Has(r.err, "chmod 600 " + file)) << r.err;
  Sh("chmod 600 " + file);
  r = WithPassphraseFile(file, "snapshots");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = WithPassphraseFile(tmp_ / "no-such-pass", "snapshots");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(Has(r.err, "no-such-pass")) << r.err;
}

TEST_F(CliExitCodes, Row3WrongPassphrase) {
  CliRunner wrong(cli_.repo(), "wrong passphrase");
  CommandResult r = wrong.Run("snapshots");
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_TRUE(Has(r.err, "wrong passphrase")) << r.err;
}

TEST_F(CliExitCodes, Row4RepositoryMissingNotOneOrAFile) {
  CliRunner missing(tmp_ / "nowhere", "x");
  CommandResult r = missing.Run("snapshots");
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_TRUE(Has(r.err, "init")) << r.err;
  Sh("touch " + tmp_ / "file");
  CliRunner file(tmp_ / "file", "x");
  r = file.Run("snapshots");
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_TRUE(Has(r.err, "is a file, not a repository directory")) << r.err;
  EXPECT_TRUE(Has(r.err, "--repo")) << r.err;
  Sh("echo garbage > " + cli_.repo() + "/config.json");
  r = cli_.Run("snapshots");
  EXPECT_EQ(r.exit_code, 4) << r.err;
}

TEST_F(CliExitCodes, Row5DeviceOrTargetOrSnapshot) {
  CommandResult r = cli_.Run("backup " + tmp_ / "no-such-disk");
  EXPECT_EQ(r.exit_code, 5) << r.err;
  // A directory as the device or the target: 5 (was 2).
  Sh("mkdir " + tmp_ / "adir");
  r = cli_.Run("backup " + tmp_ / "adir");
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_TRUE(Has(r.err, "is a directory: name a block device")) << r.err;
  (void)cli_.Backup(RandomImage("d.img", 1));
  r = cli_.Run("restore latest --to " + tmp_ / "adir");
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_TRUE(Has(r.err, "is a directory")) << r.err;
  r = cli_.Run("restore ffffffff --to " + tmp_ / "out.img");
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_TRUE(Has(r.err, "snapshots")) << r.err;
}

TEST_F(CliExitCodes, Row6DamagedDataVerifyCountsASharedChunkOnce) {
  std::string image = RandomImage("d.img", 2);
  nlohmann::json a = cli_.Backup(image);
  nlohmann::json b = cli_.Backup(image);  // shares every chunk
  FlipAByte();
  CommandResult r = cli_.Run("verify");
  EXPECT_EQ(r.exit_code, 6) << r.err;
  EXPECT_TRUE(Has(r.err, "1 damaged chunk(s) found")) << r.err;
  EXPECT_TRUE(Has(r.err, "used by 2 snapshot(s)")) << r.err;
  EXPECT_TRUE(Has(r.err, a["id"].get<std::string>())) << r.err;
  EXPECT_TRUE(Has(r.err, b["id"].get<std::string>())) << r.err;
  // Each per-snapshot line names its offset once.
  for (size_t at = r.err.find("chunk at offset"); at != std::string::npos;
       at = r.err.find("chunk at offset", at + 1)) {
    size_t eol = r.err.find('\n', at);
    EXPECT_EQ(r.err.substr(at + 1, eol - at - 1).find("chunk at offset"), std::string::npos)
        << r.err;
  }

  // restore --keep-going: every good chunk, zeroes for the bad one, exit 6.
  r = cli_.Run("--json restore " + a["id"].get<std::string>() + " --keep-going --to " +
               tmp_ / "out.img");
  EXPECT_EQ(r.exit_code, 6) << r.err;
  nlohmann::json out = nlohmann::json::parse(r.out);
  ASSERT_EQ(out["damaged"].size(), 1u) << r.out;
  EXPECT_EQ(out["chunks_written"].get<uint64_t>(), 1u);
  EXPECT_TRUE(Has(r.err, ", 1048576 bytes left as zeroes")) << r.err;

  // The next backup of the intact image stores the chunk again.
  nlohmann::json c = cli_.Backup(image);
  EXPECT_EQ(c["stats"]["new_chunks"].get<uint64_t>(), 1u) << c.dump();
  r = cli_.Run("verify");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(CliExitCodes, Row6LocalRepairFromTheSourceDevice) {
  std::string image = RandomImage("d.img", 2);
  (void)cli_.Backup(image);
  FlipAByte();
  CommandResult r = cli_.Run("repair");
  EXPECT_EQ(r.exit_code, 6) << r.err;
  EXPECT_TRUE(Has(r.err, "lost: snapshot")) << r.err;
  EXPECT_TRUE(Has(r.err, "repair --source DEVICE")) << r.err;
  r = cli_.Run("repair --source " + image);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = cli_.Run("restore latest --to " + tmp_ / "out.img");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(SameBytes(tmp_ / "out.img", image, 2ull << 20));
}

TEST_F(CliExitCodes, Row6DamagedCatalogDatabase) {
  (void)cli_.Backup(RandomImage("d.img", 1));
  const std::string db = cli_.repo() + "/catalog.db";
  ASSERT_GE(std::filesystem::file_size(db), 3u * 4096);
  // The third page overwritten: the catalog opens and lists its snapshots
  // (before issue 26 verify then exited 0).
  Sh("dd if=/dev/urandom of=" + db + " bs=4096 seek=2 count=1 conv=notrunc 2>/dev/null");
  CommandResult r = cli_.Run("verify");
  EXPECT_EQ(r.exit_code, 6) << r.err;
  EXPECT_TRUE(Has(r.err, "catalog.db")) << r.err;
}

TEST_F(CliExitCodes, Row7DiskFullSaysWhatToDo) {
  if (!IsRoot()) GTEST_SKIP() << "needs root for a tmpfs mount";
  std::string image = RandomImage("d.img", 8);
  std::string small = tmp_ / "small";
  Sh("mkdir " + small + " && mount -t tmpfs -o size=4m tmpfs " + small);
  CliRunner cli(small + "/repo", "p");
  cli.Init("--compression 0");
  CommandResult r = cli.Run("backup --checkpoint-mib 1 " + image);
  EXPECT_EQ(r.exit_code, 7) << r.err;
  EXPECT_TRUE(Has(r.err, "run the same command again")) << r.err;
  Sh("umount " + small);
}

TEST_F(CliExitCodes, Row8Interrupted) {
  // A slow backup (1 MiB/s) stopped by SIGINT: exit 8, and the rerun resumes.
  std::string image = RandomImage("d.img", 16);
  int pid = cli_.Start("backup --bwlimit 1M --checkpoint-mib 1 " + image, tmp_ / "log");
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  ASSERT_EQ(::kill(pid, SIGINT), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "stopped by the signal instead of exiting";
  EXPECT_EQ(WEXITSTATUS(status), 8);
  CommandResult r = cli_.Run("--json backup " + image);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GT(nlohmann::json::parse(r.out)["stats"]["resumed_chunks"].get<uint64_t>(), 0u);
}

TEST_F(CliExitCodes, Row9ConfigurationFile) {
  CommandResult r =
      RunCommand(std::string(SPARETIME_CLI) + " --config " + tmp_ / "missing.conf" + " peers");
  EXPECT_EQ(r.exit_code, 9) << r.err;
  EXPECT_TRUE(Has(r.err, "missing.conf")) << r.err;
}

TEST_F(CliExitCodes, Row10DirectoryUnreachableAndNothingCached) {
  const std::string conf = tmp_ / "sparetime.conf";
  std::ofstream(conf) << "[agent]\nname = alpha\nstate_dir = " << tmp_ / "no-state"
                      << "\n[directory]\nuri = ldap://127.0.0.1:9\nbase = ou=sparetime,dc=example"
                      << "\nconnect_timeout = 1s\ntimeout = 1s\n";
  CommandResult r = RunCommand(std::string(SPARETIME_CLI) + " --config " + conf + " peers");
  EXPECT_EQ(r.exit_code, 10) << r.err;
}

}  // namespace
}  // namespace sparetime::testing
