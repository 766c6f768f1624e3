// Only the blocks a filesystem uses (issue 20 part 2), through the real
// `sparetime` binary on real ext4, xfs, vfat and btrfs images: the restored
// filesystem passes fsck and holds the same tree (contents, sizes, modes,
// owners, xattrs, symlinks) while free space — a deleted file's residue
// included — is neither read nor stored; unknown or damaged filesystems are
// read whole with a notice, and --all-blocks keeps the raw image.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "testutil/cli_runner.h"
#include "testutil/file_tree.h"
#include "testutil/testutil.h"

namespace sparetime::testing {
namespace {

constexpr uint64_t kMiB = 1 << 20;
const std::string kMarker = "SPARETIME-DELETED-RESIDUE-7f3a";

void Sh(const std::string& cmd) {
  CommandResult r = RunCommand(cmd);
  ASSERT_EQ(r.exit_code, 0) << cmd << "\n" << r.out << r.err;
}

// losetup -d returns before the kernel lets go of the device; until then the
// file's loop device is busy and the backup (rightly) reads every block.
void WaitDetached(const std::string& image) {
  for (int i = 0; i < 500; ++i) {
    if (RunCommand("losetup -j " + image).out.empty()) return;
    ::usleep(10000);
  }
  FAIL() << image << " is still attached to a loop device";
}

bool Contains(const std::string& file, const std::string& needle) {
  return RunCommand("grep -qa " + ShellQuote(needle) + " " + ShellQuote(file)).exit_code == 0;
}

class UsedBlocks : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!IsRoot()) GTEST_SKIP() << "needs root for loop devices and mounts";
    cli_.Init("--chunk-size 65536");
  }
  void TearDown() override {
    for (auto it = mounts_.rbegin(); it != mounts_.rend(); ++it) {
      (void)RunCommand("fsfreeze -u " + *it + " 2>/dev/null; umount " + *it + " 2>/dev/null");
    }
  }
  std::string Mount(const std::string& what, const std::string& name, const std::string& opts = "") {
    const std::string dir = tmp_ / name;
    std::filesystem::create_directories(dir);
    Sh("mount " + opts + " " + what + " " + dir);
    mounts_.push_back(dir);
    return dir;
  }
  void Unmount(const std::string& dir) {
    Sh("umount " + dir);
    mounts_.erase(std::find(mounts_.begin(), mounts_.end(), dir));
  }
  // Files of every kind the comparison covers, then a marker file that is
  // deleted again (its bytes stay in the free blocks).
  void Populate(const std::string& m) {
    Sh("mkdir -p " + m + "/d/sub && ln -s ../f " + m + "/d/sub/link");
    WriteFileOrDie(m + "/d/f", RandomBytes(3 * kMiB + 5, 1));
    WriteFileOrDie(m + "/d/sub/g", RandomBytes(1000, 2));
    WriteFileOrDie(m + "/empty", {});
    Sh("chmod 0640 " + m + "/d/f && chown 123:456 " + m + "/d/sub/g");
    ASSERT_EQ(::setxattr((m + "/d/f").c_str(), "user.note", "kept", 4, 0), 0);
    std::string marker;
    while (marker.size() < 2 * kMiB) marker += kMarker + "\n";
    WriteFileOrDie(m + "/gone", std::vector<std::byte>(reinterpret_cast<const std::byte*>(marker.data()),
                                                       reinterpret_cast<const std::byte*>(marker.data()) + marker.size()));
    Sh("sync && rm " + m + "/gone && sync");
  }
  // Backs up `device` (extra CLI args), restores to a new image file and
  // returns its path; `notice` gets the backup's stderr.
  std::string BackupAndRestore(const std::string& device, const std::string& name,
                               std::string* notice, const std::string& extra = "",
                               nlohmann::json* snapshot = nullptr) {
    CommandResult b = cli_.Run("--json backup " + device + " " + extra);
    EXPECT_EQ(b.exit_code, 0) << b.err;
    *notice = b.err;
    nlohmann::json snap = nlohmann::json::parse(b.out, nullptr, false);
    if (snapshot) *snapshot = snap;
    const std::string target = tmp_ / name;
    CommandResult r = cli_.Run("restore " + snap.value("id", std::string()) + " --to " + target);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return target;
  }

  TempDir tmp_;
  CliRunner cli_{tmp_ / "repo", "test passphrase"};
  std::vector<std::string> mounts_;
};

