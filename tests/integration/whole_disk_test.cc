// Whole disks with a partition table (issue 20 part 3), through the real
// `sparetime` binary: a GPT loop disk with an ext4 and a vfat partition is
// imaged as its table areas plus each partition with its own filesystem
// awareness; `snapshots` lists the partitions; a restore onto a larger disk
// leaves a GPT `sgdisk -v` calls clean; `restore --partition N` writes one
// partition; a missing partition number and a too-small target are refused
// before anything is written.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "testutil/cli_runner.h"
#include "testutil/file_tree.h"
#include "testutil/testutil.h"

namespace sparetime::testing {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kPart1 = 1 * kMiB, kPart1Size = 40 * kMiB;
constexpr uint64_t kPart2 = 41 * kMiB, kPart2Size = 20 * kMiB;

void Sh(const std::string& cmd) {
  CommandResult r = RunCommand(cmd);
  ASSERT_EQ(r.exit_code, 0) << cmd << "\n" << r.out << r.err;
}

class WholeDisk : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!IsRoot()) GTEST_SKIP() << "needs root for loop devices and mounts";
    disk_ = tmp_ / "disk.img";
    Sh("truncate -s 96M " + disk_ + " && sgdisk -n 1:2048:+40M -c 1:root -n 2:0:+20M -c 2:efi " +
       disk_ + " >/dev/null");
    // Loop devices here get no partition devices (no partscan), so each
    // filesystem goes in through an offset loop, as on cli_mount_test.
    const std::string p1 = OffsetLoop(disk_, kPart1, kPart1Size);
    const std::string p2 = OffsetLoop(disk_, kPart2, kPart2Size);
    Sh("mkfs.ext4 -q " + p1 + " && mkfs.vfat " + p2 + " >/dev/null");
    Sh("mkdir -p " + tmp_ / "src" + " && mount " + p1 + " " + tmp_ / "src");
    const std::string m = tmp_ / "src";
    Sh("mkdir -p " + m + "/etc && ln -s etc/hosts " + m + "/hosts && chmod 0600 " + m + "/etc");
    WriteFileOrDie(m + "/etc/hosts", RandomBytes(5 * kMiB + 3, 7));
    WriteFileOrDie(m + "/gone", RandomBytes(8 * kMiB, 8));
    Sh("sync && rm " + m + "/gone && umount " + m);
    Sh("cmp -n " + std::to_string(kPart2Size) + " " + p2 + " " + disk_ + " --ignore-initial=0:" +
       std::to_string(kPart2) + " && cp " + p2 + " " + tmp_ / "p2.orig");
    Sh("losetup -d " + p1 + " && losetup -d " + p2);
    for (int i = 0; i < 500 && !RunCommand("losetup -j " + disk_).out.empty(); ++i) ::usleep(10000);
    CommandResult loop = RunCommand("losetup -f --show " + disk_);
    ASSERT_EQ(loop.exit_code, 0) << loop.err;
    loop_ = loop.out.substr(0, loop.out.find('\n'));
    cli_.Init("--chunk-size 65536");
  }
  void TearDown() override {
    for (const char* d : {"src", "a", "b"}) {
      (void)RunCommand("umount " + tmp_ / d + " 2>/dev/null");
    }
    for (const std::string& l : mount_loops_) (void)RunCommand("losetup -d " + l);
    if (!loop_.empty()) (void)RunCommand("losetup -d " + loop_);
  }
  std::string OffsetLoop(const std::string& image, uint64_t offset, uint64_t size) {
    CommandResult l = RunCommand("losetup -f --show -o " + std::to_string(offset) +
                                 " --sizelimit " + std::to_string(size) + " " + image);
    EXPECT_EQ(l.exit_code, 0) << l.err;
    return l.out.substr(0, l.out.find('\n'));
  }
  // Mounts `image` at byte `offset` (read-only) under tmp_/`dir`.
  void MountAt(const std::string& image, uint64_t offset, uint64_t size, const std::string& dir) {
    // Not `mount -o loop,offset=`: mount refuses a loop overlapping another.
    CommandResult l = RunCommand("losetup -f --show -r -o " + std::to_string(offset) +
                                 " --sizelimit " + std::to_string(size) + " " + image);
    ASSERT_EQ(l.exit_code, 0) << l.err;
    mount_loops_.push_back(l.out.substr(0, l.out.find('\n')));
    Sh("mkdir -p " + tmp_ / dir + " && mount -o ro " + mount_loops_.back() + " " + tmp_ / dir);
  }

  // e2fsck -fn over [offset, offset + size) of `image`, through a read-only loop.
  void Fsck(const std::string& image, uint64_t offset, uint64_t size) {
    CommandResult l = RunCommand("losetup -f --show -r -o " + std::to_string(offset) +
                                 " --sizelimit " + std::to_string(size) + " " + image);
    ASSERT_EQ(l.exit_code, 0) << l.err;
    const std::string dev = l.out.substr(0, l.out.find('\n'));
    CommandResult fsck = RunCommand("e2fsck -fn " + dev);
    (void)RunCommand("losetup -d " + dev);
    EXPECT_EQ(fsck.exit_code, 0) << fsck.out << fsck.err;
  }

  TempDir tmp_;
  std::string disk_, loop_;
  std::vector<std::string> mount_loops_;
  CliRunner cli_{tmp_ / "repo", "test passphrase"};
};

