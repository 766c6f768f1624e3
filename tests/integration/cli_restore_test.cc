// The real `sparetime` binary on image files (issue 19's footguns): `restore
// latest` in a repository holding snapshots of two devices, a restore target
// larger than the image, and `backup --bwlimit` without --when-idle.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <string>

#include "testutil/cli_runner.h"
#include "testutil/testutil.h"

namespace sparetime::testing {
namespace {

constexpr uint64_t kMiB = 1 << 20;

uint64_t FileSize(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return static_cast<uint64_t>(st.st_size);
}

class CliRestore : public ::testing::Test {
 protected:
  void SetUp() override { cli_.Init("--chunk-size 65536"); }
  std::string Image(const std::string& name, uint64_t size, uint64_t seed) {
    WriteFileOrDie(tmp_ / name, RandomBytes(size, seed));
    return tmp_ / name;
  }
  TempDir tmp_;
  CliRunner cli_{tmp_ / "repo", "test passphrase"};
};

// Tried as a new user would: a 4 MiB disk backed up, then a newer 1 MiB
// snapshot of another device; `restore latest` to the 4 MiB target wrote the
// 1 MiB one and cut the target to 1 MiB.
TEST_F(CliRestore, LatestWithTwoDevicesAsksForDeviceAndShrinksNothing) {
  const std::string big = Image("big.img", 4 * kMiB, 1);
  const std::string small = Image("small.img", 1 * kMiB, 2);
  nlohmann::json of_big = cli_.Backup(big);
  nlohmann::json of_small = cli_.Backup(small);
  const std::string target = Image("target.img", 4 * kMiB, 3);
  const std::vector<std::byte> before = ReadFileOrDie(target);

  CommandResult r = cli_.Run("restore latest --to " + target);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--device"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(big), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(small), std::string::npos) << r.err;
  EXPECT_EQ(FileSize(target), 4 * kMiB);
  EXPECT_EQ(ReadFileOrDie(target), before) << "nothing may be written";

  r = cli_.Run("--json restore latest --device " + big + " --to " + target);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json out = nlohmann::json::parse(r.out);
  EXPECT_EQ(out["snapshot"], of_big["id"]);
  EXPECT_EQ(ReadFileOrDie(target), ReadFileOrDie(big));

  // The small device's snapshot onto the 4 MiB target keeps its size and tail.
  r = cli_.Run("--json restore latest --device " + small + " --to " + target);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  out = nlohmann::json::parse(r.out);
  EXPECT_EQ(out["snapshot"], of_small["id"]);
  EXPECT_EQ(out["image_size"], 1 * kMiB);
  EXPECT_EQ(out["target_size"], 4 * kMiB);
  ASSERT_EQ(FileSize(target), 4 * kMiB);
  std::vector<std::byte> now = ReadFileOrDie(target);
  std::vector<std::byte> big_bytes = ReadFileOrDie(big);
  std::vector<std::byte> small_bytes = ReadFileOrDie(small);
  EXPECT_TRUE(std::equal(small_bytes.begin(), small_bytes.end(), now.begin()));
  EXPECT_TRUE(std::equal(big_bytes.begin() + kMiB, big_bytes.end(), now.begin() + kMiB));

  // --truncate asks for the cut.
  r = cli_.Run("restore " + of_small["id"].get<std::string>() + " --truncate --to " + target);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFileOrDie(target), small_bytes);
}

// 4 MiB at 1 KiB/s took 0.13 s: the limit was applied only with --when-idle.
TEST_F(CliRestore, BwlimitHoldsWithoutWhenIdle) {
  const std::string disk = Image("disk.img", 2 * kMiB, 4);
  const auto start = std::chrono::steady_clock::now();
  CommandResult r = cli_.Run("--json backup --buffered --bwlimit 1M " + disk);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GE(seconds, 0.85) << "2 MiB at 1 MiB/s: one second's burst, then a second's wait";
  EXPECT_LT(seconds, 60.0);
}

}  // namespace
}  // namespace sparetime::testing