// Unmounted ext4 in an image file: libext2fs's bitmaps; the deleted file's
// bytes are in the source image but not in the restored one.
TEST_F(UsedBlocks, Ext4UnmountedReadsBitmapsAndDropsResidue) {
  const std::string img = tmp_ / "src.img";
  Sh("truncate -s 64M " + img + " && mkfs.ext4 -q -F " + img);
  {
    LoopDevice loop(img);
    const std::string m = Mount(loop.path(), "src");
    Populate(m);
    Unmount(m);
  }
  WaitDetached(img);
  ASSERT_TRUE(Contains(img, kMarker)) << "the deleted file's bytes must be in the source";
  std::string notice;
  nlohmann::json snap;
  const std::string out = BackupAndRestore(img, "out.img", &notice, "", &snap);
  EXPECT_NE(notice.find("libext2fs block bitmaps"), std::string::npos) << notice;
  // 64 MiB: the files (about 3 MiB), the journal (4 MiB), metadata; the rest are holes.
  EXPECT_LT(snap["stats"]["new_bytes"].get<uint64_t>(), 12 * kMiB) << snap.dump();
  EXPECT_GT(snap["stats"]["holes"].get<uint64_t>(), 800u) << snap.dump();
  EXPECT_FALSE(Contains(out, kMarker)) << "free space must not be stored";
  CommandResult fsck = RunCommand("e2fsck -fn " + out);
  EXPECT_EQ(fsck.exit_code, 0) << fsck.out << fsck.err;
  LoopDevice a(img, true), b(out, true);
  const std::string ma = Mount(a.path(), "a", "-o ro"), mb = Mount(b.path(), "b", "-o ro");
  EXPECT_EQ(FileTree(ma), FileTree(mb));
  EXPECT_EQ(FileTree(ma).size(), 7u) << "lost+found, d, d/f, d/sub, d/sub/g, d/sub/link, empty";
}

// Mounted ext4 (frozen for a quiet, recovered journal): GETFSMAP.
TEST_F(UsedBlocks, Ext4MountedAsksGetfsmap) {
  const std::string img = tmp_ / "src.img";
  Sh("truncate -s 64M " + img + " && mkfs.ext4 -q -F " + img);
  LoopDevice loop(img);
  const std::string m = Mount(loop.path(), "src");
  Populate(m);
  std::string notice;  // sparetime freezes the mounted filesystem for the image
  const std::string out = BackupAndRestore(loop.path(), "out.img", &notice, "--consistency freeze");
  EXPECT_NE(notice.find("ext4 mounted at " + m + " (GETFSMAP)"), std::string::npos) << notice;
  EXPECT_TRUE(Contains(img, kMarker));
  EXPECT_FALSE(Contains(out, kMarker));
  CommandResult fsck = RunCommand("e2fsck -fn " + out);
  EXPECT_EQ(fsck.exit_code, 0) << fsck.out << fsck.err;
  LoopDevice b(out, true);
  EXPECT_EQ(FileTree(m), FileTree(Mount(b.path(), "b", "-o ro")));
}

