// End to end through the real `sparetime` binary on real loop devices with
// ext4: back up, change files through a mount, back up again, restore each
// snapshot and compare byte for byte. Needs root (losetup, mount).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "testutil/cli_runner.h"
#include "testutil/testutil.h"

namespace sparetime::testing {
namespace {

constexpr uint64_t kDiskBytes = 64ull << 20;

void Sh(const std::string& cmd) {
  CommandResult r = RunCommand(cmd);
  ASSERT_EQ(r.exit_code, 0) << cmd << "\n" << r.err;
}

class CliRoundTrip : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!IsRoot()) GTEST_SKIP() << "needs root for loop devices and mounts";
    Sh("truncate -s " + std::to_string(kDiskBytes) + " " + tmp_ / "disk.img");
    Sh("mkfs.ext4 -q -F " + tmp_ / "disk.img");
    disk_ = std::make_unique<LoopDevice>(tmp_ / "disk.img");
    Sh("mkdir -p " + tmp_ / "mnt");
  }
  void TearDown() override { (void)RunCommand("umount " + tmp_ / "mnt" + " 2>/dev/null"); }

  // Mounts the disk, runs `cmd` inside the mount (cwd), unmounts.
  void WithMount(const std::string& cmd) {
    Sh("mount " + disk_->path() + " " + tmp_ / "mnt");
    Sh("cd " + tmp_ / "mnt" + " && " + cmd);
    Sh("umount " + tmp_ / "mnt");
  }
  // A copy of the device's current bytes, to compare restores against.
  std::string Capture(const std::string& name) {
    Sh("cp --sparse=always " + disk_->path() + " " + tmp_ / name);
    return tmp_ / name;
  }

  TempDir tmp_;
  std::unique_ptr<LoopDevice> disk_;
  CliRunner cli_{tmp_ / "repo", "test passphrase"};
};

TEST_F(CliRoundTrip, TwoSnapshotsOfAnExt4DiskRestoreBitForBit) {
  cli_.Init("--chunk-size 65536");
  WithMount("mkdir docs && cp -r /usr/share/common-licenses docs/ && "
            "head -c 3000000 /dev/urandom > random.bin && seq 1 200000 > numbers.txt");
  std::string v1 = Capture("v1.img");
  nlohmann::json s1 = cli_.Backup(disk_->path(), "--all-blocks --label first");
  ASSERT_TRUE(s1.contains("id"));
  EXPECT_EQ(s1["label"], "first");
  EXPECT_EQ(s1["size"], kDiskBytes);
  EXPECT_GT(s1["stats"]["holes"].get<uint64_t>(), 0u);  // an ext4 disk is mostly zeroes

  WithMount("head -c 1000000 /dev/urandom > new.bin && echo more >> numbers.txt && "
            "rm -rf docs/common-licenses/GPL-3");
  std::string v2 = Capture("v2.img");
  nlohmann::json s2 = cli_.Backup(disk_->path(), "--all-blocks --label second");
  ASSERT_TRUE(s2.contains("id"));
  uint64_t chunks = s2["stats"]["chunks"], fresh = s2["stats"]["new_chunks"];
  EXPECT_GT(fresh, 0u);
  EXPECT_LT(fresh, chunks / 4) << "an incremental backup must store only what changed";

  // The older snapshot onto another loop device full of garbage (holes zeroed).
  Sh("head -c " + std::to_string(kDiskBytes) + " /dev/urandom > " + tmp_ / "target.img");
  LoopDevice target(tmp_ / "target.img");
  CommandResult r = cli_.Run("restore " + s1["id"].get<std::string>() + " --to " + target.path() +
                             " --zero-holes");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(SameBytes(target.path(), v1, kDiskBytes));

  // The latest onto a new file, which stays sparse where the disk is empty.
  r = cli_.Run("restore latest --to " + tmp_ / "restored.img");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(SameBytes(tmp_ / "restored.img", v2, kDiskBytes));
  struct stat sb;
  ASSERT_EQ(::stat((tmp_ / "restored.img").c_str(), &sb), 0);
  EXPECT_EQ(static_cast<uint64_t>(sb.st_size), kDiskBytes);
  EXPECT_LT(static_cast<uint64_t>(sb.st_blocks) * 512, kDiskBytes / 2);

  r = cli_.Run("verify");
  EXPECT_EQ(r.exit_code, 0) << r.err;

  r = cli_.Run("snapshots --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json list = nlohmann::json::parse(r.out);
  ASSERT_EQ(list.size(), 2u);
  for (const auto& s : list) {
    for (const char* key : {"id", "label", "time", "device", "size"}) {
      EXPECT_TRUE(s.contains(key)) << key;
    }
    EXPECT_EQ(s["device"], disk_->path());
  }
  EXPECT_EQ(list[0]["id"], s2["id"]);  // newest first

  r = cli_.Run("forget " + s1["id"].get<std::string>().substr(0, 6));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = cli_.Run("snapshots --json");
  EXPECT_EQ(nlohmann::json::parse(r.out).size(), 1u);
  r = cli_.Run("restore " + s1["id"].get<std::string>() + " --to " + tmp_ / "gone.img");
  EXPECT_EQ(r.exit_code, 5) << "a forgotten snapshot is not found";
}

TEST_F(CliRoundTrip, UnchangedDeviceCostsAlmostNothing) {
  cli_.Init();
  WithMount("seq 1 500000 > numbers.txt");
  nlohmann::json s1 = cli_.Backup(disk_->path(), "--all-blocks");
  nlohmann::json s2 = cli_.Backup(disk_->path(), "--all-blocks");
  EXPECT_GT(s1["stats"]["new_chunks"].get<uint64_t>(), 0u);
  EXPECT_EQ(s2["stats"]["new_chunks"], 0u);
  EXPECT_EQ(s2["stats"]["stored_bytes"], 0u);
  EXPECT_EQ(s1["manifest"], s2["manifest"]) << "same device, same content, same manifest";
}

TEST_F(CliRoundTrip, DirectAndBufferedIoGiveTheSameImage) {
  cli_.Init();
  WithMount("head -c 2000000 /dev/urandom > a.bin");
  nlohmann::json s1 = cli_.Backup(disk_->path(), "--all-blocks");
  nlohmann::json s2 = cli_.Backup(disk_->path(), "--all-blocks --buffered");
  EXPECT_EQ(s1["manifest"], s2["manifest"]);
  CommandResult r = cli_.Run("restore latest --to " + tmp_ / "direct.img");  // O_DIRECT
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(SameBytes(tmp_ / "direct.img", disk_->path(), kDiskBytes));
  r = cli_.Run("restore latest --buffered --to " + tmp_ / "buffered.img");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(SameBytes(tmp_ / "buffered.img", disk_->path(), kDiskBytes));
}

}  // namespace
}  // namespace sparetime::testing