TEST_F(WholeDisk, PartitionsImagedListedAndRestored) {
  CommandResult b = cli_.Run("--json backup " + loop_);
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_NE(b.err.find("(gpt with 2 partitions; partition 1: ext4, not mounted (libext2fs block "
                       "bitmaps); partition 2: every block)"),
            std::string::npos)
      << b.err;
  EXPECT_NE(b.err.find("notice: partition 2: vfat: not a filesystem whose free space sparetime "
                       "reads; reading every block"),
            std::string::npos)
      << b.err;
  nlohmann::json snap = nlohmann::json::parse(b.out);
  const std::string id = snap["id"];
  // The deleted 8 MiB of random data is not stored; the 5 MiB file is.
  EXPECT_LT(snap["stats"]["new_bytes"].get<uint64_t>(), 5 * kMiB + 20 * kMiB + 8 * kMiB) << b.out;
  EXPECT_GT(snap["stats"]["new_bytes"].get<uint64_t>(), 5 * kMiB) << b.out;

  // `snapshots` lists the partitions, read from the image's table.
  CommandResult list = cli_.Run("--json snapshots");
  ASSERT_EQ(list.exit_code, 0) << list.err;
  nlohmann::json s = nlohmann::json::parse(list.out).at(0);
  EXPECT_EQ(s["partition_table"], "gpt");
  ASSERT_EQ(s["partitions"].size(), 2u) << s.dump();
  EXPECT_EQ(s["partitions"][0]["number"], 1);
  EXPECT_EQ(s["partitions"][0]["offset"], kPart1);
  EXPECT_EQ(s["partitions"][0]["size"], kPart1Size);
  EXPECT_EQ(s["partitions"][0]["name"], "root");
  EXPECT_EQ(s["partitions"][1]["number"], 2);
  EXPECT_EQ(s["partitions"][1]["offset"], kPart2);
  EXPECT_EQ(s["partitions"][1]["size"], kPart2Size);
  list = cli_.Run("snapshots");
  EXPECT_NE(list.out.find("  partition 1 "), std::string::npos) << list.out;
  EXPECT_NE(list.out.find(" efi\n"), std::string::npos) << list.out;

  // Whole disk onto a larger disk: the backup GPT moves to the new end.
  const std::string big = tmp_ / "big.img";
  Sh("truncate -s 160M " + big);
  LoopDevice target(big);
  CommandResult r = cli_.Run("--json restore " + id + " --to " + target.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["gpt_moved"], true) << r.out;
  CommandResult v = RunCommand("sgdisk -v " + target.path());
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  EXPECT_NE(v.out.find("No problems found"), std::string::npos) << v.out;
  CommandResult p = RunCommand("sgdisk -p " + target.path());
  EXPECT_NE(p.out.find("   1            2048           83967   40.0 MiB    8300  root"),
            std::string::npos)
      << p.out;
  Fsck(big, kPart1, kPart1Size);
  MountAt(disk_, kPart1, kPart1Size, "a");
  MountAt(big, kPart1, kPart1Size, "b");
  EXPECT_EQ(FileTree(tmp_ / "a"), FileTree(tmp_ / "b"));
  Sh("umount " + tmp_ / "b");

  // One partition to its own file: fsck clean, the same tree.
  const std::string part = tmp_ / "part1.img";
  r = cli_.Run("--json restore " + id + " --partition 1 --to " + part);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["image_size"], kPart1Size);
  struct stat st {};
  ASSERT_EQ(::stat(part.c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kPart1Size);
  CommandResult fsck = RunCommand("e2fsck -fn " + part);
  EXPECT_EQ(fsck.exit_code, 0) << fsck.out << fsck.err;
  MountAt(part, 0, kPart1Size, "b");
  EXPECT_EQ(FileTree(tmp_ / "a"), FileTree(tmp_ / "b"));
  // The vfat partition, read whole: byte for byte.
  r = cli_.Run("restore " + id + " --partition 2 --to " + tmp_ / "part2.img");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Sh("cmp " + tmp_ / "part2.img" + " " + tmp_ / "p2.orig");

  // Bad input: a partition number the table lacks; a target too small.
  r = cli_.Run("restore " + id + " --partition 3 --to " + tmp_ / "p3.img");
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("has no partition 3 (gpt table; partitions: 1 (41943040 bytes at "
                       "1048576), 2 (20971520 bytes at 42991616))"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(tmp_ / "p3.img"));
  const std::string small = tmp_ / "small.img";
  WriteFileOrDie(small, RandomBytes(kMiB, 9));
  r = cli_.Run("restore " + id + " --partition 1 --to " + small);
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("partition 1 of snapshot " + id + " is 41943040 bytes"), std::string::npos)
      << r.err;
  EXPECT_EQ(ReadFileOrDie(small), RandomBytes(kMiB, 9)) << "nothing may be written";
}

}  // namespace
}  // namespace sparetime::testing