// --all-blocks: today's raw image, residue and all, byte for byte.
TEST_F(UsedBlocks, AllBlocksKeepsTheRawImage) {
  const std::string img = tmp_ / "src.img";
  Sh("truncate -s 32M " + img + " && mkfs.ext4 -q -F " + img);
  {
    LoopDevice loop(img);
    const std::string m = Mount(loop.path(), "src");
    Populate(m);
    Unmount(m);
  }
  WaitDetached(img);
  std::string notice;
  const std::string out = BackupAndRestore(img, "out.img", &notice, "--all-blocks");
  EXPECT_EQ(notice.find("reading only"), std::string::npos) << notice;
  EXPECT_TRUE(Contains(out, kMarker));
  EXPECT_TRUE(SameBytes(img, out, 32 * kMiB));
}

// Unmounted and mounted xfs: xfs_db's free-space btrees, then GETFSMAP.
TEST_F(UsedBlocks, XfsUnmountedAndMounted) {
  const std::string img = tmp_ / "src.img";
  Sh("truncate -s 320M " + img + " && mkfs.xfs -q -f " + img);
  LoopDevice loop(img);
  std::string m = Mount(loop.path(), "src");
  Populate(m);
  Unmount(m);
  ASSERT_TRUE(Contains(img, kMarker));
  CommandResult source = RunCommand("xfs_repair -n -f " + img);
  ASSERT_EQ(source.exit_code, 0) << "the source xfs is not clean after its umount: a copy of the mount "
                                    "lives on in another mount namespace (/ must be shared, as "
                                    "scripts/test makes it)\n"
                                 << source.out << source.err;
  std::string notice;
  nlohmann::json snap;
  std::string out = BackupAndRestore(img, "out.img", &notice, "", &snap);
  EXPECT_NE(notice.find("xfs, not mounted (xfs_db free-space btrees)"), std::string::npos) << notice;
  EXPECT_LT(snap["stats"]["new_bytes"].get<uint64_t>(), 40 * kMiB) << snap.dump();
  EXPECT_FALSE(Contains(out, kMarker));
  CommandResult repair = RunCommand("xfs_repair -n -f " + out);
  EXPECT_EQ(repair.exit_code, 0) << repair.out << repair.err;
  m = Mount(loop.path(), "src2");
  {
    LoopDevice b(out, true);
    EXPECT_EQ(FileTree(m), FileTree(Mount(b.path(), "b", "-o ro,norecovery,nouuid")));
    Unmount(tmp_ / "b");
  }
  out = BackupAndRestore(loop.path(), "out2.img", &notice, "--consistency freeze");
  EXPECT_NE(notice.find("xfs mounted at " + m + " (GETFSMAP)"), std::string::npos) << notice;
  EXPECT_FALSE(Contains(out, kMarker));
  // A frozen xfs keeps a dirty log: mounting the restored image replays it
  // (into blocks GETFSMAP counted as used), then xfs_repair -n is clean.
  LoopDevice c(out);
  const std::string mc = Mount(c.path(), "c", "-o nouuid");
  EXPECT_EQ(FileTree(m), FileTree(mc));
  Unmount(mc);
  repair = RunCommand("xfs_repair -n -f " + out);
  EXPECT_EQ(repair.exit_code, 0) << repair.out << repair.err;
}

// Bad input: vfat (not mounted) and btrfs (mounted, no GETFSMAP) are read
// whole with a one-line notice and restore byte for byte.
TEST_F(UsedBlocks, VfatAndBtrfsAreReadWholeWithANotice) {
  const std::string fat = tmp_ / "fat.img";
  Sh("truncate -s 16M " + fat + " && mkfs.vfat " + fat + " >/dev/null");
  std::string notice;
  std::string out = BackupAndRestore(fat, "fat.out", &notice);
  EXPECT_NE(notice.find("notice: vfat: not a filesystem whose free space sparetime reads; "
                        "reading every block"),
            std::string::npos)
      << notice;
  EXPECT_TRUE(SameBytes(fat, out, 16 * kMiB));

  const std::string btr = tmp_ / "btrfs.img";
  Sh("truncate -s 128M " + btr + " && mkfs.btrfs -q " + btr);
  LoopDevice loop(btr);
  const std::string m = Mount(loop.path(), "btr");
  WriteFileOrDie(m + "/f", RandomBytes(kMiB, 3));
  Sh("sync");
  out = BackupAndRestore(loop.path(), "btrfs.out", &notice);
  EXPECT_NE(notice.find("notice: btrfs mounted at " + m +
                        ": GETFSMAP knows only ext4 and xfs; reading every block"),
            std::string::npos)
      << notice;
}

// Bad input: a block bitmap whose checksum fails. libext2fs refuses it and
// the whole filesystem is read (never a hole over data); the restore is
// the source byte for byte.
TEST_F(UsedBlocks, CorruptExt4BitmapReadsEverything) {
  const std::string img = tmp_ / "src.img";
  Sh("truncate -s 32M " + img + " && mkfs.ext4 -q -F -b 4096 -O metadata_csum " + img);
  {
    LoopDevice loop(img);
    const std::string m = Mount(loop.path(), "src");
    Populate(m);
    Unmount(m);
  }
  WaitDetached(img);
  CommandResult where = RunCommand("dumpe2fs " + img + " 2>/dev/null | "
                                   "sed -n 's/.*Block bitmap at \\([0-9]*\\).*/\\1/p' | head -1");
  ASSERT_EQ(where.exit_code, 0);
  const uint64_t block = std::stoull(where.out);
  // Clear 64 bytes of group 0's bitmap: blocks 0-511 (superblock, tables) now read as free.
  Sh("dd if=/dev/zero of=" + img + " bs=1 count=64 seek=" + std::to_string(block * 4096) +
     " conv=notrunc status=none");
  std::string notice;
  const std::string out = BackupAndRestore(img, "out.img", &notice);
  EXPECT_NE(notice.find("notice: ext4: its block bitmap cannot be read ("), std::string::npos)
      << notice;
  EXPECT_NE(notice.find("run e2fsck -f"), std::string::npos) << notice;
  EXPECT_TRUE(SameBytes(img, out, 32 * kMiB));
}

// Bad input: an MBR whose partition runs past the end of the disk. The
// backup reads every block and says why.
TEST_F(UsedBlocks, LyingPartitionTableReadsEverything) {
  const std::string img = tmp_ / "disk.img";
  WriteFileOrDie(img, RandomBytes(8 * kMiB, 4));
  // Partition 1: type 0x83 at LBA 2048, 1 GiB long (the disk has 16384 sectors).
  Sh("printf '\\0\\0\\0\\0\\203\\0\\0\\0\\0\\010\\0\\0\\0\\0\\040\\0' | "
     "dd of=" + img + " bs=1 seek=446 conv=notrunc status=none");
  Sh("printf '\\125\\252' | dd of=" + img + " bs=1 seek=510 conv=notrunc status=none");
  Sh("dd if=/dev/zero of=" + img + " bs=1 count=48 seek=462 conv=notrunc status=none");
  std::string notice;
  nlohmann::json snap;
  const std::string out = BackupAndRestore(img, "out.img", &notice, "", &snap);
  EXPECT_NE(notice.find("notice: partition table: "), std::string::npos) << notice;
  EXPECT_NE(notice.find("reading every block"), std::string::npos) << notice;
  EXPECT_TRUE(SameBytes(img, out, 8 * kMiB));
  // Its partition 1 cannot be restored on its own: refused, nothing written.
  CommandResult r = cli_.Run("restore " + snap["id"].get<std::string>() +
                             " --partition 1 --to " + tmp_ / "p1.img");
  EXPECT_EQ(r.exit_code, 6) << r.err;
  EXPECT_NE(r.err.find("its partition table cannot be used to restore partition 1; restore the "
                       "whole disk instead"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(tmp_ / "p1.img"));
}

}  // namespace
}  // namespace sparetime::testing
